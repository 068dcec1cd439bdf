"""/imagine: a prompt becomes a 2×2 grid with U/V/🔄."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import generation, uploads
from bot.app import Tastemaker
from engine.params import MAX_INPUT


class Imagine(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Create four images from a prompt")
    @app_commands.describe(
        prompt="What to draw, then parameters: --ar 3:2 --seed 7 --no text --s 250 --p …",
        image="An image prompt: the grid takes after it (--iw 0–3); with --video, the start frame to animate",
    )
    async def imagine(
        self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, MAX_INPUT],
        image: discord.Attachment | None = None,
    ) -> None:
        images = []
        if image is not None:  # downloaded and checked first: answer before (what Discord says is checked at once)
            uploads.check_attachment(image, "/imagine")
            await generation.answer_first(interaction, prompt)
            images = await uploads.read_images([image], "/imagine")
        await generation.imagine(self.bot, interaction, prompt, images=images)  # {a, b} or --repeat: asks first


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Imagine(bot))
