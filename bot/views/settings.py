"""The /settings panel: buttons for a member's defaults.

Each button's custom_id is "tm:settings:<action>:<user id>", so a click after a
restart still lands; the panel is re-rendered from the database on every click.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

from bot.errors import UserError
from bot.views.base import PersistentButton, persistent_view
from engine import profiles
from engine.db import members

if TYPE_CHECKING:
    from bot.app import Tastemaker

# Midjourney's stylize presets: the label on the panel and the --s it sets.
STYLIZE_LEVELS = {"low": 50, "med": 100, "high": 250, "very_high": 750}
STYLIZE_LABELS = {"low": "Stylize low", "med": "Stylize med", "high": "Stylize high", "very_high": "Stylize very high"}
TOGGLES = {"personalize": "Personalization", "remix": "Remix mode", "auto_dm": "Auto DM"}

_ACTIONS = "|".join([*TOGGLES, *(f"stylize_{level}" for level in STYLIZE_LEVELS)])


async def check_can_personalize(bot: Tastemaker, user_id: int) -> profiles.ProfileStatus:
    """Personalization needs a rank pool and an unlocked profile; UserError otherwise."""
    if await profiles.current_basis(bot.db) is None:
        raise UserError(
            f"Personalization isn't available yet: {profiles.NO_POOL_MESSAGE} "
            "Then rank pairs with `/rank` to unlock your profile."
        )
    status = await profiles.status(bot.db, user_id, bot.settings.unlock_votes)
    if not status.unlocked:
        n = status.remaining
        raise UserError(
            f"Your profile is locked: rank {n} more pair{'s' if n != 1 else ''} with `/rank` to unlock it "
            f"({status.votes}/{status.unlock_votes} votes), then turn personalization on."
        )
    return status


def describe(prefs: members.MemberSettings) -> str:
    """The panel's text: every setting in one glance."""
    level = next((name for name, value in STYLIZE_LEVELS.items() if value == prefs.stylize), None)
    stylize = f"`--s {prefs.stylize}`"
    if level:
        stylize = f"{STYLIZE_LABELS[level].removeprefix('Stylize ')} ({stylize})"
    lines = [
        "**Your /imagine settings**",
        f"Personalization: **{'on' if prefs.personalize else 'off'}**"
        + (" (every prompt gets `--p` unless it names codes)" if prefs.personalize else ""),
        f"Stylize: **{stylize}** (used when a prompt has no `--s`)",
        f"Remix mode: **{'on' if prefs.remix else 'off'}**" + (" (V and 🔄 let you edit the prompt first)" if prefs.remix else ""),
        f"Auto DM: **{'on' if prefs.auto_dm else 'off'}**",
    ]
    if prefs.suffix:
        lines.append(f"Suffix: `{prefs.suffix}` (change it with `/prefer suffix`)")
    return "\n".join(lines)


class SettingsButton(PersistentButton, template=rf"tm:settings:(?P<action>{_ACTIONS}):(?P<user>\d+)"):
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

    async def clicked(self, interaction: discord.Interaction, bot: Tastemaker) -> None:
        require_owner_of_panel(interaction, self.user_id)
        prefs = await members.get_settings(bot.db, self.user_id)
        if self.action.startswith("stylize_"):
            changes = {"stylize": STYLIZE_LEVELS[self.action.removeprefix("stylize_")]}
        else:
            turn_on = not getattr(prefs, self.action)
            if self.action == "personalize" and turn_on:
                await check_can_personalize(bot, self.user_id)
            changes = {self.action: turn_on}
        prefs = await members.update_settings(bot.db, self.user_id, **changes)
        await interaction.response.edit_message(content=describe(prefs), view=settings_view(self.user_id, prefs))


def require_owner_of_panel(interaction: discord.Interaction, user_id: int) -> None:
    if interaction.user.id != user_id:
        raise UserError("These are someone else's settings. Run `/settings` to change yours.")


def settings_view(user_id: int, prefs: members.MemberSettings) -> discord.ui.View:
    actions = ["personalize", *(f"stylize_{level}" for level in STYLIZE_LEVELS), "remix", "auto_dm"]
    return persistent_view(*(SettingsButton(action, user_id, prefs) for action in actions))

