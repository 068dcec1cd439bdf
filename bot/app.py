"""The Discord bot: create_bot() builds it, setup_hook wires it up."""

from __future__ import annotations

import hashlib
import json
import logging

import aiosqlite
import discord
from discord.ext import commands

from bot.config import Settings
from bot.delivery import Delivery
from bot.errors import TastemakerTree
from bot.workers import LocalWorkers
from engine import db as database
from engine.db import members
from engine.queue import JobQueue, open_queue

log = logging.getLogger("bot")

# Loaded in this order; a cog that fails to load is logged and skipped.
EXTENSIONS = (
    "bot.cogs.imagine",
    "bot.cogs.rank",
    "bot.cogs.info",
    "bot.cogs.prefer",
    "bot.cogs.codes",
    "bot.cogs.moodboard",
    "bot.cogs.admin",
)


class Tastemaker(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        *,
        db: aiosqlite.Connection | None = None,
        queue: JobQueue | None = None,
        workers: LocalWorkers | None = None,
    ):
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # no privileged intents: slash commands only
            tree_cls=TastemakerTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
        )
        self.settings = settings
        self.db = db
        self.queue = queue
        self.workers = workers
        self._owned: list = []  # what setup_hook opened itself (tests), closed in close()
        self.delivery = Delivery(self)
        self.failed_extensions: list[str] = []

    async def setup_hook(self) -> None:
        # 1. Resources, unless main() passed them in.
        if self.db is None:
            self.db = await database.connect(self.settings.db_path)
            self._owned.append(self.db)
        if self.queue is None:
            self.queue = await open_queue(self.settings.queue_url)
            self._owned.append(self.queue)
        if self.workers is None:
            self.workers = LocalWorkers(self.settings)
            await self.workers.start()
            self._owned.append(self.workers)
        # 2. Command families; each registers its persistent buttons.
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
        for resource in reversed(self._owned):
            try:
                await (resource.stop() if isinstance(resource, LocalWorkers) else resource.close())
            except Exception:
                log.exception("closing %r failed", resource)
        self._owned.clear()


def create_bot(
    settings: Settings | None = None,
    *,
    db: aiosqlite.Connection | None = None,
    queue: JobQueue | None = None,
    workers: LocalWorkers | None = None,
) -> Tastemaker:
    return Tastemaker(settings or Settings(), db=db, queue=queue, workers=workers)
