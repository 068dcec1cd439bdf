"""/explore: the server's most liked images, or For you, privately in Discord."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import flows_explore
from bot.app import Tastemaker


class Explore(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Browse this server's images: most liked, or ranked by your taste")
    @app_commands.describe(order="top: the most liked; foryou: ranked by your taste")
    async def explore(self, interaction: discord.Interaction, order: Literal["top", "foryou"] = "top") -> None:
        await flows_explore.show(interaction, self.bot, order, 0, replace=False)


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Explore(bot))
