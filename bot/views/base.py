"""Base for persistent buttons: DynamicItem + the one error path.

custom_id is "tm:<feature>:<action>:<id>"; everything a click needs is
rebuilt from it and the database, so buttons work after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.errors import UserError, reply_error

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


def require_owner(interaction: discord.Interaction, owner_id: int) -> None:
    if interaction.user.id != owner_id:
        raise UserError(f"Only <@{owner_id}> can use these buttons. Run /imagine to make your own.")


def persistent_view(*items: discord.ui.Item) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
