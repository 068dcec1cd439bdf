"""◀ Left · Skip · Right ▶ under a /rank pair."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.ids import ROW_ID
from bot.views.base import PersistentButton, persistent_view

BUTTONS = {
    "left": ("◀ Left", discord.ButtonStyle.primary),
    "skip": ("Skip", discord.ButtonStyle.secondary),
    "right": ("Right ▶", discord.ButtonStyle.primary),
}


class RankButton(PersistentButton, template=rf"tm:rank:(?P<choice>left|skip|right):(?P<pair>{ROW_ID})"):
    def __init__(self, choice: str, pair_id: int):
        label, style = BUTTONS[choice]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"tm:rank:{choice}:{pair_id}"))
        self.choice, self.pair_id = choice, pair_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["choice"], int(match["pair"]))

    async def clicked(self, interaction, bot) -> None:
        await flows.vote(interaction, bot, self.pair_id, self.choice)


def pair_view(pair_id: int) -> discord.ui.View:
    return persistent_view(*(RankButton(choice, pair_id) for choice in BUTTONS))
