"""Base for persistent buttons: DynamicItem + the one error path.

custom_id is "tm:<feature>:<action>:<id>"; a button parses it and calls a flow
(bot/flows.py), which rebuilds everything else from the database, so buttons
work after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.errors import reply_error

if TYPE_CHECKING:
    from bot.app import Tastemaker


class PersistentButton(discord.ui.DynamicItem[discord.ui.Button], template=r"tm:__base__"):
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


MAX_ROW_ID = 2**63 - 1  # SQLite's INTEGER


def row_id(digits: str) -> int:
    """A numeric id from a custom_id. A forged one too big for SQLite becomes 0, an
    id no row has (they start at 1), so the flow answers as for a row that is gone
    ("no longer stored") instead of failing in the database."""
    value = int(digits)
    return value if value <= MAX_ROW_ID else 0


def persistent_view(*items: discord.ui.Item) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
