"""/blend: 2–5 images become a 2×2 grid from their combined embeddings (U/V/🔄 as /imagine)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import generation, uploads
from bot.app import Tastemaker

SHAPES = [
    app_commands.Choice(name="Portrait (2:3)", value="portrait"),
    app_commands.Choice(name="Square (1:1)", value="square"),
    app_commands.Choice(name="Landscape (3:2)", value="landscape"),
]


class Blend(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Blend 2–5 images into four new ones (PNG, JPEG, WebP, GIF; 8 MB, 16 MP each)")
    @app_commands.describe(image1="An image to blend", image2="Another image", dimensions="The shape of the result")
    @app_commands.choices(dimensions=SHAPES)
    async def blend(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        dimensions: app_commands.Choice[str] | None = None,
    ) -> None:
        attachments = [a for a in (image1, image2, image3, image4, image5) if a]
        generation.check_blend_count(len(attachments))  # before anything is downloaded
        for attachment in attachments:
            uploads.check_attachment(attachment, "/blend")
        shape = dimensions.value if dimensions else "square"
        await generation.answer_first(interaction, generation.blend_prompt(len(attachments), shape))
        pngs = await uploads.read_images(attachments, "/blend")
        prepared = await generation.prepare_blend(self.bot, interaction.user.id, interaction.guild_id, pngs, shape)
        await generation.start(self.bot, interaction, prepared)


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Blend(bot))
