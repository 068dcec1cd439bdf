"""What a member may see, and in which order: the images of the servers they
share with the bot (never another server's, never a deleted job's), newest, most
liked, or For you (ranked by their own taste), and the nearest neighbours of one
image. The web pages and /explore in Discord both read from here.

At a year of a big community (bench/db_scale.py: 500k images) no page view
scans the images: Newest walks the index of each server's finished jobs, Most
liked the like counts that triggers keep (migration 0013), and For you ranks a
cache of each server's candidates, its newest RECENT_CANDIDATES images and its
LIKED_CANDIDATES most liked, kept as whitened taste features (k numbers each)
that follows new images as they arrive.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import numpy as np

from engine import profiles
from engine import taste as tm
from engine.jobs import JobState
from engine.safety import DEFAULT_THRESHOLD

ORDERS = {"new": "Newest", "top": "Most liked", "foryou": "For you"}
RECENT_CANDIDATES = 5000  # For you ranks each server's newest images ...
LIKED_CANDIDATES = 1000  # ... and its most liked of all time
LIKED_REFRESH_S = 60.0  # how often a server's most liked are looked up again
RAW_LIMIT = 1000  # without a rank pool, "more like this" compares the newest this many


@dataclass(frozen=True)
class Shown:
    id: int
    job_id: str
    idx: int
    user_id: int
    guild_id: int
    prompt: str
    kind: str
    request: dict[str, Any]
    width: int
    height: int
    seed: int
    created_at: float
    likes: int
    liked: bool  # by the member asking
    path: str  # the original, relative to the data dir (thumbnails are made from it)
    finished_at: float | None = None
    video: str | None = None  # a clip's MP4 (served by /video/ID); the image is its first frame

    @property
    def codes(self) -> str:
        codes = self.request.get("codes") or []
        return " ".join(code if weight == 1 else f"{code}::{weight:g}" for code, weight in codes)


_COLUMNS = (
    "SELECT i.id, i.job_id, i.idx, i.user_id, j.guild_id, j.prompt, j.kind, j.request, i.width, i.height, i.seed,"
    " i.created_at, COALESCE((SELECT c.likes FROM image_likes c WHERE c.image_id = i.id), 0) AS likes,"
    " EXISTS (SELECT 1 FROM likes l WHERE l.user_id = ? AND l.image_id = i.id) AS liked, i.path, j.finished_at,"
    " i.video"
)
_SELECT = _COLUMNS + " FROM images i JOIN jobs j ON j.id = i.job_id"
# Done, not deleted, and not flagged by its server's content filter (spoilered, or
# allowed in an age-restricted channel): a gallery has neither spoilers nor age gates.
# Blocked images have no row at all (bot/delivery.py).
_VISIBLE = (
    " AND j.state = ? AND j.deleted_at IS NULL AND (i.nsfw IS NULL OR i.nsfw < COALESCE("
    "(SELECT s.nsfw_threshold FROM guild_settings s WHERE s.guild_id = j.guild_id), ?))"
)
_VISIBLE_ARGS = (JobState.DONE.value, DEFAULT_THRESHOLD)


def _shown(row: aiosqlite.Row) -> Shown:
    values = dict(row)
    values["request"] = json.loads(values["request"])
    values["liked"] = bool(values["liked"])
    return Shown(**values)


async def get_visible(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], image_id: int) -> Shown | None:
    """The image if it belongs to one of these servers, else None (shown as 404)."""
    if not guild_ids:
        return None
    rows = await db.execute_fetchall(
        _SELECT + f" WHERE i.id = ? AND j.guild_id IN ({','.join('?' * len(guild_ids))})" + _VISIBLE,
        (viewer, image_id, *guild_ids, *_VISIBLE_ARGS),
    )
    return _shown(rows[0]) if rows else None


async def page(
    db: aiosqlite.Connection, viewer: int, guild_ids: list[int], order: str, offset: int, limit: int
) -> tuple[list[Shown], bool]:
    """One page of a server's images; the flag says whether For you could use the
    member's taste (False: no rank pool yet, so newest first)."""
    if not guild_ids:
        return [], order != "foryou"
    if order == "foryou":
        ranked = await _for_you(db, viewer, guild_ids)
        if ranked is not None:
            return await _by_ids(db, viewer, guild_ids, ranked[offset : offset + limit]), True
        return await _newest(db, viewer, guild_ids, offset, limit), False
    if order == "top":
        return await _most_liked(db, viewer, guild_ids, offset, limit), True
    return await _newest(db, viewer, guild_ids, offset, limit), True


