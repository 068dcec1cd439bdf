"""Remix: edit the prompt before a variation or reroll runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.views.base import ErrorRoutedModal
from engine.params import MAX_INPUT

MAX_MODAL_TEXT = min(MAX_INPUT, 4000)  # Discord caps text inputs at 4000


class RemixModal(ErrorRoutedModal, title="Remix prompt"):
    def __init__(self, prompt: str, submit: Callable[[discord.Interaction, str], Awaitable[None]]):
        super().__init__(timeout=15 * 60)
        self.prompt = discord.ui.TextInput(
            label="Prompt", style=discord.TextStyle.paragraph, default=prompt[:MAX_MODAL_TEXT],
            max_length=MAX_MODAL_TEXT, required=True,
        )
        self.add_item(self.prompt)
        self._submit = submit

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._submit(interaction, self.prompt.value)
