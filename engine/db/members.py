"""Members, their settings and custom options; guild settings; meta keys."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import aiosqlite

from engine.db import transaction
from engine.safety import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class MemberSettings:
    personalize: bool = False
    stylize: int = 100
    remix: bool = False
    auto_dm: bool = False
    suffix: str = ""
    learn_from_use: bool = True  # U, V and 🔄 on the member's own grids teach their main profile


@dataclass(frozen=True)
class GuildSettings:
    allowed_channels: tuple[int, ...] = ()
    max_jobs_per_user: int | None = None
    banned_words: tuple[str, ...] = ()
    max_jobs: int | None = None
    nsfw_policy: str = "block"  # engine.safety.Policy: block, spoiler or allow
    nsfw_threshold: float = DEFAULT_THRESHOLD  # open_nsfw score at or over which an image is flagged
    nsfw_keep: bool = False  # keep blocked images under quarantine/ for the owner to review
    daily_images_per_member: int | None = None  # per UTC day; None = unlimited (role quotas replace it)
    default_model: str | None = None  # the server's model preset without --v; None = the bot's TASTEMAKER_MODEL
    max_permutations: int = 4  # jobs one prompt may expand to ({a, b} permutations, --repeat)
    house_taste: str | None = None  # a code (or 'server') mixed into every prompt; None = off
    house_taste_weight: float = 0.25  # its share of the mix
    house_taste_owner: int | None = None  # who set it: their private code may serve as the house taste
    video_clips: int = 4  # clips a video job makes (/admin video; --bs asks for fewer)
    video_clip_images: int = 8  # what one clip counts against a daily quota, in images
    retention_days: int | None = None  # days deleted or departed members' images are kept; None = the bot's


async def ensure_user(db: aiosqlite.Connection, user_id: int) -> None:
    async with transaction(db):
        await db.execute("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)", (user_id, time.time()))


async def get_settings(db: aiosqlite.Connection, user_id: int) -> MemberSettings:
    rows = await db.execute_fetchall(
        f"SELECT {', '.join(_SETTING_COLUMNS)} FROM user_settings WHERE user_id = ?", (user_id,)
    )
    if not rows:
        return MemberSettings()
    row = dict(zip(_SETTING_COLUMNS, rows[0], strict=True))
    return MemberSettings(**{k: bool(v) if k in _BOOL_SETTINGS else v for k, v in row.items()})


# user_settings has one column per MemberSettings field, as guild_settings has per GuildSettings field.
_SETTING_COLUMNS = tuple(f.name for f in fields(MemberSettings))
_BOOL_SETTINGS = {f.name for f in fields(MemberSettings) if f.type in (bool, "bool")}


async def update_settings(db: aiosqlite.Connection, user_id: int, **changes: object) -> MemberSettings:
    unknown = set(changes) - set(_SETTING_COLUMNS)
    if unknown:
        raise ValueError(f"unknown member settings {sorted(unknown)}")
    async with transaction(db):
        await ensure_user(db, user_id)
        await db.execute("INSERT OR IGNORE INTO user_settings (user_id) VALUES (?)", (user_id,))
        for column, value in changes.items():  # column names come from the fixed set above
            await db.execute(f"UPDATE user_settings SET {column} = ? WHERE user_id = ?", (value, user_id))
        return await get_settings(db, user_id)


async def get_options(db: aiosqlite.Connection, user_id: int) -> dict[str, str]:
    rows = await db.execute_fetchall("SELECT name, value FROM user_options WHERE user_id = ? ORDER BY name", (user_id,))
    return {name: value for name, value in rows}


async def set_option(db: aiosqlite.Connection, user_id: int, name: str, value: str | None) -> None:
    async with transaction(db):
        await ensure_user(db, user_id)
        if value is None:
            await db.execute("DELETE FROM user_options WHERE user_id = ? AND name = ?", (user_id, name))
        else:
            await db.execute(
                "INSERT INTO user_options (user_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value",
                (user_id, name, value),
            )


# guild_settings has one column per GuildSettings field (a tuple is stored as a JSON list),
# so a new server setting is a field here and a column in a migration.
_GUILD_COLUMNS = tuple(f.name for f in fields(GuildSettings))
_JSON_COLUMNS = {f.name for f in fields(GuildSettings) if isinstance(f.default, tuple)}


async def get_guild(db: aiosqlite.Connection, guild_id: int | None) -> GuildSettings:
    if guild_id is None:
        return GuildSettings()
    rows = await db.execute_fetchall(
        f"SELECT {', '.join(_GUILD_COLUMNS)} FROM guild_settings WHERE guild_id = ?", (guild_id,)
    )
    if not rows:
        return GuildSettings()
    row = dict(zip(_GUILD_COLUMNS, rows[0], strict=True))
    return GuildSettings(**{k: tuple(json.loads(v)) if k in _JSON_COLUMNS else v for k, v in row.items()})


async def update_guild(db: aiosqlite.Connection, guild_id: int, **changes: object) -> GuildSettings:
    unknown = set(changes) - set(_GUILD_COLUMNS)
    if unknown:
        raise ValueError(f"unknown guild settings {sorted(unknown)}")
    async with transaction(db):  # read-modify-write: nobody else's change slips in between
        merged = {**asdict(await get_guild(db, guild_id)), **changes}
        values = [json.dumps(list(merged[k])) if k in _JSON_COLUMNS else merged[k] for k in _GUILD_COLUMNS]
        await db.execute(
            f"INSERT INTO guild_settings (guild_id, {', '.join(_GUILD_COLUMNS)}) "
            f"VALUES (?{', ?' * len(_GUILD_COLUMNS)}) ON CONFLICT (guild_id) DO UPDATE SET "
            + ", ".join(f"{k} = excluded.{k}" for k in _GUILD_COLUMNS),
            (guild_id, *values),
        )
        return await get_guild(db, guild_id)


async def role_quotas(db: aiosqlite.Connection, guild_id: int) -> dict[int, int]:
    """role id -> daily images (0 = unlimited)."""
    rows = await db.execute_fetchall("SELECT role_id, daily_images FROM role_quotas WHERE guild_id = ?", (guild_id,))
    return {role_id: images for role_id, images in rows}


async def set_role_quota(db: aiosqlite.Connection, guild_id: int, role_id: int, daily_images: int | None) -> None:
    """A role's daily images (0 = unlimited); None removes the role's quota."""
    async with transaction(db):
        if daily_images is None:
            await db.execute("DELETE FROM role_quotas WHERE guild_id = ? AND role_id = ?", (guild_id, role_id))
        else:
            await db.execute(
                "INSERT INTO role_quotas (guild_id, role_id, daily_images) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id, role_id) DO UPDATE SET daily_images = excluded.daily_images",
                (guild_id, role_id, daily_images),
            )


async def daily_image_quota(db: aiosqlite.Connection, guild_id: int | None, role_ids: Iterable[int]) -> int | None:
    """A member's images per UTC day on this server; None = unlimited.

    The most generous quota among the member's roles that have one (0 there is
    unlimited); for a member with none of them, the server's per-member quota."""
    if guild_id is None:
        return None
    quotas = await role_quotas(db, guild_id)
    mine = [quotas[role] for role in role_ids if role in quotas]
    if mine:
        return None if 0 in mine else max(mine)
    return (await get_guild(db, guild_id)).daily_images_per_member or None


async def get_meta(db: aiosqlite.Connection, key: str) -> str | None:
    rows = await db.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,))
    return rows[0][0] if rows else None


async def set_meta(db: aiosqlite.Connection, key: str, value: str) -> None:
    async with transaction(db):
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
