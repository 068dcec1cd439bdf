"""The bot's record of jobs (who asked, where to post, what happened) and their
images: the one repository of the `jobs` and `images` tables. Embeddings are
stored and returned as float32."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite
import numpy as np

from engine.db import transaction
from engine.jobs import JobState


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    prompt: str
    request: dict[str, Any]
    parent_image_id: int | None
    state: JobState
    cursor: str
    percent: float | None
    error: str | None
    gpu_seconds: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    delivered_at: float | None
    images: int  # what it makes (a grid 4, an upscale 1): counted against the daily quota unless it failed
    deleted_at: float | None = None  # its member deleted it: its images are hidden now, purged later
    purged_at: float | None = None  # its images, uploads and prompt are gone (engine/db/retention.py)

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> JobRecord:
        values = dict(row)
        values["request"] = json.loads(values["request"])
        values["state"] = JobState(values["state"])
        return cls(**values)


@dataclass(frozen=True)
class ImageRecord:
    id: int
    job_id: str
    idx: int
    user_id: int
    path: str
    width: int
    height: int
    seed: int
    embedding: np.ndarray | None
    created_at: float
    nsfw: float | None = None  # open_nsfw score; NULL for images made before the check (shown as before)
    video: str | None = None  # a clip's MP4 (relative to the data dir); the row's path is its first frame

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ImageRecord:
        values = dict(row)
        blob = values["embedding"]
        values["embedding"] = None if blob is None else np.frombuffer(blob, dtype=np.float32)
        return cls(**values)


async def insert_job(
    db: aiosqlite.Connection,
    *,
    id: str,
    kind: str,
    user_id: int,
    guild_id: int | None,
    channel_id: int | None,
    prompt: str,
    request: dict[str, Any],
    parent_image_id: int | None = None,
    images: int = 0,
) -> None:
    async with transaction(db):
        await db.execute(
            "INSERT INTO jobs (id, kind, user_id, guild_id, channel_id, prompt, request, parent_image_id, images,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (id, kind, user_id, guild_id, channel_id, prompt, json.dumps(request), parent_image_id, images, time.time()),
        )


_JOB_COLUMNS = {
    "request", "images", "message_id", "channel_id", "state", "cursor", "percent", "error", "gpu_seconds",
    "started_at", "finished_at", "delivered_at",
}


async def update_job(db: aiosqlite.Connection, job_id: str, **fields: Any) -> None:
    unknown = set(fields) - _JOB_COLUMNS
    if unknown:
        raise ValueError(f"unknown job columns {sorted(unknown)}")
    if fields:
        if "request" in fields:
            fields = {**fields, "request": json.dumps(fields["request"])}
        assignments = ", ".join(f"{column} = ?" for column in fields)  # names from the fixed set above
        async with transaction(db):
            await db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))


async def get_job(db: aiosqlite.Connection, job_id: str) -> JobRecord | None:
    rows = await db.execute_fetchall("SELECT * FROM jobs WHERE id = ?", (job_id,))
    return JobRecord.from_row(rows[0]) if rows else None


async def find_jobs(
    db: aiosqlite.Connection, prefix: str, *, user_id: int, guild_id: int | None, limit: int = 2
) -> list[JobRecord]:
    """A member's jobs on one server (None: in their DMs) whose id starts with `prefix`
    (lower-case hex; ids are hex, so every one that starts with it sorts below prefix + "g")."""
    rows = await db.execute_fetchall(
        "SELECT * FROM jobs WHERE id >= ? AND id < ? AND user_id = ? AND guild_id IS ? ORDER BY id LIMIT ?",
        (prefix, prefix + "g", user_id, guild_id, limit),
    )
    return [JobRecord.from_row(row) for row in rows]


async def undelivered(db: aiosqlite.Connection) -> list[JobRecord]:
    """Jobs whose message still needs an edit: in flight, or finished but not yet shown."""
    rows = await db.execute_fetchall(
        "SELECT * FROM jobs WHERE delivered_at IS NULL AND message_id IS NOT NULL ORDER BY created_at"
    )
    return [JobRecord.from_row(row) for row in rows]


async def active_jobs(
    db: aiosqlite.Connection, user_id: int | None = None, guild_id: int | None = None
) -> list[JobRecord]:
    """Queued and running jobs, of one member and/or one server when given."""
    sql = "SELECT * FROM jobs WHERE state IN (?, ?)"
    args: list = [JobState.QUEUED, JobState.RUNNING]
    for column, value in (("user_id", user_id), ("guild_id", guild_id)):
        if value is not None:
            sql += f" AND {column} = ?"  # column names from the fixed pair above
            args.append(value)
    return [JobRecord.from_row(row) for row in await db.execute_fetchall(sql + " ORDER BY created_at", args)]


async def add_image(
    db: aiosqlite.Connection,
    *,
    job_id: str,
    idx: int,
    user_id: int,
    path: str,
    width: int,
    height: int,
    seed: int,
    embedding: np.ndarray | list[float] | None,
    nsfw: float | None = None,
    video: str | None = None,
) -> int:
    blob = None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes()
    async with transaction(db):
        ((image_id,),) = await db.execute_fetchall(
            "INSERT INTO images (job_id, idx, user_id, path, width, height, seed, embedding, nsfw, video, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id, idx) DO UPDATE SET path = excluded.path RETURNING id",
            (job_id, idx, user_id, path, width, height, seed, blob, nsfw, video, time.time()),
        )
    return image_id


# A deleted job's images are kept until the retention has passed, for no one: no button,
# like or page reaches them (engine/db/retention.py).
_LIVE = " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = images.job_id AND j.deleted_at IS NOT NULL)"


async def images_of(db: aiosqlite.Connection, job_id: str) -> list[ImageRecord]:
    rows = await db.execute_fetchall("SELECT * FROM images WHERE job_id = ?" + _LIVE + " ORDER BY idx", (job_id,))
    return [ImageRecord.from_row(row) for row in rows]


async def get_image(db: aiosqlite.Connection, image_id: int) -> ImageRecord | None:
    rows = await db.execute_fetchall("SELECT * FROM images WHERE id = ?" + _LIVE, (image_id,))
    return ImageRecord.from_row(rows[0]) if rows else None


async def add_usage(db: aiosqlite.Connection, user_id: int, images: int, gpu_seconds: float) -> None:
    async with transaction(db):
        await db.execute(
            "UPDATE users SET images_made = images_made + ?, gpu_seconds = gpu_seconds + ? WHERE id = ?",
            (images, gpu_seconds, user_id),
        )


async def images_since(db: aiosqlite.Connection, user_id: int, guild_id: int | None, since: float) -> int:
    """Images of the member's jobs in this server since a time: made, or queued or
    running (they will be), so queued jobs can't overshoot a quota. Failed and
    cancelled jobs don't count."""
    ((total,),) = await db.execute_fetchall(
        "SELECT COALESCE(SUM(images), 0) FROM jobs WHERE user_id = ? AND guild_id IS ? AND created_at >= ?"
        " AND state IN (?, ?, ?)",
        (user_id, guild_id, since, JobState.QUEUED, JobState.RUNNING, JobState.DONE),
    )
    return int(total)


async def usage(db: aiosqlite.Connection, user_id: int) -> tuple[int, float]:
    rows = await db.execute_fetchall("SELECT images_made, gpu_seconds FROM users WHERE id = ?", (user_id,))
    return (rows[0][0], rows[0][1]) if rows else (0, 0.0)
