"""Under a /describe result: 1–4 run /imagine with that prompt, 🔄 describes the image again."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.views.base import PersistentButton, persistent_view


class DescribeButton(PersistentButton, template=r"tm:describe:(?P<action>[1-4]|again):(?P<job>[0-9a-f]{32})"):
    def __init__(self, action: str, job_id: str):
        if action == "again":
            button = discord.ui.Button(emoji="🔄", style=discord.ButtonStyle.secondary)
        else:
            button = discord.ui.Button(label=action, style=discord.ButtonStyle.secondary)
        button.custom_id = f"tm:describe:{action}:{job_id}"
        super().__init__(button)
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], match["job"])

    async def clicked(self, interaction, bot) -> None:
        if self.action == "again":
            await flows.describe_again(interaction, bot, self.job_id)
        else:
            await flows.imagine_described(interaction, bot, self.job_id, int(self.action))


def describe_view(job_id: str, count: int = 4) -> discord.ui.View:
    return persistent_view(*(DescribeButton(str(n), job_id) for n in range(1, count + 1)), DescribeButton("again", job_id))
