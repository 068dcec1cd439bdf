"""/rank: vote on pairs of images; each vote refits the member's taste (their main profile, or `profile:`)."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import Tastemaker
from bot.errors import UserError
from bot.flows import show_next_pair
from engine import profiles, rankpool

log = logging.getLogger("bot.rank")

POOL_PER_PROMPT = 6


class Rank(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        self.pool_builder: asyncio.Task | None = None
        self.pool_progress = ""

    async def cog_load(self) -> None:
        if self.bot.settings.auto_pool and await profiles.current_basis(self.bot.db) is None:
            self.pool_builder = asyncio.create_task(self.build_pool(), name="rank-pool")

    async def cog_unload(self) -> None:
        if self.pool_builder is not None:  # before the bot's resources close
            self.pool_builder.cancel()
            await asyncio.gather(self.pool_builder, return_exceptions=True)

    async def build_pool(self) -> None:
        """First start: draw the rank pool through the queue, like `python -m engine.rankpool build`."""
        settings = self.bot.settings
        try:
            styles = rankpool.read_lines(rankpool.STYLES_FILE)
            await self.bot.wait_outside(rankpool.build_pool(
                self.bot.db, self.bot.queue, settings.data_dir, settings.model, rankpool.read_lines(rankpool.PROMPTS_FILE),
                styles, min(POOL_PER_PROMPT, len(styles)), seed=0, on_progress=self._progress,
            ))
            log.info("rank pool ready")
        except Exception:
            log.exception("building the rank pool failed; run `%s` to retry", profiles.POOL_BUILD_COMMAND)

    def _progress(self, message: str) -> None:
        self.pool_progress = message
        log.info("rank pool: %s", message)

    @app_commands.command(description="Pick the image you prefer, pair after pair, to teach the bot your taste")
    @app_commands.describe(profile="One of your profiles to rank into (`/profile create` makes one); your main one if left out")
    async def rank(
        self, interaction: discord.Interaction, profile: app_commands.Range[str, 1, 100] | None = None
    ) -> None:
        if self.pool_builder is not None and not self.pool_builder.done():
            raise UserError(
                "The rank pool is being drawn for this server's first /rank; try again in a few minutes. "
                f"Progress: {self.pool_progress or 'starting'}"
            )
        await show_next_pair(interaction, self.bot, replace=False, profile_name=profile)

    @rank.autocomplete("profile")
    async def _ranked_profiles(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The member's profiles that learn from /rank (not moodboards or tunes)."""
        typed = current.strip().lower()
        found = await profiles.list_profiles(self.bot.db, interaction.user.id)
        return [
            app_commands.Choice(name=f"{p.name} ({p.votes} vote{'s' if p.votes != 1 else ''})", value=p.name)
            for p in found
            if p.kind == "votes" and typed in p.name.lower()
        ][:25]


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Rank(bot))