async def _newest(
    db: aiosqlite.Connection, viewer: int, guild_ids: list[int], offset: int, limit: int, *, unliked: bool = False
) -> list[Shown]:
    """Newest first (finished jobs, then their images in order): each server's jobs
    index walked from the top (jobs_gallery), merged across servers. ``unliked``:
    only images nobody likes (the tail of Most liked)."""
    extra = " AND NOT EXISTS (SELECT 1 FROM image_likes c WHERE c.image_id = i.id AND c.likes > 0)" if unliked else ""
    sql = _SELECT + " WHERE j.guild_id = ?" + _VISIBLE + extra + " ORDER BY j.finished_at DESC, i.job_id, i.idx LIMIT ? OFFSET ?"
    if len(guild_ids) == 1:
        rows = await db.execute_fetchall(sql, (viewer, guild_ids[0], *_VISIBLE_ARGS, limit, offset))
        return [_shown(r) for r in rows]
    # Several servers: each one's first offset + limit by their sort keys only, merged; then the page's rows.
    keys = ("SELECT i.id, j.finished_at, i.job_id, i.idx FROM images i JOIN jobs j ON j.id = i.job_id WHERE j.guild_id = ?"
            + _VISIBLE + extra + " ORDER BY j.finished_at DESC, i.job_id, i.idx LIMIT ?")
    lists = [await db.execute_fetchall(keys, (g, *_VISIBLE_ARGS, offset + limit)) for g in guild_ids]
    merged = heapq.merge(*lists, key=lambda r: (-(r["finished_at"] or 0.0), r["job_id"], r["idx"]))
    return await _by_ids(db, viewer, guild_ids, [r["id"] for r in itertools.islice(merged, offset, offset + limit)])


async def _most_liked(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], offset: int, limit: int) -> list[Shown]:
    """Most liked first (ties: the newer image first), then the images nobody likes, newest first."""
    sql = (
        "SELECT c.image_id AS id, c.likes FROM image_likes c JOIN images i ON i.id = c.image_id"
        " JOIN jobs j ON j.id = i.job_id WHERE c.guild_id = ? AND c.likes > 0" + _VISIBLE
        + " ORDER BY c.likes DESC, c.image_id DESC LIMIT ?"
    )
    wanted = offset + limit  # by sort keys only: the page's rows are read once it is known
    lists = [await db.execute_fetchall(sql, (g, *_VISIBLE_ARGS, wanted)) for g in guild_ids]
    liked = [r["id"] for r in itertools.islice(heapq.merge(*lists, key=lambda r: (-r["likes"], -r["id"])), wanted)]
    if len(liked) == wanted:
        return await _by_ids(db, viewer, guild_ids, liked[offset:])
    # `liked` holds every liked image: the page goes on with the newest that nobody likes
    if offset >= len(liked):
        return await _newest(db, viewer, guild_ids, offset - len(liked), limit, unliked=True)
    first = await _by_ids(db, viewer, guild_ids, liked[offset:])
    return first + await _newest(db, viewer, guild_ids, 0, limit - (len(liked) - offset), unliked=True)


async def _by_ids(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], ids: list[int]) -> list[Shown]:
    if not ids:
        return []
    rows = await db.execute_fetchall(
        _SELECT + f" WHERE i.id IN ({','.join('?' * len(ids))}) AND j.guild_id IN ({','.join('?' * len(guild_ids))})"
        + _VISIBLE,
        (viewer, *ids, *guild_ids, *_VISIBLE_ARGS),
    )
    found = {row["id"]: _shown(row) for row in rows}
    return [found[i] for i in ids if i in found]


