"""Deleted jobs, departed members and how long their images are kept (migration 0013).

A member deletes a job: at once its images leave every gallery and button, the likes on
them and the member's signals from use on it go (they pointed at pictures that are gone),
and the job is marked deleted. Once the server's retention has passed (/admin retention;
the bot's TASTEMAKER_RETENTION_DAYS when unset), the images' rows and files are purged.
A member who leaves a server (or the bot, removed from one) keeps their images there
until the retention has passed since they left; coming back before that cancels it.
"""

from __future__ import annotations

import re
import time

import aiosqlite

from engine.db import transaction

DAY = 86400.0
WHOLE_SERVER = 0  # departures.user_id when the bot itself left the server
JOB_ID = re.compile(r"^[0-9a-f]{1,64}$")  # job ids are hex: safe as folder names


def _in(values) -> str:
    return ",".join("?" * len(values))


async def delete_job(db: aiosqlite.Connection, job_id: str, now: float | None = None) -> list[int]:
    """Hide a job's images now and drop what points at them; returns their ids (empty when
    the job was already deleted)."""
    async with transaction(db):
        changed = await db.execute(
            "UPDATE jobs SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", (now or time.time(), job_id)
        )
        if changed.rowcount == 0:
            return []
        return await _forget_jobs(db, [job_id])


async def _forget_jobs(db: aiosqlite.Connection, job_ids: list[str]) -> list[int]:
    """Likes on these jobs' images (or on single images credited against them), and signals
    from use that chose one of them or came from these jobs; returns the images' ids."""
    marks = _in(job_ids)
    images = [r[0] for r in await db.execute_fetchall(f"SELECT id FROM images WHERE job_id IN ({marks})", job_ids)]
    if images:
        image_marks = _in(images)
        await db.execute(f"DELETE FROM likes WHERE image_id IN ({image_marks}) OR grid_image_id IN ({image_marks})",
                         (*images, *images))
        await db.execute(f"DELETE FROM use_signals WHERE image_id IN ({image_marks})", images)
    await db.execute(f"DELETE FROM use_signals WHERE grid_job_id IN ({marks}) OR next_job_id IN ({marks})",
                     (*job_ids, *job_ids))
    return images


async def record_departure(db: aiosqlite.Connection, guild_id: int, user_id: int, now: float | None = None) -> None:
    """A member left the server (user_id WHOLE_SERVER: the bot was removed from it). They no
    longer see its images on the web; theirs there are purged once the retention has passed."""
    async with transaction(db):
        await db.execute(
            "INSERT INTO departures (guild_id, user_id, departed_at) VALUES (?, ?, ?) ON CONFLICT (guild_id, user_id)"
            " DO NOTHING", (guild_id, user_id, now or time.time()),
        )
        if user_id == WHOLE_SERVER:
            await db.execute("DELETE FROM web_members WHERE guild_id = ?", (guild_id,))
        else:
            await db.execute("DELETE FROM web_members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))


async def cancel_departure(db: aiosqlite.Connection, guild_id: int, user_id: int) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM departures WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))


async def due(db: aiosqlite.Connection, now: float, default_days: int, limit: int = 200) -> list[str]:
    """Jobs past their retention and not purged yet: deleted ones, and departed members'
    (or a departed server's) finished ones."""
    rows = await db.execute_fetchall(
        "SELECT j.id FROM jobs j LEFT JOIN guild_settings s ON s.guild_id = j.guild_id"
        " WHERE j.deleted_at IS NOT NULL AND j.purged_at IS NULL AND j.deleted_at <= ? - ? * COALESCE(s.retention_days, ?)"
        " LIMIT ?",
        (now, DAY, default_days, limit),
    )
    found = [r[0] for r in rows]
    for departed in await _departed(db, now, default_days):
        guild_id, user_id = departed
        who, args = ("", ()) if user_id == WHOLE_SERVER else (" AND j.user_id = ?", (user_id,))
        rows = await db.execute_fetchall(
            f"SELECT j.id FROM jobs j WHERE j.guild_id = ?{who} AND j.purged_at IS NULL"
            " AND j.state IN ('done', 'failed', 'cancelled') LIMIT ?",
            (guild_id, *args, limit - len(found)),
        )
        found += [r[0] for r in rows]
        if len(found) >= limit:
            break
    return found


async def _departed(db: aiosqlite.Connection, now: float, default_days: int) -> list[tuple[int, int]]:
    return [(r[0], r[1]) for r in await db.execute_fetchall(
        "SELECT d.guild_id, d.user_id FROM departures d LEFT JOIN guild_settings s ON s.guild_id = d.guild_id"
        " WHERE d.departed_at <= ? - ? * COALESCE(s.retention_days, ?)", (now, DAY, default_days),
    )]


async def purge(db: aiosqlite.Connection, job_ids: list[str], now: float | None = None) -> list[str]:
    """Remove these jobs' image rows and everything pointing at them; the jobs stay, deleted and
    purged, with their prompt and request cleared (their quota day still counts). Returns the
    job ids whose files may go now."""
    job_ids = sorted(set(job_ids))
    if not job_ids:
        return []
    marks = _in(job_ids)
    async with transaction(db):
        images = await _forget_jobs(db, job_ids)
        if images:
            image_marks = _in(images)
            await db.execute(f"UPDATE jobs SET parent_image_id = NULL WHERE parent_image_id IN ({image_marks})", images)
            for table in ("image_likes", "image_taste"):
                await db.execute(f"DELETE FROM {table} WHERE image_id IN ({image_marks})", images)
            await db.execute(f"DELETE FROM images WHERE id IN ({image_marks})", images)
        now = now or time.time()
        await db.execute(
            f"UPDATE jobs SET deleted_at = COALESCE(deleted_at, ?), purged_at = ?, prompt = '', request = '{{}}'"
            f" WHERE id IN ({marks})", (now, now, *job_ids),
        )
    return [j for j in job_ids if JOB_ID.match(j)]  # the bot's job ids are hex: their folders are safe to remove


async def end_departures(db: aiosqlite.Connection, now: float, default_days: int) -> None:
    """Forget departures whose jobs are all purged (call once nothing is due)."""
    async with transaction(db):
        for guild_id, user_id in await _departed(db, now, default_days):
            await db.execute("DELETE FROM departures WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
