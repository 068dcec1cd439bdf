"""Base for persistent buttons: DynamicItem + the one error path.

custom_id is "tm:<feature>:<action>:<id>"; a button parses it and calls a flow
(bot/flows.py), which rebuilds everything else from the database, so buttons
work after a restart. A custom_id is whatever the client sends: each template
accepts only well-formed ids (bot.ids: ROW_ID, USER_ID, so no forged number
reaches the database; a longer one matches no button and StaleButton answers
it), a flow answers flows.STALE_BUTTON for a row that is gone, and StaleButton
answers the same for any other `tm:` id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

from bot.errors import UserError, reply_error
from bot.flows import STALE_BUTTON

if TYPE_CHECKING:
    from bot.app import Tastemaker


_TEMPLATES: list[re.Pattern[str]] = []  # every button's but StaleButton's


class PersistentButton(discord.ui.DynamicItem[discord.ui.Button], template=r"tm:__base__"):
    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ != "StaleButton":
            _TEMPLATES.append(cls.__discord_ui_compiled_template__)

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.clicked(interaction, interaction.client)
        except Exception as error:
            await reply_error(interaction, error)

    async def clicked(self, interaction: discord.Interaction, bot: Tastemaker) -> None:
        raise NotImplementedError


class ErrorRoutedModal(discord.ui.Modal):
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await reply_error(interaction, error)


class StaleButton(PersistentButton, template=r"tm:.*"):
    """Any `tm:` custom_id that no other button's template accepts: forged, or from
    an older version of the bot. It gets flows.STALE_BUTTON instead of silence
    ("This interaction failed"). Registered last in bot/app.py DYNAMIC_ITEMS;
    discord.py offers a click to every template that matches, so this one stands
    aside (interaction_check) when another button takes it."""

    def __init__(self, custom_id: str):
        super().__init__(discord.ui.Button(label="…", custom_id=custom_id))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match[0])

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return not any(template.fullmatch(self.custom_id) for template in _TEMPLATES)

    async def clicked(self, interaction: discord.Interaction, bot: Tastemaker) -> None:
        raise UserError(STALE_BUTTON)


def persistent_view(*items: discord.ui.Item) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
