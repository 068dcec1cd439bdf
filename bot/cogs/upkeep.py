"""Background upkeep, every minute: the taste index of new images (all of them after a new
basis), so likes, For you and "more like this" read k numbers per image instead of
whitening 1024 (engine.profiles.index_images); a stored fit of every big taste profile that
has none on the basis (after an upgrade or a new basis: engine.profiles.store_fits), so no
member's /rank waits for a year of their comparisons to be fitted; the retention sweep of
deleted and departed members' images (bot/retention.py), and the Discord messages of jobs
deleted on the web."""

from __future__ import annotations

import asyncio
import logging

from discord.ext import commands, tasks

from bot import retention
from bot.app import Tastemaker
from engine import profiles

log = logging.getLogger("bot.upkeep")
EVERY_MINUTES = 1


class Upkeep(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    async def cog_load(self) -> None:
        self.every_minute.start()

    async def cog_unload(self) -> None:
        self.every_minute.cancel()

    @tasks.loop(minutes=EVERY_MINUTES)
    async def every_minute(self) -> None:
        try:
            await self.taste_upkeep()
            await retention.sweep(self.bot.db, self.bot.settings.data_dir, self.bot.settings.retention_days)
            await retention.scrub_deleted(self.bot)
        except Exception:  # logged, and tried again next time
            log.exception("upkeep failed")

    async def taste_upkeep(self) -> None:
        found = await profiles.current_basis(self.bot.db)
        if found is None:
            return
        basis = found[0]
        if await profiles.images_to_index(self.bot.db, basis):  # most minutes: none came, no thread
            indexed = await asyncio.to_thread(profiles.index_images, str(self.bot.settings.db_path), basis)
            if indexed:
                log.info("taste index: %d new images on basis %d", indexed, basis.version)
        fitted = await profiles.store_fits(self.bot.db, basis)
        if fitted:
            log.info("taste fits: %d big profiles fitted on basis %d", fitted, basis.version)


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Upkeep(bot))
