"""Yes / No under the private question before a prompt that makes several jobs is queued."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.ids import ROW_ID
from bot.views.base import PersistentButton, persistent_view


class ConfirmButton(PersistentButton, template=rf"tm:confirm:(?P<answer>yes|no):(?P<pending>{ROW_ID})"):
    def __init__(self, answer: str, pending_id: int):
        yes = answer == "yes"
        super().__init__(discord.ui.Button(
            label="Yes" if yes else "No",
            style=discord.ButtonStyle.success if yes else discord.ButtonStyle.secondary,
            custom_id=f"tm:confirm:{answer}:{pending_id}",
        ))
        self.answer, self.pending_id = answer, pending_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["answer"], int(match["pending"]))

    async def clicked(self, interaction, bot) -> None:
        await flows.confirm_prompt(interaction, bot, self.pending_id, self.answer == "yes")


def confirm_view(pending_id: int) -> discord.ui.View:
    return persistent_view(ConfirmButton("yes", pending_id), ConfirmButton("no", pending_id))