# -- For you and "more like this": each server's candidates, as taste features ----------


@dataclass(eq=False)
class _Candidates:
    """One server's newest and most liked images with their whitened embeddings
    z (basis.whiten) on one basis: what For you ranks and "more like this" searches."""

    basis_version: int
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    z: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    newest_id: int = 0  # the highest image id seen: newer ones are fetched on the next view
    liked_at: float = -np.inf
    liked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# Per database connection (the bot has one; tests and benches open several), per server.
_candidates: weakref.WeakKeyDictionary[aiosqlite.Connection, dict[int, _Candidates]] = weakref.WeakKeyDictionary()


async def _server_candidates(db: aiosqlite.Connection, guild_id: int, basis: tm.Basis) -> _Candidates:
    """The server's candidates, brought up to date: images newer than the last look,
    and the most liked every LIKED_REFRESH_S; trimmed back to the newest and the
    most liked when they outgrow both. Their z come from the taste index (image_taste)."""
    servers = _candidates.setdefault(db, {})
    found = servers.get(guild_id)
    if found is None or found.basis_version != basis.version:
        found = servers[guild_id] = _Candidates(basis.version, z=np.zeros((0, basis.k), dtype=np.float32))
    async with found.lock:
        ((top,),) = await db.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM images")
        if found.newest_id == 0:  # first look: the newest jobs' images, through the gallery index
            rows = await db.execute_fetchall(
                "SELECT i.id FROM jobs j JOIN images i ON i.job_id = j.id WHERE j.guild_id = ? AND i.id <= ?"
                + _VISIBLE + " ORDER BY j.finished_at DESC, i.idx LIMIT ?",
                (guild_id, top, *_VISIBLE_ARGS, RECENT_CANDIDATES),
            )
        else:  # since then: the images with higher ids (rowids grow); CROSS JOIN: walk those, not the server's jobs
            rows = await db.execute_fetchall(
                "SELECT i.id FROM images i CROSS JOIN jobs j ON j.id = i.job_id WHERE j.guild_id = ? AND i.id > ?"
                " AND i.id <= ?" + _VISIBLE, (guild_id, found.newest_id, top, *_VISIBLE_ARGS),
            )
        new = [r[0] for r in rows]
        found.newest_id = max(found.newest_id, int(top))
        now = time.monotonic()
        if now - found.liked_at >= LIKED_REFRESH_S:
            rows = await db.execute_fetchall(
                "SELECT c.image_id FROM image_likes c JOIN images i ON i.id = c.image_id JOIN jobs j ON j.id = i.job_id"
                " WHERE c.guild_id = ? AND c.likes > 0" + _VISIBLE + " ORDER BY c.likes DESC, c.image_id DESC LIMIT ?",
                (guild_id, *_VISIBLE_ARGS, LIKED_CANDIDATES),
            )
            found.liked, found.liked_at = np.array([r[0] for r in rows], dtype=np.int64), now
            new += found.liked.tolist()
        new = np.setdiff1d(np.array(new, dtype=np.int64), found.ids).tolist()
        if new:
            z = await profiles.image_z(db, basis, new)
            ids = np.array([i for i in new if i in z], dtype=np.int64)
            if len(ids):
                found.ids = np.concatenate([found.ids, ids])
                found.z = np.concatenate([found.z, np.stack([z[int(i)] for i in ids]).astype(np.float32)])
        if len(found.ids) > RECENT_CANDIDATES + LIKED_CANDIDATES + 500:
            recent = found.ids >= np.sort(found.ids)[-RECENT_CANDIDATES]
            keep = recent | np.isin(found.ids, found.liked)
            found.ids, found.z = found.ids[keep], found.z[keep]
    return found


async def _candidates_of(db: aiosqlite.Connection, guild_ids: list[int], basis: tm.Basis) -> tuple[np.ndarray, np.ndarray]:
    parts = [await _server_candidates(db, g, basis) for g in guild_ids]
    return np.concatenate([p.ids for p in parts]), np.concatenate([p.z for p in parts])


