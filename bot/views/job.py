"""❌ Cancel on a job that is waiting or running."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.views.base import PersistentButton, persistent_view


class CancelButton(PersistentButton, template=r"tm:job:cancel:(?P<job>[0-9a-f]{32})"):
    def __init__(self, job_id: str):
        super().__init__(discord.ui.Button(emoji="❌", style=discord.ButtonStyle.secondary, custom_id=f"tm:job:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["job"])

    async def clicked(self, interaction, bot) -> None:
        await flows.cancel(interaction, bot, self.job_id)


def cancel_view(job_id: str) -> discord.ui.View:
    return persistent_view(CancelButton(job_id))
