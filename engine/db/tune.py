"""Style tunes (/tune, data/migrations/0010_tune.sql): plain parameterised SQL.

A tune is one POOL job of the member's prompt in 16 or 32 styles, its kept
renders (raw OpenCLIP embeddings as float32 blobs) and the pairs the member
was shown and picked from. No taste math here (bot/flows_tune.py and
engine/profiles.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite
import numpy as np

from engine.db import transaction
from engine.db.taste import f32_array, f32_blob

# A tune's states (tunes.state)
DRAWING = "drawing"  # its POOL job is queued or running
PICKING = "picking"  # its renders are stored: the member picks from pairs
FINISHING = "finishing"  # its profile is being made (claimed by one click)
MADE = "made"  # the profile and its code exist
FAILED = "failed"  # too few renders passed the server's content filter

CHOICES = ("left", "right", "skip")


@dataclass(frozen=True)
class Tune:
    id: int
    user_id: int
    guild_id: int | None
    job_id: str
    prompt: str
    name: str | None
    styles: int
    state: str
    code: str | None
    created_at: float


@dataclass(frozen=True)
class TuneImage:
    id: int
    tune_id: int
    style: str
    path: str  # relative to the data dir
    embedding: np.ndarray
    nsfw: float | None


@dataclass(frozen=True)
class TunePair:
    id: int
    tune_id: int
    left_id: int
    right_id: int
    choice: str | None
    shown_at: float
    answered_at: float | None


_TUNE = "id, user_id, guild_id, job_id, prompt, name, styles, state, code, created_at"
_PAIR = "id, tune_id, left_id, right_id, choice, shown_at, answered_at"


def _tune(row) -> Tune:
    return Tune(*tuple(row))


def _pair(row) -> TunePair:
    return TunePair(*tuple(row))


async def insert_tune(
    db: aiosqlite.Connection, user_id: int, guild_id: int | None, job_id: str, prompt: str, name: str | None, styles: int
) -> int:
    async with transaction(db):
        cursor = await db.execute(
            "INSERT INTO tunes (user_id, guild_id, job_id, prompt, name, styles, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, guild_id, job_id, prompt, name, styles, DRAWING, time.time()),
        )
        return int(cursor.lastrowid)


async def delete_tune(db: aiosqlite.Connection, tune_id: int) -> None:
    """A tune whose job was never queued (a limit refused it)."""
    async with transaction(db):
        await db.execute("DELETE FROM tunes WHERE id = ?", (tune_id,))


async def get_tune(db: aiosqlite.Connection, tune_id: int) -> Tune | None:
    rows = await db.execute_fetchall(f"SELECT {_TUNE} FROM tunes WHERE id = ?", (tune_id,))
    return _tune(rows[0]) if rows else None


async def tune_for_job(db: aiosqlite.Connection, job_id: str) -> Tune | None:
    rows = await db.execute_fetchall(f"SELECT {_TUNE} FROM tunes WHERE job_id = ?", (job_id,))
    return _tune(rows[0]) if rows else None


async def set_state(
    db: aiosqlite.Connection, tune_id: int, state: str, *, expect: str | None = None, code: str | None = None
) -> bool:
    """Move a tune to `state` (only from `expect` when given); False when it wasn't there."""
    async with transaction(db):
        sql = "UPDATE tunes SET state = ?, code = COALESCE(?, code) WHERE id = ?"
        args: tuple = (state, code, tune_id)
        if expect is not None:
            sql += " AND state = ?"
            args += (expect,)
        cursor = await db.execute(sql, args)
        return cursor.rowcount == 1


async def add_images(
    db: aiosqlite.Connection, tune_id: int, images: Sequence[tuple[str, str, Sequence[float], float | None]]
) -> bool:
    """Store a drawing tune's kept renders (style, path, embedding, nsfw) and open it
    for picking, at once. False (nothing stored) when it was no longer drawing."""
    async with transaction(db):
        cursor = await db.execute("UPDATE tunes SET state = ? WHERE id = ? AND state = ?", (PICKING, tune_id, DRAWING))
        if cursor.rowcount != 1:
            return False
        await db.executemany(
            "INSERT INTO tune_images (tune_id, style, path, embedding, nsfw) VALUES (?, ?, ?, ?, ?)",
            [(tune_id, style, path, f32_blob(embedding), nsfw) for style, path, embedding, nsfw in images],
        )
        return True


async def images_of(db: aiosqlite.Connection, tune_id: int) -> list[TuneImage]:
    rows = await db.execute_fetchall(
        "SELECT id, tune_id, style, path, embedding, nsfw FROM tune_images WHERE tune_id = ? ORDER BY id", (tune_id,)
    )
    return [TuneImage(r[0], r[1], r[2], r[3], f32_array(r[4]), r[5]) for r in rows]


async def image_count(db: aiosqlite.Connection, tune_id: int) -> int:
    ((n,),) = await db.execute_fetchall("SELECT COUNT(*) FROM tune_images WHERE tune_id = ?", (tune_id,))
    return int(n)


async def insert_pair(db: aiosqlite.Connection, tune_id: int, left_id: int, right_id: int) -> int:
    async with transaction(db):
        cursor = await db.execute(
            "INSERT INTO tune_pairs (tune_id, left_id, right_id, shown_at) VALUES (?, ?, ?, ?)",
            (tune_id, left_id, right_id, time.time()),
        )
        return int(cursor.lastrowid)


async def get_pair(db: aiosqlite.Connection, pair_id: int) -> TunePair | None:
    rows = await db.execute_fetchall(f"SELECT {_PAIR} FROM tune_pairs WHERE id = ?", (pair_id,))
    return _pair(rows[0]) if rows else None


async def pairs_of(db: aiosqlite.Connection, tune_id: int) -> list[TunePair]:
    rows = await db.execute_fetchall(f"SELECT {_PAIR} FROM tune_pairs WHERE tune_id = ? ORDER BY id", (tune_id,))
    return [_pair(r) for r in rows]


async def open_pair(db: aiosqlite.Connection, tune_id: int) -> TunePair | None:
    """The newest pair shown and not answered yet (to show again on Start)."""
    rows = await db.execute_fetchall(
        f"SELECT {_PAIR} FROM tune_pairs WHERE tune_id = ? AND choice IS NULL ORDER BY id DESC LIMIT 1", (tune_id,)
    )
    return _pair(rows[0]) if rows else None


async def answer_pair(db: aiosqlite.Connection, pair_id: int, choice: str) -> bool:
    """Record a pick or a skip; False when the pair was already answered."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
    async with transaction(db):
        cursor = await db.execute(
            "UPDATE tune_pairs SET choice = ?, answered_at = ? WHERE id = ? AND choice IS NULL",
            (choice, time.time(), pair_id),
        )
        return cursor.rowcount == 1


async def pick_count(db: aiosqlite.Connection, tune_id: int) -> int:
    """Pairs answered left or right (skips don't count)."""
    ((n,),) = await db.execute_fetchall(
        "SELECT COUNT(*) FROM tune_pairs WHERE tune_id = ? AND choice IN ('left', 'right')", (tune_id,)
    )
    return int(n)
