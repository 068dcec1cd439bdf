"""/imagine: a prompt becomes a 2×2 grid with U/V/🔄."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import generation
from bot.app import Tastemaker
from engine.params import MAX_INPUT


class Imagine(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Create four images from a prompt")
    @app_commands.describe(prompt="What to draw, then parameters: --ar 3:2 --seed 7 --no text --s 250 --p …")
    async def imagine(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, MAX_INPUT]) -> None:
        await generation.imagine(self.bot, interaction, prompt)  # {a, b} or --repeat: asks first


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Imagine(bot))
