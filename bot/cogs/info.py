"""/info: votes, unlock state, code, taste explanation, jobs, usage and the daily quota."""

from __future__ import annotations

import time

import discord
from discord import app_commands
from discord.ext import commands

from bot import generation
from bot.app import Tastemaker
from engine import profiles
from engine.db import jobs as db_jobs
from engine.jobs import JobState


class Info(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Your taste profile, code, jobs and usage")
    async def info(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        embed = await info_embed(self.bot, interaction.user, interaction.guild_id)
        await interaction.followup.send(embed=embed, ephemeral=True)


async def info_embed(bot: Tastemaker, user: discord.abc.User, guild_id: int | None = None) -> discord.Embed:
    status = await profiles.status(bot.db, user.id, bot.settings.unlock_votes)
    embed = discord.Embed(title=f"{user.display_name}'s tastemaker profile", colour=discord.Colour.blurple())
    # 1. The profile.
    if status.unlocked:
        state = f"Unlocked · confidence {status.confidence:.0%}"
    else:
        state = f"Locked · rank {status.remaining} more pairs to unlock (`/rank`)"
    embed.add_field(name="Votes", value=str(status.votes))
    embed.add_field(name="Likes", value=str(status.likes))
    embed.add_field(name="Profile", value=state, inline=False)
    if status.code and status.public:
        embed.add_field(name="Current code", value=f"`{status.code}` · use it with `--p` (others: `--p {status.code}`)", inline=False)
    elif status.code:  # no invitation to others: they would be refused
        embed.add_field(name="Current code", value=f"`{status.code}` · 🔒 private: only you can use it, with `--p`", inline=False)
    if status.toward or status.away:
        taste = f"You lean toward: {', '.join(status.toward)}"
        if status.away:
            taste += f"; away from: {', '.join(status.away)}"
        embed.add_field(name="Taste", value=taste, inline=False)
    # 2. Jobs and usage.
    active = await db_jobs.active_jobs(bot.db, user.id)
    running = sum(job.state is JobState.RUNNING for job in active)
    images, gpu_seconds = await db_jobs.usage(bot.db, user.id)
    embed.add_field(name="Jobs", value=f"{len(active) - running} queued · {running} running")
    embed.add_field(name="Images made", value=str(images))
    embed.add_field(name="GPU time", value=f"{gpu_seconds:.1f}s")
    # 3. The server's daily quota, when it has one for this member.
    now = time.time()
    quota = await generation.daily_quota(bot, user.id, guild_id, generation.role_ids(user), now)
    if quota.limit is not None:
        embed.add_field(
            name="Images today",
            value=f"{quota.used} of {quota.limit} used · **{quota.left} left** · resets at {quota.resets_text(now)}",
            inline=False,
        )
    return embed


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Info(bot))
