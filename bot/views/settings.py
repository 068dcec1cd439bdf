"""The /settings panel: buttons for a member's defaults.

Each button's custom_id is "tm:settings:<action>:<user id>", so a click after a
restart still lands; the flow re-renders the panel from the database on every click.
"""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.flows import STYLIZE_LABELS, STYLIZE_LEVELS, TOGGLES
from bot.ids import USER_ID
from bot.views.base import PersistentButton, persistent_view
from engine.db import members

_ACTIONS = "|".join([*TOGGLES, *(f"stylize_{level}" for level in STYLIZE_LEVELS)])


class SettingsButton(PersistentButton, template=rf"tm:settings:(?P<action>{_ACTIONS}):(?P<user>{USER_ID})"):
    def __init__(self, action: str, user_id: int, prefs: members.MemberSettings | None = None):
        prefs = prefs or members.MemberSettings()
        if action.startswith("stylize_"):
            level = action.removeprefix("stylize_")
            active = prefs.stylize == STYLIZE_LEVELS[level]
            label, row = STYLIZE_LABELS[level], 1
        else:
            active = bool(getattr(prefs, action))
            label, row = TOGGLES[action], 0 if action == "personalize" else 2
        if not active:
            style = discord.ButtonStyle.secondary
        elif action.startswith("stylize_"):
            style = discord.ButtonStyle.primary  # the current level
        else:
            style = discord.ButtonStyle.success  # a toggle that is on
        super().__init__(discord.ui.Button(label=label, style=style, row=row, custom_id=f"tm:settings:{action}:{user_id}"))
        self.action, self.user_id = action, user_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], int(match["user"]))

    async def clicked(self, interaction, bot) -> None:
        await flows.change_setting(interaction, bot, self.user_id, self.action)


def settings_view(user_id: int, prefs: members.MemberSettings) -> discord.ui.View:
    actions = ["personalize", *(f"stylize_{level}" for level in STYLIZE_LEVELS), "remix", "auto_dm", "learn_from_use"]
    return persistent_view(*(SettingsButton(action, user_id, prefs) for action in actions))
