"""Prompts waiting for the member's Yes: one that makes several jobs ({a, b}
permutations, --repeat) is stored here and its confirm buttons carry the row id."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import aiosqlite

from engine.db import transaction

PENDING_TTL_S = 15 * 60  # as long as Discord keeps the interaction that showed the buttons


@dataclass(frozen=True)
class PendingPrompt:
    id: int
    user_id: int
    guild_id: int | None
    prompts: tuple[tuple[str, int], ...]  # (prompt as the member wrote it, braces expanded; repeat)
    reroll: bool
    created_at: float
    reroll_of: str | None = None  # a 🔄's grid (its job id): the first job queued records the reroll

    @property
    def jobs(self) -> int:
        return sum(repeat for _, repeat in self.prompts)


async def add(
    db: aiosqlite.Connection, user_id: int, guild_id: int | None, prompts: list[tuple[str, int]], *, reroll: bool = False,
    reroll_of: str | None = None,
) -> int:
    now = time.time()
    async with transaction(db):
        await db.execute("DELETE FROM pending_prompts WHERE created_at < ?", (now - PENDING_TTL_S,))
        cursor = await db.execute(
            "INSERT INTO pending_prompts (user_id, guild_id, prompts, reroll, created_at, reroll_of)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, guild_id, json.dumps([list(p) for p in prompts]), int(reroll), now, reroll_of),
        )
        return cursor.lastrowid


async def get(db: aiosqlite.Connection, pending_id: int) -> PendingPrompt | None:
    """The pending prompt, or None when it is gone or expired."""
    rows = await db.execute_fetchall(
        "SELECT id, user_id, guild_id, prompts, reroll, created_at, reroll_of FROM pending_prompts"
        " WHERE id = ? AND created_at >= ?",
        (pending_id, time.time() - PENDING_TTL_S),
    )
    if not rows:
        return None
    id_, user_id, guild_id, prompts, reroll, created_at, reroll_of = rows[0]
    return PendingPrompt(
        id_, user_id, guild_id, tuple((text, int(n)) for text, n in json.loads(prompts)), bool(reroll), created_at,
        reroll_of,
    )


async def take(db: aiosqlite.Connection, pending_id: int) -> bool:
    """Use it up: True for the one caller that removed it (a second click gets False)."""
    async with transaction(db):
        cursor = await db.execute("DELETE FROM pending_prompts WHERE id = ?", (pending_id,))
        return cursor.rowcount == 1