def forget(db: aiosqlite.Connection, image_ids: list[int]) -> None:
    """Drop images (a deleted job's) from every server's candidates at once."""
    for found in _candidates.get(db, {}).values():
        keep = ~np.isin(found.ids, image_ids)
        found.ids, found.z = found.ids[keep], found.z[keep]


async def _for_you(db: aiosqlite.Connection, viewer: int, guild_ids: list[int]) -> list[int] | None:
    """Candidate ids, best first under the member's taste (w^T z); None without a rank pool."""
    found = await profiles.current_basis(db)
    if found is None:
        return None
    basis, _ = found
    posterior = await profiles.member_posterior(db, viewer)
    ids, z = await _candidates_of(db, guild_ids, basis)
    scores = z @ posterior.mean.astype(np.float32)
    return ids[np.argsort(-scores, kind="stable")].tolist()


async def more_like(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], image: Shown, n: int = 8) -> list[Shown]:
    """The visible images nearest to this one: cosine in the rank pool's principal
    space (z scaled back by Lambda^1/2) among the servers' candidates; without a
    pool, the cosine of raw embeddings among the newest RAW_LIMIT."""
    rows = await db.execute_fetchall("SELECT embedding FROM images WHERE id = ?", (image.id,))
    if not rows or rows[0][0] is None:
        return []
    mine = np.frombuffer(rows[0][0], dtype=np.float32).astype(np.float64)
    found = await profiles.current_basis(db)
    if found is not None and found[0].d == mine.shape[0]:
        basis = found[0]
        ids, z = await _candidates_of(db, guild_ids, basis)
        scale = np.sqrt(basis.variances).astype(np.float32)
        points, target = z * scale, (await profiles.image_z(db, basis, [image.id]))[image.id] * scale
    else:
        ids, points = await _raw_embeddings(db, guild_ids, mine.shape[0])
        target = mine
    keep = ids != image.id
    ids, points = ids[keep], points[keep]
    norms = np.maximum(np.linalg.norm(points, axis=1), 1e-12)
    order = np.argsort(-(points @ target) / norms, kind="stable")[:n]
    return await _by_ids(db, viewer, guild_ids, [int(i) for i in ids[order]])


async def _raw_embeddings(db: aiosqlite.Connection, guild_ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    rows = await db.execute_fetchall(
        f"SELECT i.id, i.embedding FROM images i JOIN jobs j ON j.id = i.job_id WHERE j.guild_id IN "
        f"({','.join('?' * len(guild_ids))})" + _VISIBLE + " AND length(i.embedding) = ? ORDER BY i.id DESC LIMIT ?",
        (*guild_ids, *_VISIBLE_ARGS, 4 * dim, RAW_LIMIT),
    )
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    emb = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim).astype(np.float64)
    return ids, emb


@dataclass(frozen=True)
class PoolPick:
    id: int
    prompt: str
    style: str
    path: str


async def taste_pictures(db: aiosqlite.Connection, user_id: int, n: int = 6) -> tuple[list[PoolPick], list[PoolPick]]:
    """The rank-pool images the member's taste scores highest and lowest."""
    found = await profiles.current_basis(db)
    if found is None:
        return [], []
    basis, _ = found
    pool, z = await profiles.whitened_pool(db, basis)
    if not pool:
        return [], []
    w = (await profiles.member_posterior(db, user_id)).mean
    if not np.any(w):
        return [], []
    order = np.argsort(-(z @ w), kind="stable")
    picks = [PoolPick(pool[i].id, pool[i].prompt, pool[i].style, pool[i].path) for i in order]
    n = min(n, len(picks) // 2)
    return picks[:n], picks[::-1][:n]


async def pool_image_path(db: aiosqlite.Connection, pool_image_id: int) -> str | None:
    rows = await db.execute_fetchall("SELECT path FROM pool_images WHERE id = ?", (pool_image_id,))
    return rows[0][0] if rows else None
