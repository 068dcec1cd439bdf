"""/show JOB: one of your finished jobs posted again, with its buttons.

The job id is the one at the end of every finished message (`job 1a2b3c4d`, the
first characters of the full id; more of it also works). Only your own jobs of
the server you ask in (in DMs: your DM jobs) are found, so another server's
images never appear here. The server's content filter is applied again for
this channel, as U does for a single image.
"""

from __future__ import annotations

import re

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.app import Tastemaker
from bot.errors import UserError
from engine import safety
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import JobState

_ID_RE = re.compile(r"[0-9a-f]{4,32}")


class Show(commands.Cog):
    def __init__(self, bot: Tastemaker):
        self.bot = bot

    @app_commands.command(description="Post one of your finished jobs again, with its buttons")
    @app_commands.describe(job="The job id at the end of its message, like 1a2b3c4d")
    async def show(self, interaction: discord.Interaction, job: app_commands.Range[str, 1, 64]) -> None:
        record = await self.find(interaction, job)
        spoiler = await self.check_filter(interaction, record)
        try:
            message = await self.bot.delivery.final_content(record, spoiler=spoiler, limit=interaction.filesize_limit)
        except FileNotFoundError:
            raise UserError(f"Job `{render.short_id(record.id)}`'s images are gone from the bot's disk.") from None
        files = message.pop("attachments", [])
        if message.get("view") is None:
            message.pop("view", None)
        await interaction.response.send_message(
            files=files, allowed_mentions=render.requester_only(record), **message
        )

    async def find(self, interaction: discord.Interaction, written: str) -> db_jobs.JobRecord:
        record = await find_own_job(self.bot, interaction, written, "/show")
        prefix = written.strip().strip("`").lower()
        if record.state is JobState.DONE:
            return record
        if not record.state.terminal:
            raise UserError(f"Job `{prefix}` isn't finished yet: its message shows how it's going.")
        ended = "was cancelled" if record.state is JobState.CANCELLED else "didn't finish (it failed)"
        raise UserError(f"Job `{prefix}` {ended}, so it has nothing to show.")

    async def check_filter(self, interaction: discord.Interaction, record: db_jobs.JobRecord) -> bool:
        """The server's policy in this channel, for every image delivery kept: refused if one
        is blocked here; True if one is a spoiler here."""
        rules = await members.get_guild(self.bot.db, interaction.guild_id)
        is_nsfw = getattr(interaction.channel, "is_nsfw", None)
        age_restricted = bool(is_nsfw and is_nsfw())
        verdicts = {
            safety.verdict(image.nsfw or 0.0, rules.nsfw_policy, rules.nsfw_threshold, age_restricted)
            for image in await db_jobs.images_of(self.bot.db, record.id)
        }
        if safety.Verdict.BLOCK in verdicts:
            raise UserError(
                f"Job `{render.short_id(record.id)}` has images this server's content filter withholds in this "
                "channel, so it can't be shown here."
            )
        return safety.Verdict.SPOILER in verdicts


async def find_own_job(bot: Tastemaker, interaction: discord.Interaction, written: str, command: str) -> db_jobs.JobRecord:
    """The asking member's job of this server (in DMs: their DM jobs) whose id starts with what they wrote."""
    prefix = written.strip().strip("`").lower()
    if not _ID_RE.fullmatch(prefix):
        raise UserError(
            f"`{written[:40].replace('`', '')}` is not a job id. It's the code at the end of a finished "
            "message, like `job 1a2b3c4d` (4 to 32 of the characters 0–9 and a–f)."
        )
    where = "on this server" if interaction.guild_id else "in your DMs with the bot"
    found = await db_jobs.find_jobs(bot.db, prefix, user_id=interaction.user.id, guild_id=interaction.guild_id)
    if not found:
        raise UserError(f"No job `{prefix}` of yours {where}. {command} finds your own jobs {where}.")
    if len(found) > 1:
        raise UserError(f"Several of your jobs start with `{prefix}`: give more of its id.")
    if found[0].deleted_at is not None:
        raise UserError(f"Job `{prefix}` was deleted.")
    return found[0]


async def setup(bot: Tastemaker) -> None:
    await bot.add_cog(Show(bot))
