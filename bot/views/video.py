"""Under each clip of a video: Extend (Auto) · Extend (Manual) · Loop · ❤️; and the motion prompt's modal."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import discord

from bot import flows, flows_video
from bot.ids import ROW_ID
from bot.views.base import ErrorRoutedModal, PersistentButton, persistent_view
from bot.views.remix import MAX_MODAL_TEXT

# action: (label after the clip's number, emoji)
CLIP_ACTIONS = {
    "extend": ("Extend (Auto)", "⏩"),
    "extend_manual": ("Extend (Manual)", "✍️"),
    "loop": ("Loop", "🔁"),
    "like": (None, "❤️"),
}


class ClipButton(PersistentButton, template=rf"tm:clip:(?P<action>extend|extend_manual|loop|like):(?P<image>{ROW_ID})"):
    def __init__(self, action: str, image_id: int, number: int = 0):
        label, emoji = CLIP_ACTIONS[action]
        super().__init__(discord.ui.Button(
            label=f"{number} {label}" if label else str(number or ""), emoji=emoji, style=discord.ButtonStyle.secondary,
            row=max(0, number - 1) if number else None, custom_id=f"tm:clip:{action}:{image_id}",
        ))
        self.action, self.image_id = action, image_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], int(match["image"]))

    async def clicked(self, interaction, bot) -> None:
        if self.action == "like":
            await flows.like(interaction, bot, self.image_id)
        else:
            await flows_video.extend(interaction, bot, self.image_id, manual=self.action == "extend_manual",
                                     loop=self.action == "loop")


def clips_view(clips: list[tuple[int, int]]) -> discord.ui.View:
    """One row per clip shown: (its number in the message, its image id)."""
    return persistent_view(*(ClipButton(action, image_id, number) for number, image_id in clips for action in CLIP_ACTIONS))


class MotionModal(ErrorRoutedModal, title="Animate"):
    """Animate (Manual) and Extend (Manual): the motion prompt, prefilled with the image's prompt."""

    def __init__(self, title: str, prompt: str, submit: Callable[[discord.Interaction, str], Awaitable[None]]):
        super().__init__(title=title, timeout=15 * 60)
        self.prompt = discord.ui.TextInput(
            label="Motion prompt (add --motion high or --raw)", custom_id="prompt", style=discord.TextStyle.paragraph,
            default=prompt[:MAX_MODAL_TEXT] or None, max_length=MAX_MODAL_TEXT, required=True,
        )
        self.add_item(self.prompt)
        self._submit = submit

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._submit(interaction, self.prompt.value)
