"""What a member may see, and in which order: the images of the servers they
share with the bot (never another server's), newest, most liked, or For you
(ranked by their own taste), and the nearest neighbours of one image in CLIP
space. The web pages and /explore in Discord both read from here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite
import numpy as np

from engine import profiles
from engine.db import taste as q
from engine.jobs import JobState
from engine.safety import DEFAULT_THRESHOLD

ORDERS = {"new": "Newest", "top": "Most liked", "foryou": "For you"}
RANKED_LIMIT = 5000  # For you and "more like this" score at most this many newest images


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
    video: str | None = None  # a clip's MP4 (served by /video/ID); the image is its first frame

    @property
    def codes(self) -> str:
        codes = self.request.get("codes") or []
        return " ".join(code if weight == 1 else f"{code}::{weight:g}" for code, weight in codes)


_SELECT = (
    "SELECT i.id, i.job_id, i.idx, i.user_id, j.guild_id, j.prompt, j.kind, j.request, i.width, i.height, i.seed,"
    " i.created_at, (SELECT COUNT(*) FROM likes l WHERE l.image_id = i.id) AS likes,"
    " EXISTS (SELECT 1 FROM likes l WHERE l.image_id = i.id AND l.user_id = ?) AS liked, i.video"
    " FROM images i JOIN jobs j ON j.id = i.job_id"
)


def _shown(row: aiosqlite.Row) -> Shown:
    values = dict(row)
    values["request"] = json.loads(values["request"])
    values["liked"] = bool(values["liked"])
    return Shown(**values)


def _where(guild_ids: list[int]) -> tuple[str, tuple]:
    """Done jobs of these servers, without the images their content filter flagged
    (spoilered, or allowed in an age-restricted channel): a gallery has neither
    spoilers nor age gates. Blocked images have no row at all (bot/delivery.py)."""
    marks = ",".join("?" * len(guild_ids))
    unflagged = (
        " AND (i.nsfw IS NULL OR i.nsfw < COALESCE("
        "(SELECT s.nsfw_threshold FROM guild_settings s WHERE s.guild_id = j.guild_id), ?))"
    )
    where = f" WHERE j.state = ? AND j.guild_id IN ({marks})" + unflagged
    return where, (JobState.DONE.value, *guild_ids, DEFAULT_THRESHOLD)


async def get_visible(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], image_id: int) -> Shown | None:
    """The image if it belongs to one of these servers, else None (shown as 404)."""
    if not guild_ids:
        return None
    where, args = _where(guild_ids)
    rows = await db.execute_fetchall(_SELECT + where + " AND i.id = ?", (viewer, *args, image_id))
    return _shown(rows[0]) if rows else None


async def page(
    db: aiosqlite.Connection, viewer: int, guild_ids: list[int], order: str, offset: int, limit: int
) -> tuple[list[Shown], bool]:
    """One page of a server's images; the flag says whether For you could use the
    member's taste (False: no rank pool yet, so newest first)."""
    if not guild_ids:
        return [], order != "foryou"
    where, args = _where(guild_ids)
    if order == "foryou":
        ranked = await _for_you(db, viewer, guild_ids)
        if ranked is not None:
            ids = ranked[offset : offset + limit]
            rows = await _by_ids(db, viewer, guild_ids, ids)
            return rows, True
        order = "new"
    by = "likes DESC, i.created_at DESC, i.id" if order == "top" else "i.created_at DESC, i.id"
    rows = await db.execute_fetchall(_SELECT + where + f" ORDER BY {by} LIMIT ? OFFSET ?", (viewer, *args, limit, offset))
    return [_shown(r) for r in rows], order != "foryou"


async def _by_ids(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], ids: list[int]) -> list[Shown]:
    if not ids:
        return []
    where, args = _where(guild_ids)
    rows = await db.execute_fetchall(
        _SELECT + where + f" AND i.id IN ({','.join('?' * len(ids))})", (viewer, *args, *ids)
    )
    found = {row["id"]: _shown(row) for row in rows}
    return [found[i] for i in ids if i in found]


