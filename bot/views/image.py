"""Buttons under one image: Vary (Strong), Vary (Subtle), Upscale ×2, ❤️ Like."""

from __future__ import annotations

import re

import discord

from bot import generation
from bot.errors import UserError
from bot.views.base import PersistentButton, persistent_view, require_owner
from engine.db import jobs as db_jobs
from engine.jobs import JobKind

LABELS = {
    "vary_strong": ("Vary (Strong)", "🪄"),
    "vary_subtle": ("Vary (Subtle)", "🪄"),
    "upscale": ("Upscale ×2", "🔍"),
    "like": ("Like", "❤️"),
}


class ImageButton(PersistentButton, template=r"tm:image:(?P<action>vary_strong|vary_subtle|upscale|like):(?P<image>\d+)"):
    def __init__(self, action: str, image_id: int):
        label, emoji = LABELS[action]
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=discord.ButtonStyle.secondary, custom_id=f"tm:image:{action}:{image_id}")
        )
        self.action, self.image_id = action, image_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], int(match["image"]))

    async def clicked(self, interaction, bot) -> None:
        image = await db_jobs.get_image(bot.db, self.image_id)
        if image is None:
            raise UserError("That image is no longer stored on this bot.")
        if self.action == "like":
            await like(interaction, bot, image)
            return
        require_owner(interaction, image.user_id)
        job = await db_jobs.get_job(bot.db, image.job_id)
        text = job.request.get("text", job.prompt) if job else ""
        if self.action == "upscale":
            prepared = await generation.prepare_from_image(bot, interaction.user.id, interaction.guild_id, image.id, JobKind.UPSCALE)
            await generation.start(bot, interaction, prepared)
        else:
            from bot.views.grid import vary

            await vary(interaction, bot, image.id, self.action.removeprefix("vary_"), text)


async def like(interaction: discord.Interaction, bot, image: db_jobs.ImageRecord) -> None:
    from engine import profiles

    counted = await profiles.record_like(bot.db, interaction.user.id, image.id)
    if image.user_id == interaction.user.id:
        note = "Liked. Likes on your own images don't change your taste profile; /rank does."
    elif counted:
        note = "Liked: it counts toward your taste profile."
    else:
        note = "You already liked this one."
    await interaction.response.send_message(note, ephemeral=True)


def image_view(image_id: int, *, upscale: bool = True) -> discord.ui.View:
    actions = ["vary_strong", "vary_subtle"] + (["upscale"] if upscale else []) + ["like"]
    return persistent_view(*(ImageButton(action, image_id) for action in actions))
