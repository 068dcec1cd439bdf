"""The web companion's tables (data/migrations/0007_web.sql, read and written by bot/web/): the servers each
member shares with the bot, /web login links and browser sessions. Plain SQL;
every write in engine.db.transaction."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from engine.db import transaction


@dataclass(frozen=True)
class Session:
    user_id: int
    user_name: str
    csrf: str
    expires_at: float


@dataclass(frozen=True)
class Guild:
    id: int
    name: str


# -- membership ------------------------------------------------------------------


async def remember_member(
    db: aiosqlite.Connection, user_id: int, guild_id: int, user_name: str, guild_name: str, source: str = "command",
    roles: Iterable[int] | None = None,
) -> None:
    """That the member shares this server with the bot; with `roles`, their roles there now
    (None, as from OAuth, which doesn't say: the roles last seen stay)."""
    stored = None if roles is None else " ".join(str(int(role)) for role in roles)
    async with transaction(db):
        await db.execute(
            "INSERT INTO web_members (user_id, guild_id, user_name, guild_name, source, seen_at, roles)"
            " VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, '')) "
            "ON CONFLICT (user_id, guild_id) DO UPDATE SET user_name = excluded.user_name, "
            "guild_name = CASE WHEN excluded.guild_name != '' THEN excluded.guild_name ELSE guild_name END, "
            "seen_at = excluded.seen_at, roles = COALESCE(?, roles)",
            (user_id, guild_id, user_name, guild_name, source, time.time(), stored, stored),
        )


async def roles_of(db: aiosqlite.Connection, user_id: int, guild_id: int) -> tuple[int, ...]:
    """The member's roles on the server as the bot last saw them (none before any command there)."""
    rows = await db.execute_fetchall(
        "SELECT roles FROM web_members WHERE user_id = ? AND guild_id = ?", (user_id, guild_id)
    )
    return tuple(int(role) for role in rows[0][0].split()) if rows else ()


async def guilds_of(db: aiosqlite.Connection, user_id: int) -> list[Guild]:
    rows = await db.execute_fetchall(
        "SELECT guild_id, guild_name FROM web_members WHERE user_id = ? ORDER BY seen_at DESC", (user_id,)
    )
    return [Guild(row[0], row[1] or f"Server {str(row[0])[-4:]}") for row in rows]


async def names_of(db: aiosqlite.Connection, user_ids: set[int]) -> dict[int, str]:
    """Display names the bot has seen, for "made by"."""
    if not user_ids:
        return {}
    marks = ",".join("?" * len(user_ids))
    rows = await db.execute_fetchall(
        f"SELECT user_id, user_name FROM web_members WHERE user_id IN ({marks}) AND user_name != '' "
        "ORDER BY seen_at", tuple(user_ids),
    )
    return {row[0]: row[1] for row in rows}


# -- login links -----------------------------------------------------------------


async def insert_login(db: aiosqlite.Connection, nonce_hash: str, user_id: int, user_name: str, expires_at: float) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM web_logins WHERE expires_at < ?", (time.time() - 86400,))
        await db.execute(
            "INSERT INTO web_logins (nonce_hash, user_id, user_name, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (nonce_hash, user_id, user_name, time.time(), expires_at),
        )


async def use_login(db: aiosqlite.Connection, nonce_hash: str, now: float) -> tuple[int, str] | None:
    """Mark a link used: (user id, name), or None when unknown, used or expired."""
    async with transaction(db):
        rows = await db.execute_fetchall(
            "SELECT user_id, user_name FROM web_logins WHERE nonce_hash = ? AND used_at IS NULL AND expires_at > ?",
            (nonce_hash, now),
        )
        if not rows:
            return None
        await db.execute("UPDATE web_logins SET used_at = ? WHERE nonce_hash = ?", (now, nonce_hash))
        return rows[0][0], rows[0][1]


# -- sessions --------------------------------------------------------------------


async def insert_session(
    db: aiosqlite.Connection, id_hash: str, user_id: int, user_name: str, csrf: str, expires_at: float
) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (time.time(),))
        await db.execute(
            "INSERT INTO web_sessions (id_hash, user_id, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (id_hash, user_id, user_name, csrf, time.time(), expires_at),
        )


async def get_session(db: aiosqlite.Connection, id_hash: str, now: float) -> Session | None:
    rows = await db.execute_fetchall(
        "SELECT user_id, user_name, csrf, expires_at FROM web_sessions WHERE id_hash = ? AND expires_at > ?",
        (id_hash, now),
    )
    return Session(*rows[0]) if rows else None


async def delete_session(db: aiosqlite.Connection, id_hash: str) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))