async def _embeddings(db: aiosqlite.Connection, guild_ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, unit embeddings) of the newest visible images with d-dimensional embeddings."""
    where, args = _where(guild_ids)
    rows = await db.execute_fetchall(
        "SELECT i.id, i.embedding FROM images i JOIN jobs j ON j.id = i.job_id" + where
        + " AND length(i.embedding) = ? ORDER BY i.created_at DESC LIMIT ?",
        (*args, 4 * dim, RANKED_LIMIT),
    )
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    emb = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]).astype(np.float64)
    return ids, emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


async def _for_you(db: aiosqlite.Connection, viewer: int, guild_ids: list[int]) -> list[int] | None:
    """Visible image ids, best first under the member's taste: the reward
    w^T z(phi) = dot(phi/|phi|, U Lambda^-1/2 w) + const (profiles.reward_direction).
    None without a rank pool. Images the taste can't score (no or another
    model's embedding) come after, newest first."""
    found = await profiles.current_basis(db)
    if found is None:
        return None
    basis, _ = found
    posterior = await profiles.member_posterior(db, viewer)
    ids, emb = await _embeddings(db, guild_ids, basis.d)
    scores = emb @ profiles.reward_direction(basis, posterior.mean)
    ranked = [int(i) for i in ids[np.argsort(-scores, kind="stable")]]
    where, args = _where(guild_ids)
    rest = await db.execute_fetchall(
        "SELECT i.id FROM images i JOIN jobs j ON j.id = i.job_id" + where
        + " AND (i.embedding IS NULL OR length(i.embedding) != ?) ORDER BY i.created_at DESC LIMIT ?",
        (*args, 4 * basis.d, RANKED_LIMIT),
    )
    return ranked + [r[0] for r in rest]


async def more_like(db: aiosqlite.Connection, viewer: int, guild_ids: list[int], image: Shown, n: int = 8) -> list[Shown]:
    """The visible images nearest to this one (cosine of their CLIP embeddings)."""
    rows = await db.execute_fetchall("SELECT embedding FROM images WHERE id = ?", (image.id,))
    if not rows or rows[0][0] is None:
        return []
    mine = np.frombuffer(rows[0][0], dtype=np.float32).astype(np.float64)
    ids, emb = await _embeddings(db, guild_ids, mine.shape[0])
    keep = ids != image.id
    ids, emb = ids[keep], emb[keep]
    order = np.argsort(-(emb @ (mine / max(float(np.linalg.norm(mine)), 1e-12))), kind="stable")[:n]
    return await _by_ids(db, viewer, guild_ids, [int(i) for i in ids[order]])


@dataclass(frozen=True)
class PoolPick:
    id: int
    prompt: str
    style: str


async def taste_pictures(db: aiosqlite.Connection, user_id: int, n: int = 6) -> tuple[list[PoolPick], list[PoolPick]]:
    """The rank-pool images the member's taste scores highest and lowest."""
    found = await profiles.current_basis(db)
    if found is None:
        return [], []
    basis, _ = found
    pool = await q.pool_images_for_basis(db, basis.version, basis.d)
    if not pool:
        return [], []
    w = (await profiles.member_posterior(db, user_id)).mean
    if not np.any(w):
        return [], []
    scores = basis.whiten(np.stack([im.embedding for im in pool])) @ w
    order = np.argsort(-scores, kind="stable")
    picks = [PoolPick(pool[i].id, pool[i].prompt, pool[i].style) for i in order]
    n = min(n, len(picks) // 2)
    return picks[:n], picks[::-1][:n]


async def pool_image_path(db: aiosqlite.Connection, pool_image_id: int) -> str | None:
    rows = await db.execute_fetchall("SELECT path FROM pool_images WHERE id = ?", (pool_image_id,))
    return rows[0][0] if rows else None


async def image_path(db: aiosqlite.Connection, image_id: int) -> str | None:
    rows = await db.execute_fetchall("SELECT path FROM images WHERE id = ?", (image_id,))
    return rows[0][0] if rows else None
