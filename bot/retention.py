"""A member deletes a job; deleted and departed members' images go once the retention has
passed (engine/db/retention.py has the rules). /delete (bot/cogs/retention.py) and the web's
image page both call `delete`; the upkeep cog runs `sweep` and `scrub_deleted`."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite
import discord

from bot import backup
from bot.web import gallery, thumbnails
from engine.db import jobs as db_jobs
from engine.db import members, retention

if TYPE_CHECKING:
    from bot.app import Tastemaker

log = logging.getLogger("bot.retention")
DELETED = "*This job was deleted by its author.*"
JOB_FOLDERS = ("images", "inputs", "quarantine")  # <folder>/<job id>/ under the data dir
# Deleted jobs whose message still shows them. Its WHERE is the partial index jobs_unscrubbed's
# (migration 0013), so the every-minute pass reads that index, not all of jobs: keep them alike.
UNSCRUBBED = "SELECT * FROM jobs WHERE deleted_at IS NOT NULL AND message_id IS NOT NULL AND message_id != 0"


async def delete(db: aiosqlite.Connection, job_id: str) -> int:
    """The member's job leaves every gallery, like and taste now; returns its images' count."""
    images = await retention.delete_job(db, job_id)
    gallery.forget(db, images)
    return len(images)


def kept_days(bot: Tastemaker, guild: members.GuildSettings) -> int:
    """Days this server keeps deleted and departed members' images (the bot's default unless set)."""
    return bot.settings.retention_days if guild.retention_days is None else guild.retention_days


async def sweep(db: aiosqlite.Connection, data_dir: Path, default_days: int, now: float | None = None) -> int:
    """Purge every job whose images are past their retention: rows, then files. Skipped
    while a backup copies (it would miss files its snapshot names). Returns the jobs purged."""
    now = time.time() if now is None else now
    if backup.backup_running(data_dir):
        log.info("retention sweep skipped: a backup is running")
        return 0
    purged = 0
    while due := await retention.due(db, now, default_days):  # purged jobs are not due again
        await asyncio.to_thread(_remove_files, Path(data_dir), await retention.purge(db, due, now))
        purged += len(due)
    await retention.end_departures(db, now, default_days)
    if purged:
        log.info("retention: purged the images of %d jobs", purged)
    return purged


def _remove_files(data_dir: Path, job_ids: list[str]) -> None:
    folders = [data_dir / folder for folder in JOB_FOLDERS]
    folders += [data_dir / thumbnails.THUMBS / str(size) / "images" for size in thumbnails.SIZES]
    for job_id in job_ids:
        for folder in folders:
            shutil.rmtree(folder / job_id, ignore_errors=True)


async def scrub(bot: Tastemaker, record: db_jobs.JobRecord) -> None:
    """The deleted job's Discord message shows no image, prompt or button any more."""
    if record.channel_id and record.message_id:
        message = bot.get_partial_messageable(record.channel_id).get_partial_message(record.message_id)
        try:
            await message.edit(content=DELETED, attachments=[], embeds=[], view=None)
        except (discord.NotFound, discord.Forbidden):
            pass  # gone already, or no longer ours to edit
    await db_jobs.update_job(bot.db, record.id, message_id=None)


async def scrub_deleted(bot: Tastemaker) -> None:
    """Messages of jobs deleted on the web (which has no Discord client) since the last pass."""
    rows = await bot.db.execute_fetchall(UNSCRUBBED)
    for record in map(db_jobs.JobRecord.from_row, rows):
        try:
            await scrub(bot, record)
        except discord.HTTPException as error:  # Discord is having a moment: next pass
            log.warning("could not clear the message of deleted job %s: %s", record.id, error)
