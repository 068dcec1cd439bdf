"""Background upkeep, every few minutes: the taste index of new images (all of them after a
new basis), so likes, For you and "more like this" read k numbers per image instead of
whitening 1024 (engine.profiles.index_images)."""

from __future__ import annotations

import asyncio
import logging

from discord.ext import commands, tasks

from bot.app import Tastemaker
from engine import profiles

log = logging.getLogger("bot.upkeep")
EVERY_MINUTES = 5


class Upkeep(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    async def cog_load(self) -> None:
        self.every_few_minutes.start()

    async def cog_unload(self) -> None:
        self.every_few_minutes.cancel()

    @tasks.loop(minutes=EVERY_MINUTES)
    async def every_few_minutes(self) -> None:
        try:
            await self.index_images()
        except Exception:  # logged, and tried again next time
            log.exception("upkeep failed")

    async def index_images(self) -> int:
        found = await profiles.current_basis(self.bot.db)
        if found is None:
            return 0
        ((path,),) = await self.bot.db.execute_fetchall("SELECT file FROM pragma_database_list WHERE name = 'main'")
        indexed = await asyncio.to_thread(profiles.index_images, path, found[0])
        if indexed:
            log.info("taste index: %d new images on basis %d", indexed, found[0].version)
        return indexed


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Upkeep(bot))
