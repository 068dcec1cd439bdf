"""Buttons under one image: Vary (Strong), Vary (Subtle), Upscale ×2, ❤️ Like."""

from __future__ import annotations

import re

import discord

from bot import flows
from bot.views.base import ROW_ID, PersistentButton, persistent_view

LABELS = {
    "vary_strong": ("Vary (Strong)", "🪄"),
    "vary_subtle": ("Vary (Subtle)", "🪄"),
    "upscale": ("Upscale ×2", "🔍"),
    "like": ("Like", "❤️"),
}


class ImageButton(PersistentButton, template=rf"tm:image:(?P<action>vary_strong|vary_subtle|upscale|like):(?P<image>{ROW_ID})"):
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
        if self.action == "like":
            await flows.like(interaction, bot, self.image_id)
        elif self.action == "upscale":
            await flows.upscale(interaction, bot, self.image_id)
        else:
            await flows.vary(interaction, bot, self.image_id, self.action.removeprefix("vary_"))


def image_view(image_id: int, *, upscale: bool = True) -> discord.ui.View:
    actions = ["vary_strong", "vary_subtle"] + (["upscale"] if upscale else []) + ["like"]
    return persistent_view(*(ImageButton(action, image_id) for action in actions))
