"""U1–U4 (one image), V1–V4 (variations) and 🔄 (reroll) under a finished grid."""

from __future__ import annotations

import re
from pathlib import Path

import discord

from bot import generation, render
from bot.errors import UserError
from bot.views.base import PersistentButton, persistent_view, require_owner
from bot.views.image import image_view
from bot.views.remix import RemixModal
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import JobKind


class GridButton(PersistentButton, template=r"tm:grid:(?P<action>[uv][1-4]|reroll):(?P<job>[0-9a-f]{32})"):
    def __init__(self, action: str, job_id: str):
        if action == "reroll":
            button = discord.ui.Button(emoji="🔄", style=discord.ButtonStyle.secondary, row=2)
        else:
            button = discord.ui.Button(label=action.upper(), style=discord.ButtonStyle.secondary, row=0 if action[0] == "u" else 1)
        button.custom_id = f"tm:grid:{action}:{job_id}"
        super().__init__(button)
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], match["job"])

    async def clicked(self, interaction, bot) -> None:
        job = await db_jobs.get_job(bot.db, self.job_id)
        if job is None or job.state != "done":
            raise UserError("That grid is no longer stored on this bot.")
        require_owner(interaction, job.user_id)
        if self.action == "reroll":
            await self.reroll(interaction, bot, job)
            return
        index = int(self.action[1])
        images = {image.idx: image for image in await db_jobs.images_of(bot.db, job.id)}
        if index not in images:
            raise UserError(f"This grid has no image {index}.")
        if self.action[0] == "u":
            await upscale_pick(interaction, bot, job, images[index])
        else:
            await vary(interaction, bot, images[index].id, "strong", job.request.get("text", job.prompt))

    async def reroll(self, interaction, bot, job) -> None:
        text = job.request.get("text", job.prompt)

        async def submit(interaction: discord.Interaction, prompt: str) -> None:
            prepared = await generation.prepare_imagine(bot, interaction.user.id, interaction.guild_id, prompt, reroll=True)
            await generation.start(bot, interaction, prepared)

        await with_remix(interaction, bot, text, submit)


async def upscale_pick(interaction: discord.Interaction, bot, job: db_jobs.JobRecord, image: db_jobs.ImageRecord) -> None:
    """U: the image on its own, with Vary / Upscale / Like (no GPU work, as in Midjourney)."""
    path = Path(bot.settings.data_dir) / image.path
    if not path.exists():
        raise UserError("That image's file is gone from the bot's disk.")
    await interaction.response.send_message(
        render.single(job, image.idx), file=discord.File(path, filename=f"tastemaker_{image.id}.png"), view=image_view(image.id)
    )


async def vary(interaction: discord.Interaction, bot, image_id: int, strength: str, text: str) -> None:
    async def submit(interaction: discord.Interaction, prompt: str) -> None:
        prepared = await generation.prepare_from_image(
            bot, interaction.user.id, interaction.guild_id, image_id, JobKind.VARIATION, strength, prompt
        )
        await generation.start(bot, interaction, prepared)

    await with_remix(interaction, bot, text, submit)


async def with_remix(interaction: discord.Interaction, bot, text: str, submit) -> None:
    """Remix mode opens the prompt for editing first; otherwise run at once."""
    if (await members.get_settings(bot.db, interaction.user.id)).remix:
        await interaction.response.send_modal(RemixModal(text, submit))
    else:
        await submit(interaction, text)


def grid_view(job_id: str) -> discord.ui.View:
    actions = [f"u{n}" for n in range(1, 5)] + [f"v{n}" for n in range(1, 5)] + ["reroll"]
    return persistent_view(*(GridButton(action, job_id) for action in actions))
