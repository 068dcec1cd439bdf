"""Buttons under one image, as in Midjourney:

Upscale (Subtle) · Upscale (Creative) · Vary (Subtle) · Vary (Strong) · Vary (Region)
Zoom Out 2× · Zoom Out 1.5× · Custom Zoom · Make Square (non-square images)
⬅️ ➡️ ⬆️ ⬇️ · ❤️ Like
Animate (Low motion) · Animate (High motion) · Animate (Manual)

and the private menu of regions that Vary (Region) opens.
"""

from __future__ import annotations

import re

import discord

from bot import flows, flows_video
from bot.ids import ROW_ID
from bot.views.base import PersistentButton, persistent_view
from engine.canvas import REGIONS

# action: (label, emoji, row). "upscale" is the old Upscale ×2's id: it still works, as Subtle.
LABELS = {
    "upscale_subtle": ("Upscale (Subtle)", "⏫", 0),
    "upscale_creative": ("Upscale (Creative)", "⏫", 0),
    "vary_subtle": ("Vary (Subtle)", "🪄", 0),
    "vary_strong": ("Vary (Strong)", "🪄", 0),
    "vary_region": ("Vary (Region)", "🖌️", 0),
    "zoom_2": ("Zoom Out 2×", "🔍", 1),
    "zoom_1.5": ("Zoom Out 1.5×", "🔍", 1),
    "zoom_custom": ("Custom Zoom", "🔍", 1),
    "square": ("Make Square", "🔲", 1),
    "pan_left": (None, "⬅️", 2),
    "pan_right": (None, "➡️", 2),
    "pan_up": (None, "⬆️", 2),
    "pan_down": (None, "⬇️", 2),
    "like": ("Like", "❤️", 2),
    "animate_low": ("Animate (Low motion)", "🎞️", 3),
    "animate_high": ("Animate (High motion)", "🎞️", 3),
    "animate_manual": ("Animate (Manual)", "🎞️", 3),
    "upscale": ("Upscale (Subtle)", "⏫", 0),
}
ZOOMS = {"zoom_2": 2.0, "zoom_1.5": 1.5}
_ACTIONS = "|".join(re.escape(action) for action in LABELS)


class ImageButton(PersistentButton, template=rf"tm:image:(?P<action>{_ACTIONS}):(?P<image>{ROW_ID})"):
    def __init__(self, action: str, image_id: int):
        label, emoji, row = LABELS[action]
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=discord.ButtonStyle.secondary, row=row,
                custom_id=f"tm:image:{action}:{image_id}",
            )
        )
        self.action, self.image_id = action, image_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["action"], int(match["image"]))

    async def clicked(self, interaction, bot) -> None:
        action = self.action
        if action == "like":
            await flows.like(interaction, bot, self.image_id)
        elif action.startswith("upscale"):
            await flows.upscale(interaction, bot, self.image_id, "creative" if action == "upscale_creative" else "subtle")
        elif action == "animate_manual":
            await flows_video.animate_manual(interaction, bot, self.image_id)
        elif action.startswith("animate_"):
            await flows_video.animate(interaction, bot, self.image_id, action.removeprefix("animate_"))
        elif action == "vary_region":
            await flows.vary_region(interaction, bot, self.image_id)
        elif action.startswith("vary_"):
            await flows.vary(interaction, bot, self.image_id, action.removeprefix("vary_"))
        elif action == "zoom_custom":
            await flows.custom_zoom(interaction, bot, self.image_id)
        elif action in ZOOMS:
            await flows.outpaint(interaction, bot, self.image_id, {"zoom": ZOOMS[action]})
        elif action.startswith("pan_"):
            await flows.outpaint(interaction, bot, self.image_id, {"pan": action.removeprefix("pan_")})
        else:  # square
            await flows.outpaint(interaction, bot, self.image_id, {"square": True})


def image_view(image_id: int, *, upscale: bool = True, square: bool = False) -> discord.ui.View:
    """`upscale`: the two Upscale buttons (not under an upscale, nor where ×2 would pass the size
    limit); `square`: Make Square (only on a non-square image)."""
    actions = [action for action in LABELS if action != "upscale"]
    if not upscale:
        actions = [action for action in actions if not action.startswith("upscale")]
    if not square:
        actions.remove("square")
    return persistent_view(*(ImageButton(action, image_id) for action in actions))


class RegionSelect(PersistentButton, template=rf"tm:region:(?P<image>{ROW_ID})"):
    """Vary (Region)'s menu: the region to redraw (engine/canvas.py REGIONS)."""

    def __init__(self, image_id: int):
        options = [discord.SelectOption(label=label, value=region) for region, label in REGIONS.items()]
        super().__init__(
            discord.ui.Select(placeholder="Choose the region to redraw", options=options, custom_id=f"tm:region:{image_id}")
        )
        self.image_id = image_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str], /):
        return cls(int(match["image"]))

    async def clicked(self, interaction, bot) -> None:
        values = (interaction.data or {}).get("values") or [""]
        await flows.vary_region_chosen(interaction, bot, self.image_id, str(values[0]))


def region_view(image_id: int) -> discord.ui.View:
    return persistent_view(RegionSelect(image_id))
