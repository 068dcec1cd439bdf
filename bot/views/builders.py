"""The bot's views, handed to the flows as `bot.views`.

The buttons call the flows (bot/flows.py), so the flows can't import the
buttons back; the bot carries these builders instead, and a flow attaches
buttons with `bot.views.image(image_id)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import discord

from bot.views.confirm import confirm_view
from bot.views.describe import describe_view
from bot.views.explore import explore_view
from bot.views.grid import grid_view
from bot.views.image import image_view, region_view
from bot.views.job import cancel_view
from bot.views.rank import pair_view
from bot.views.remix import RemixModal
from bot.views.settings import settings_view
from bot.views.tune import start_view, tune_pair_view
from bot.views.video import MotionModal, clips_view
from bot.views.zoom import CustomZoomModal


@dataclass(frozen=True)
class Views:
    grid: Callable[..., discord.ui.View] = grid_view
    image: Callable[..., discord.ui.View] = image_view
    cancel: Callable[..., discord.ui.View] = cancel_view
    pair: Callable[..., discord.ui.View] = pair_view
    settings: Callable[..., discord.ui.View] = settings_view
    remix: Callable[..., discord.ui.Modal] = RemixModal
    zoom: Callable[..., discord.ui.Modal] = CustomZoomModal
    region: Callable[..., discord.ui.View] = region_view
    explore: Callable[..., discord.ui.View] = explore_view
    confirm: Callable[..., discord.ui.View] = confirm_view
    describe: Callable[..., discord.ui.View] = describe_view
    tune_start: Callable[..., discord.ui.View] = start_view
    tune_pair: Callable[..., discord.ui.View] = tune_pair_view
    clips: Callable[..., discord.ui.View] = clips_view
    motion: Callable[..., discord.ui.Modal] = MotionModal
