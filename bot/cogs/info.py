"""/info: votes, likes and signals from use, unlock state, code, profiles, taste explanation,
jobs, usage and the daily quota."""

from __future__ import annotations

import time

import discord
from discord import app_commands
from discord.ext import commands

from bot import generation
from bot.app import Tastemaker
from bot.flows import format_progress
from bot.ids import role_ids
from engine import profiles
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import JobState

USE_LABELS = {"upscale": "U", "vary": "V", "reroll": "🔄"}  # signals from use, as the grid's buttons read
MAX_FIELD = 1024  # Discord's limit on an embed field's value


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
    prefs = await members.get_settings(bot.db, user.id)
    embed = discord.Embed(title=f"{user.display_name}'s tastemaker profile", colour=discord.Colour.blurple())
    # 1. The profile: explicit votes and likes, signals from use apart; unlocking counts all of them.
    embed.add_field(name="Votes", value=str(status.votes))
    embed.add_field(name="Likes", value=str(status.likes))
    embed.add_field(name="From use", value=use_text(status, prefs.learn_from_use))
    embed.add_field(name="Profile", value=profile_state(status, prefs.learn_from_use), inline=False)
    if status.code and status.public:
        embed.add_field(name="Current code", value=f"`{status.code}` · use it with `--p` (others: `--p {status.code}`)", inline=False)
    elif status.code:  # no invitation to others: they would be refused
        embed.add_field(name="Current code", value=f"`{status.code}` · 🔒 private: only you can use it, with `--p`", inline=False)
    if status.toward or status.away:
        taste = f"You lean toward: {', '.join(status.toward)}"
        if status.away:
            taste += f"; away from: {', '.join(status.away)}"
        embed.add_field(name="Taste", value=taste, inline=False)
    mine = await profiles.list_profiles(bot.db, user.id)
    if len(mine) > 1:
        embed.add_field(name="Profiles", value=_fit(" · ".join(_profile_line(p) for p in mine)), inline=False)
    mix = [p for p in mine if p.default_weight is not None]
    if mix:
        shown = " + ".join(f"{discord.utils.escape_markdown(p.name)} ×{p.default_weight:g}" for p in mix)
        embed.add_field(name="Default mix (a bare `--p`)", value=_fit(shown), inline=False)
    house = await generation.house_taste(bot, guild_id)
    if house is not None:
        embed.add_field(
            name="This server's house taste",
            value=f"`{house[0]}` · {house[1]:.0%} of every prompt's taste here (not with `--style raw` or `--s 0`)",
            inline=False,
        )
    # 2. Jobs and usage.
    active = await db_jobs.active_jobs(bot.db, user.id)
    running = sum(job.state is JobState.RUNNING for job in active)
    images, gpu_seconds = await db_jobs.usage(bot.db, user.id)
    embed.add_field(name="Jobs", value=f"{len(active) - running} queued · {running} running")
    embed.add_field(name="Images made", value=str(images))
    embed.add_field(name="GPU time", value=f"{gpu_seconds:.1f}s")
    # 3. The server's daily quota, when it has one for this member.
    now = time.time()
    quota = await generation.daily_quota(bot, user.id, guild_id, role_ids(user), now)
    if quota.limit is not None:
        embed.add_field(
            name="Images today",
            value=f"{quota.used} of {quota.limit} used · **{quota.left} left** · resets at {quota.resets_text(now)}",
            inline=False,
        )
    return embed


def use_text(status: profiles.ProfileStatus, learning: bool) -> str:
    """Signals from use by kind: "7 U, 2 V, 1 🔄 (learning from use on)"."""
    if not learning:
        return "off (`/prefer learn_from_use on`)"
    counts = [f"{status.signals.get(kind, 0)} {label}" for kind, label in USE_LABELS.items() if status.signals.get(kind)]
    return f"{', '.join(counts) or 'none yet'} (learning from use on)"


def profile_state(status: profiles.ProfileStatus, learning: bool = True) -> str:
    """Unlocked with its confidence, or the progress toward unlocking by the documented rule
    (profiles.UNLOCK_CREDIT: a vote counts 1, a U click 1/2, a like, V or 🔄 1/4)."""
    if status.unlocked:
        return f"Unlocked · confidence {status.confidence:.0%}"
    n = status.remaining
    return (
        f"Locked · {format_progress(status.progress)} of {status.unlock_votes} (votes + use) · "
        f"about {n} more vote{'s' if n != 1 else ''} (`/rank`)"
        + (", or keep using U, V and 🔄 on your grids" if learning else "")
    )


def _profile_line(p: profiles.ProfileSummary) -> str:
    name = f"**{discord.utils.escape_markdown(p.name)}**"
    kind = "" if p.kind == "votes" else f" ({p.kind})"
    code = f" `{p.code}`" if p.code else " (no code yet)"
    return f"{name}{kind}{code}{'' if p.public else ' 🔒'}"


def _fit(text: str) -> str:
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Info(bot))
