"""U1–U4 (one image), V1–V4 (variations) and 🔄 (reroll) under a finished grid."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.views.base import PersistentButton, persistent_view


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
        if self.action == "reroll":
            await flows.reroll(interaction, bot, self.job_id)
        elif self.action[0] == "u":
            await flows.pick(interaction, bot, self.job_id, int(self.action[1]))
        else:
            await flows.vary_pick(interaction, bot, self.job_id, int(self.action[1]))


def grid_view(job_id: str) -> discord.ui.View:
    actions = [f"u{n}" for n in range(1, 5)] + [f"v{n}" for n in range(1, 5)] + ["reroll"]
    return persistent_view(*(GridButton(action, job_id) for action in actions))
