"""/rank: vote on pairs of images; each vote refits the member's taste."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.views.rank import RankButton, show_next_pair


class Rank(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Pick the image you prefer, pair after pair, to teach the bot your taste")
    async def rank(self, interaction: discord.Interaction) -> None:
        await show_next_pair(interaction, self.bot, replace=False)


async def setup(bot: Tastemaker) -> None:
    bot.add_dynamic_items(RankButton)
    await bot.add_cog(Rank(bot))
