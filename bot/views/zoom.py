"""Custom Zoom: edit the prompt and choose the zoom factor before the outpaint runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.views.base import ErrorRoutedModal
from bot.views.remix import MAX_MODAL_TEXT


class CustomZoomModal(ErrorRoutedModal, title="Custom Zoom"):
    def __init__(self, prompt: str, submit: Callable[[discord.Interaction, str, str], Awaitable[None]]):
        super().__init__(timeout=15 * 60)
        self.prompt = discord.ui.TextInput(
            label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph, default=prompt[:MAX_MODAL_TEXT],
            max_length=MAX_MODAL_TEXT, required=True,
        )
        self.factor = discord.ui.TextInput(
            label="Zoom out by (above 1, up to 2)", custom_id="factor", default="1.5", max_length=10, required=True,
        )
        self.add_item(self.prompt)
        self.add_item(self.factor)
        self._submit = submit

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._submit(interaction, self.prompt.value, self.factor.value)
