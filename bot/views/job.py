"""❌ Cancel on a job that is waiting or running."""

from __future__ import annotations

import re

import discord

from bot.views.base import PersistentButton, persistent_view, require_owner
from engine.db import jobs as db_jobs


class CancelButton(PersistentButton, template=r"tm:job:cancel:(?P<job>[0-9a-f]{32})"):
    def __init__(self, job_id: str):
        super().__init__(discord.ui.Button(emoji="❌", style=discord.ButtonStyle.secondary, custom_id=f"tm:job:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["job"])

    async def clicked(self, interaction, bot) -> None:
        record = await db_jobs.get_job(bot.db, self.job_id)
        if record is None:
            await interaction.response.send_message("That job is gone.", ephemeral=True)
            return
        require_owner(interaction, record.user_id)
        if record.state not in ("queued", "running") or not await bot.queue.cancel(record.id):
            await interaction.response.send_message("That job has already finished.", ephemeral=True)
            return
        await interaction.response.send_message("Cancelled. The message updates in a moment.", ephemeral=True)
        await bot.delivery.poke()


def cancel_view(job_id: str) -> discord.ui.View:
    return persistent_view(CancelButton(job_id))
