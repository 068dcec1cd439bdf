"""The Discord bot: create_bot() builds it, setup_hook wires it up."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.ext import commands

from bot.config import Settings
from bot.delivery import Delivery
from bot.errors import TastemakerTree
from bot.resources import Resources
from bot.views.base import StaleButton
from bot.views.builders import Views
from bot.views.confirm import ConfirmButton
from bot.views.describe import DescribeButton
from bot.views.explore import ExploreLikeButton, ExploreNextButton
from bot.views.grid import GridButton
from bot.views.image import ImageButton, RegionSelect
from bot.views.job import CancelButton
from bot.views.rank import RankButton
from bot.views.settings import SettingsButton
from bot.views.tune import TuneButton, TunePairButton
from bot.views.video import ClipButton
from engine.db import members

log = logging.getLogger("bot")

# Every persistent button, registered once in setup_hook; StaleButton answers any other `tm:` id.
DYNAMIC_ITEMS = (
    GridButton, ImageButton, RegionSelect, CancelButton, RankButton, SettingsButton, ExploreLikeButton, ExploreNextButton, ConfirmButton,
    DescribeButton, TuneButton, TunePairButton, ClipButton, StaleButton,
)

# Loaded in this order; a cog that fails to load is logged and skipped.
EXTENSIONS = (
    "bot.cogs.imagine",
    "bot.cogs.rank",
    "bot.cogs.info",
    "bot.cogs.prefer",
    "bot.cogs.profile",
    "bot.cogs.codes",
    "bot.cogs.moodboard",
    "bot.cogs.admin",
    "bot.cogs.web",
    "bot.cogs.explore",
    "bot.cogs.show",
    "bot.cogs.blend",
    "bot.cogs.describe",
    "bot.cogs.tune",
    "bot.cogs.video",
    "bot.cogs.upkeep",
    "bot.cogs.retention",
)


class Tastemaker(commands.Bot):
    """The bot borrows its resources (bot/resources.py): whoever opened them closes them."""

    def __init__(self, settings: Settings, resources: Resources):
        intents = discord.Intents.default()  # slash commands need no privileged intent
        intents.members = settings.members_intent  # members leaving: the retention of their images
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            chunk_guilds_at_startup=False,  # leaves arrive as events: no member list downloaded at start
            tree_cls=TastemakerTree,
            help_command=None,
            # Messages echo members' text: nobody is pinged unless a message says so
            # (a job's messages allow its requester: render.requester_only).
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.db = resources.db
        self.queue = resources.queue
        self.workers = resources.workers
        # How the bot waits on its workers (the job pump, the rank-pool build): as it is.
        # SimCord tests declare these waits as the bot's external input.
        self.wait_outside: Callable[[Awaitable[Any]], Awaitable[Any]] = _as_is
        self.delivery = Delivery(self)
        self.views = Views()  # the flows attach buttons through these (bot/views/builders.py)
        self.failed_extensions: list[str] = []

    async def setup_hook(self) -> None:
        # 1. Persistent buttons: a click on any message ever posted finds its handler.
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        # 2. Command families.
        for name in EXTENSIONS:
            try:
                await self.load_extension(name)
            except Exception:
                self.failed_extensions.append(name)
                log.exception("extension %s failed to load; starting without it", name)
        # 3. Deliver results (also those that finished while we were down).
        self.delivery.start()
        await self.sync_commands()

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync only when the command set changed since the last sync (hash in the database)."""
        guild = discord.Object(self.settings.dev_guild) if self.settings.dev_guild else None
        payload = sorted((command.to_dict(self.tree) for command in self.tree.get_commands()), key=lambda c: c["name"])
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"command_hash:{guild.id if guild else 'global'}"
        if not force and await members.get_meta(self.db, key) == digest:
            return False
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        await members.set_meta(self.db, key, digest)
        log.info("synced %d commands to %s", len(synced), f"guild {guild.id}" if guild else "all guilds")
        return True

    async def close(self) -> None:
        self.delivery.stop()
        await super().close()


def create_bot(settings: Settings, resources: Resources) -> Tastemaker:
    return Tastemaker(settings, resources)


async def _as_is(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
