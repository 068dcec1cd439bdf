"""Taste tables (data/migrations/0003_taste.sql): plain parameterised SQL.

Embeddings go in and out as float32 blobs, taste vectors as float64 blobs;
callers get numpy arrays back. No taste math here (engine/profiles.py).
"""

from __future__ import annotations

import io
import sqlite3
import time
import weakref
from dataclasses import dataclass

import aiosqlite
import numpy as np

from engine.db import transaction

# ---------------------------------------------------------------------------
# blobs
# ---------------------------------------------------------------------------


def f32_blob(vector) -> bytes:
    return np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()


def f32_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).astype(np.float64)


def f64_blob(vector) -> bytes:
    return np.asarray(vector, dtype=np.float64).reshape(-1).tobytes()


def f64_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float64).copy()


def npz_blob(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


# ---------------------------------------------------------------------------
# bases
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BasisRow:
    version: int
    preset: str
    dim: int
    k: int
    images: int
    created_at: float
    data: bytes


def _basis_row(rows: list[aiosqlite.Row]) -> BasisRow | None:
    if not rows:
        return None
    (row,) = rows
    return BasisRow(row["version"], row["preset"], row["dim"], row["k"], row["images"], row["created_at"], row["data"])


async def next_basis_version(db: aiosqlite.Connection) -> int:
    ((version,),) = await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) + 1 FROM bases")
    return int(version)


async def insert_basis(
    db: aiosqlite.Connection, version: int, preset: str, dim: int, k: int, images: int, data: bytes
) -> None:
    async with transaction(db):
        await db.execute(
            "INSERT INTO bases (version, preset, dim, k, images, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, preset, dim, k, images, time.time(), data),
        )
    _basis_keys.pop(db, None)


BASIS_CHECK_S = 2.0  # how stale the current basis may be: a pool built by another process shows within this
_basis_keys: weakref.WeakKeyDictionary[aiosqlite.Connection, tuple[float, tuple[int, float] | None]] = (
    weakref.WeakKeyDictionary()
)


async def latest_basis_key(db: aiosqlite.Connection) -> tuple[int, float] | None:
    """(version, created_at) of the current basis without its data, for caches."""
    checked = _basis_keys.get(db)
    if checked is not None and time.monotonic() - checked[0] < BASIS_CHECK_S:
        return checked[1]
    rows = await db.execute_fetchall("SELECT version, created_at FROM bases ORDER BY version DESC LIMIT 1")
    key = (int(rows[0][0]), float(rows[0][1])) if rows else None
    _basis_keys[db] = (time.monotonic(), key)
    return key


async def latest_basis(db: aiosqlite.Connection) -> BasisRow | None:
    """The current basis: the highest version."""
    return _basis_row(await db.execute_fetchall("SELECT * FROM bases ORDER BY version DESC LIMIT 1"))


async def get_basis(db: aiosqlite.Connection, version: int) -> BasisRow | None:
    return _basis_row(await db.execute_fetchall("SELECT * FROM bases WHERE version = ?", (version,)))


# ---------------------------------------------------------------------------
# pool images
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolImage:
    id: int
    prompt_id: int
    prompt: str
    style: str
    path: str
    seed: int
    preset: str
    basis_version: int | None
    embedding: np.ndarray  # float64 copy of the stored float32


def _pool_image(row) -> PoolImage:
    return PoolImage(
        row["id"], row["prompt_id"], row["prompt"], row["style"], row["path"], row["seed"], row["preset"],
        row["basis_version"], f32_array(row["embedding"]),
    )


async def next_prompt_id(db: aiosqlite.Connection) -> int:
    ((prompt_id,),) = await db.execute_fetchall("SELECT COALESCE(MAX(prompt_id), 0) + 1 FROM pool_images")
    return int(prompt_id)


async def insert_pool_image(
    db: aiosqlite.Connection, prompt_id: int, prompt: str, style: str, path: str, seed: int, preset: str, embedding
) -> int:
    async with transaction(db):
        (image_id,) = await db.execute_insert(
            "INSERT INTO pool_images (prompt_id, prompt, style, path, seed, preset, embedding, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (prompt_id, prompt, style, path, seed, preset, f32_blob(embedding), time.time()),
        )
    return int(image_id)


async def pool_images_for_basis(db: aiosqlite.Connection, basis_version: int, dim: int) -> list[PoolImage]:
    """The pool of a basis: every image of its embedding size it was built from
    (basis_version <= it)."""
    rows = await db.execute_fetchall(
        "SELECT * FROM pool_images WHERE basis_version IS NOT NULL AND basis_version <= ? AND length(embedding) = ?"
        " ORDER BY id",
        (basis_version, 4 * dim),
    )
    return [_pool_image(r) for r in rows]


async def pool_images_of_dim(db: aiosqlite.Connection, dim: int) -> list[PoolImage]:
    """Every pool image with d-dimensional embeddings (one CLIP space), to build a basis."""
    rows = await db.execute_fetchall("SELECT * FROM pool_images WHERE length(embedding) = ? ORDER BY id", (4 * dim,))
    return [_pool_image(r) for r in rows]


async def pool_prompts(db: aiosqlite.Connection, preset: str) -> set[str]:
    """The prompts already in the pool for this preset."""
    rows = await db.execute_fetchall("SELECT DISTINCT prompt FROM pool_images WHERE preset = ?", (preset,))
    return {r[0] for r in rows}


async def assign_pool_basis(db: aiosqlite.Connection, basis_version: int, dim: int) -> int:
    """Mark the d-dimensional images that have no basis yet as part of this one."""
    async with transaction(db):
        cur = await db.execute(
            "UPDATE pool_images SET basis_version = ? WHERE basis_version IS NULL AND length(embedding) = ?",
            (basis_version, 4 * dim),
        )
    return cur.rowcount


async def pool_counts(db: aiosqlite.Connection) -> tuple[int, int, int]:
    """(images, prompt groups, images without a basis yet)."""
    ((images, prompts, unassigned),) = await db.execute_fetchall(
        "SELECT COUNT(*), COUNT(DISTINCT prompt_id), COALESCE(SUM(basis_version IS NULL), 0) FROM pool_images"
    )
    return int(images), int(prompts), int(unassigned)


# ---------------------------------------------------------------------------
# style words
# ---------------------------------------------------------------------------


async def upsert_style_word(db: aiosqlite.Connection, word: str, preset: str, embedding) -> None:
    async with transaction(db):
        await db.execute(
            "INSERT INTO style_words (word, preset, embedding) VALUES (?, ?, ?)"
            " ON CONFLICT (word, preset) DO UPDATE SET embedding = excluded.embedding",
            (word, preset, f32_blob(embedding)),
        )


async def style_words(db: aiosqlite.Connection, preset: str) -> tuple[list[str], np.ndarray | None]:
    """(words, (n, d) text embeddings) of a preset; (.., None) when there are none."""
    rows = await db.execute_fetchall("SELECT word, embedding FROM style_words WHERE preset = ? ORDER BY word", (preset,))
    if not rows:
        return [], None
    return [r["word"] for r in rows], np.stack([f32_array(r["embedding"]) for r in rows])


# ---------------------------------------------------------------------------
# profiles (data/migrations/0009_profiles.sql)
# ---------------------------------------------------------------------------

MAIN_PROFILE = "main"  # every member's first profile: /rank votes, likes and signals from use


@dataclass(frozen=True)
class Profile:
    id: int
    user_id: int
    name: str
    kind: str  # 'votes' | 'moodboard' | 'tune'
    public: bool  # what its new versions start as: the member's choice for its kind (privacy_kind)
    default_weight: float | None  # mixed into a bare --p with this weight; None: not a default
    created_at: float

    @property
    def is_main(self) -> bool:
        return self.name == MAIN_PROFILE


_PROFILE_COLUMNS = "id, user_id, name, kind, public, default_weight, created_at"


def _profile(row) -> Profile:
    return Profile(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


async def main_profile(db: aiosqlite.Connection, user_id: int) -> Profile:
    """The member's main profile, made on first need (public unless the member said otherwise)."""
    found = await find_profile(db, user_id, MAIN_PROFILE)
    if found is not None:
        return found
    async with transaction(db):
        await db.execute(
            "INSERT OR IGNORE INTO profiles (user_id, name, kind, public, created_at) VALUES (?, ?, 'votes', 1, ?)",
            (user_id, MAIN_PROFILE, time.time()),
        )
    found = await find_profile(db, user_id, MAIN_PROFILE)
    assert found is not None
    return found


async def find_profile(db: aiosqlite.Connection, user_id: int, name: str) -> Profile | None:
    """The member's live profile of this name (case-insensitive)."""
    rows = await db.execute_fetchall(
        f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE user_id = ? AND name = ? COLLATE NOCASE AND deleted_at IS NULL",
        (user_id, name),
    )
    return _profile(rows[0]) if rows else None


async def get_profile(db: aiosqlite.Connection, profile_id: int) -> Profile | None:
    """A profile by id, deleted or not (a code's profile)."""
    rows = await db.execute_fetchall(f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE id = ?", (profile_id,))
    return _profile(rows[0]) if rows else None


async def list_profiles(db: aiosqlite.Connection, user_id: int) -> list[Profile]:
    """The member's live profiles, main first, then oldest first."""
    rows = await db.execute_fetchall(
        f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE user_id = ? AND deleted_at IS NULL"
        " ORDER BY name != ?, created_at, id",
        (user_id, MAIN_PROFILE),
    )
    return [_profile(r) for r in rows]


async def insert_profile(db: aiosqlite.Connection, user_id: int, name: str, kind: str, public: bool) -> Profile | None:
    """A new profile; None when the member already has a live one of that name."""
    try:
        async with transaction(db):
            (profile_id,) = await db.execute_insert(
                "INSERT INTO profiles (user_id, name, kind, public, created_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, name, kind, int(public), time.time()),
            )
    except sqlite3.IntegrityError:
        return None
    return await get_profile(db, int(profile_id))


async def delete_profile(db: aiosqlite.Connection, profile_id: int) -> None:
    """Leave the list; its codes keep working."""
    async with transaction(db):
        await db.execute(
            "UPDATE profiles SET deleted_at = ?, default_weight = NULL WHERE id = ? AND deleted_at IS NULL",
            (time.time(), profile_id),
        )


async def set_default_weights(db: aiosqlite.Connection, user_id: int, weights: dict[int, float]) -> None:
    """The member's default mix: these profiles with these weights, no others."""
    async with transaction(db):
        await db.execute("UPDATE profiles SET default_weight = NULL WHERE user_id = ?", (user_id,))
        for profile_id, weight in weights.items():
            await db.execute(
                "UPDATE profiles SET default_weight = ? WHERE id = ? AND user_id = ?", (weight, profile_id, user_id)
            )


def privacy_kind(profile_kind: str) -> str:
    """The kind a member's privacy choice is made for: 'moodboard' for moodboards, 'votes'
    (taste) for every other profile (main, named ones, tunes)."""
    return "moodboard" if profile_kind == "moodboard" else "votes"


_OF_KIND = {"votes": "kind != 'moodboard'", "moodboard": "kind = 'moodboard'"}


async def kind_public(db: aiosqlite.Connection, user_id: int, kind: str) -> bool | None:
    """The member's choice for a privacy kind, as every profile of that kind holds it
    (deleted ones too); None when they never had a profile of that kind."""
    rows = await db.execute_fetchall(
        f"SELECT MIN(public) FROM profiles WHERE user_id = ? AND {_OF_KIND[kind]}", (user_id,)
    )
    return None if rows[0][0] is None else bool(rows[0][0])


async def set_profiles_public(db: aiosqlite.Connection, user_id: int, public: bool, kind: str | None = None,
                              *, all_versions: bool = False) -> int:
    """The member's choice for every profile of a privacy kind (``privacy_kind``; None: both
    kinds), inherited by their new versions and by new profiles of that kind; with
    all_versions, every existing version of them too. Returns the versions changed."""
    scope = f"user_id = ? AND {_OF_KIND[kind]}" if kind else "user_id = ?"
    async with transaction(db):
        await db.execute(f"UPDATE profiles SET public = ? WHERE {scope}", (int(public), user_id))
        if not all_versions:
            return 0
        cur = await db.execute(
            f"UPDATE profile_versions SET public = ? WHERE public != ? AND profile_id IN (SELECT id FROM profiles WHERE {scope})",
            (int(public), int(public), user_id),
        )
    return cur.rowcount


# ---------------------------------------------------------------------------
# rank pairs (votes)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RankPair:
    id: int
    user_id: int
    left_id: int
    right_id: int
    shown_at: float
    choice: str | None
    answered_at: float | None
    profile_id: int | None


async def insert_rank_pair(db: aiosqlite.Connection, user_id: int, left_id: int, right_id: int, profile_id: int) -> int:
    async with transaction(db):
        (pair_id,) = await db.execute_insert(
            "INSERT INTO rank_pairs (user_id, left_id, right_id, shown_at, profile_id) VALUES (?, ?, ?, ?, ?)",
            (user_id, left_id, right_id, time.time(), profile_id),
        )
    return int(pair_id)


async def get_rank_pair(db: aiosqlite.Connection, pair_id: int) -> RankPair | None:
    rows = await db.execute_fetchall(
        "SELECT id, user_id, left_id, right_id, shown_at, choice, answered_at, profile_id FROM rank_pairs WHERE id = ?",
        (pair_id,),
    )
    return RankPair(*rows[0]) if rows else None


async def answer_rank_pair(db: aiosqlite.Connection, pair_id: int, user_id: int, choice: str) -> bool:
    """Record the answer once: False when the pair is not this member's, was
    answered, or the member already answered the same two images for the same
    profile in another row (an older /rank message that showed them too)."""
    async with transaction(db):
        cur = await db.execute(
            "UPDATE rank_pairs SET choice = ?, answered_at = ? WHERE id = ? AND user_id = ? AND choice IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM rank_pairs o WHERE o.user_id = rank_pairs.user_id"
            " AND o.profile_id IS rank_pairs.profile_id"
            " AND o.choice IS NOT NULL AND o.id != rank_pairs.id"
            " AND MIN(o.left_id, o.right_id) = MIN(rank_pairs.left_id, rank_pairs.right_id)"
            " AND MAX(o.left_id, o.right_id) = MAX(rank_pairs.left_id, rank_pairs.right_id))",
            (choice, time.time(), pair_id, user_id),
        )
    return cur.rowcount == 1


PAIR_KEY = 2**32  # an unordered pair of pool image ids as one number: min * PAIR_KEY + max


async def answered_pairs(db: aiosqlite.Connection, profile_id: int) -> np.ndarray:
    """Every pair answered for the profile, skips included, as keys (PAIR_KEY)."""
    rows = await db.execute_fetchall(
        "SELECT MIN(left_id, right_id) * ? + MAX(left_id, right_id) FROM rank_pairs WHERE profile_id = ?"
        " AND choice IS NOT NULL", (PAIR_KEY, profile_id),
    )
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


async def vote_count(db: aiosqlite.Connection, profile_id: int) -> int:
    """Answered pairs of the profile that were votes (left or right); skips do not count."""
    ((count,),) = await db.execute_fetchall(
        "SELECT COUNT(*) FROM rank_pairs WHERE profile_id = ? AND choice IN ('left', 'right')", (profile_id,)
    )
    return int(count)


def _in(values) -> str:
    return ",".join("?" * len(values))


async def vote_pairs(db: aiosqlite.Connection, users: list[int]) -> list[tuple[int, int, int]]:
    """(user_id, winner pool image id, loser pool image id) of each vote into these members'
    main profiles, oldest first: what the community prior is fitted on."""
    rows = await db.execute_fetchall(
        "SELECT user_id, CASE choice WHEN 'left' THEN left_id ELSE right_id END,"
        " CASE choice WHEN 'left' THEN right_id ELSE left_id END FROM rank_pairs WHERE choice IN ('left', 'right')"
        f" AND profile_id IN (SELECT id FROM profiles WHERE name = ? AND user_id IN ({_in(users)})) ORDER BY id",
        (MAIN_PROFILE, *users),
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def image_z(db: aiosqlite.Connection, basis_version: int, ids: list[int]) -> dict[int, np.ndarray]:
    """The stored z (float32, image_taste) of these images on this basis; others are left out."""
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        rows = await db.execute_fetchall(
            f"SELECT image_id, z FROM image_taste WHERE image_id IN ({_in(chunk)}) AND basis_version = ?",
            (*chunk, basis_version),
        )
        found.update((r[0], np.frombuffer(r[1], dtype=np.float32)) for r in rows)
    return found


async def put_image_z(db: aiosqlite.Connection, basis_version: int, z: dict[int, np.ndarray]) -> None:
    async with transaction(db):
        await db.executemany(
            "INSERT INTO image_taste (image_id, basis_version, z) VALUES (?, ?, ?) ON CONFLICT (image_id)"
            " DO UPDATE SET basis_version = excluded.basis_version, z = excluded.z",
            [(i, basis_version, np.asarray(v, dtype=np.float32).tobytes()) for i, v in z.items()],
        )


async def images_after(db: aiosqlite.Connection, after_id: int, limit: int) -> list[tuple[int, bytes | None]]:
    """(id, raw embedding) of the next images by id: the taste index's backfill."""
    rows = await db.execute_fetchall(
        "SELECT id, embedding FROM images WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
    )
    return [(r[0], r[1]) for r in rows]


async def newest_image_id(db: aiosqlite.Connection) -> int:
    """The highest image id (0 for none): the primary key's last entry, no row read."""
    ((newest,),) = await db.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM images")
    return int(newest)


_VOTE = (
    "SELECT id, CASE choice WHEN 'left' THEN left_id ELSE right_id END, CASE choice WHEN 'left' THEN right_id"
    " ELSE left_id END, answered_at FROM rank_pairs WHERE profile_id = ? AND choice IN ('left', 'right')"
)


async def profile_votes(db: aiosqlite.Connection, profile_id: int, after: float | None = None) -> list[tuple[int, int, int, float]]:
    """(rank_pairs id, winner pool image id, loser pool image id, answered_at) of the profile's
    votes (those answered after `after`, when given), by id."""
    since, args = (" AND answered_at > ?", (profile_id, after)) if after is not None else ("", (profile_id,))
    rows = await db.execute_fetchall(_VOTE + since + " ORDER BY id", args)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class StoredFit:
    basis_version: int
    prior_made: float
    use_key: str
    votes: int
    voted_through: float
    observations: int
    mean: np.ndarray
    precision: np.ndarray


async def get_fit(db: aiosqlite.Connection, profile_id: int, basis_version: int) -> StoredFit | None:
    rows = await db.execute_fetchall(
        "SELECT basis_version, prior_made, use_key, votes, voted_through, observations, mean, precision FROM taste_fits"
        " WHERE profile_id = ? AND basis_version = ?", (profile_id, basis_version),
    )
    if not rows:
        return None
    r = rows[0]
    k = len(r[6]) // 8
    return StoredFit(r[0], r[1], r[2], r[3], r[4], r[5], f64_array(r[6]), f64_array(r[7]).reshape(k, k))


async def put_fit(db: aiosqlite.Connection, profile_id: int, fit: StoredFit) -> None:
    async with transaction(db):
        await db.execute(
            "INSERT INTO taste_fits (profile_id, basis_version, prior_made, use_key, votes, voted_through, observations,"
            " mean, precision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (profile_id) DO UPDATE SET"
            " basis_version = excluded.basis_version, prior_made = excluded.prior_made, use_key = excluded.use_key,"
            " votes = excluded.votes, voted_through = excluded.voted_through, observations = excluded.observations,"
            " mean = excluded.mean, precision = excluded.precision",
            (profile_id, fit.basis_version, fit.prior_made, fit.use_key, fit.votes, fit.voted_through, fit.observations,
             f64_blob(fit.mean), f64_blob(fit.precision)),
        )


async def unfitted_profiles(
    db: aiosqlite.Connection, basis_version: int, comparisons: int, limit: int = -1
) -> list[int]:
    """Main profiles with about ``comparisons`` or more (a like or a signal from use compares
    three or four images) and no fit stored on this basis, busiest first."""
    rows = await db.execute_fetchall(
        "SELECT p.id FROM taste_counts c JOIN profiles p ON p.user_id = c.user_id AND p.name = ? COLLATE NOCASE"
        " AND p.deleted_at IS NULL WHERE c.votes + 3 * (c.likes + c.signals) >= ?"
        " AND NOT EXISTS (SELECT 1 FROM taste_fits f WHERE f.profile_id = p.id AND f.basis_version = ?)"
        " ORDER BY c.votes + c.likes + c.signals DESC LIMIT ?",
        (MAIN_PROFILE, comparisons, basis_version, limit),
    )
    return [r[0] for r in rows]


async def embeddings_by_id(db: aiosqlite.Connection, table: str, ids: list[int]) -> dict[int, np.ndarray]:
    """Raw float32 embeddings of these rows of ``images`` or ``pool_images`` (rows without one are left out)."""
    if table not in ("images", "pool_images"):
        raise ValueError(f"no embeddings in {table!r}")
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        rows = await db.execute_fetchall(
            f"SELECT id, embedding FROM {table} WHERE id IN ({_in(chunk)}) AND embedding IS NOT NULL", chunk
        )
        found.update((r[0], np.frombuffer(r[1], dtype=np.float32)) for r in rows)
    return found


# ---------------------------------------------------------------------------
# likes and signals from use: they teach the main profile
# ---------------------------------------------------------------------------


async def insert_like(db: aiosqlite.Connection, user_id: int, image_id: int, grid_image_id: int) -> bool:
    """False when the member already liked it."""
    try:
        async with transaction(db):
            await db.execute(
                "INSERT INTO likes (user_id, image_id, grid_image_id, created_at) VALUES (?, ?, ?, ?)",
                (user_id, image_id, grid_image_id, time.time()),
            )
    except sqlite3.IntegrityError:
        return False
    return True


async def like_count(db: aiosqlite.Connection, user_id: int) -> int:
    ((count,),) = await db.execute_fetchall("SELECT COUNT(*) FROM likes WHERE user_id = ?", (user_id,))
    return int(count)


async def like_pairs(
    db: aiosqlite.Connection, user_id: int | None = None, users: list[int] | None = None, *,
    after: int = 0, through: int | None = None,
) -> list[tuple[int, int, int]]:
    """(user_id, liked grid image id, other image id) for each like and each other image of
    the liked image's grid, of one member or of these members, oldest first; only the likes
    with a rowid after ``after`` and up to ``through``, when given."""
    who, args = ("l.user_id = ?", (user_id,)) if user_id is not None else (f"l.user_id IN ({_in(users or ())})", tuple(users or ()))
    rows = await db.execute_fetchall(
        "SELECT l.user_id, g.id, o.id FROM likes l JOIN images g ON g.id = l.grid_image_id"
        f" JOIN images o ON o.job_id = g.job_id AND o.id != g.id WHERE {who} AND l.rowid > ? AND l.rowid <= ?"
        " ORDER BY l.rowid, o.idx",
        (*args, after, through if through is not None else 2**63 - 1),
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def likes_key(db: aiosqlite.Connection, user_id: int) -> tuple[int, int]:
    """(count, newest rowid) of the member's likes: changes whenever one is added or removed."""
    ((count, newest),) = await db.execute_fetchall(
        "SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM likes WHERE user_id = ?", (user_id,)
    )
    return int(count), int(newest)


async def use_counts_through(
    db: aiosqlite.Connection, user_id: int, likes_through: int, signals_through: int
) -> tuple[int, int]:
    """How many of the member's likes (by rowid) and signals from use (by id) are at or before
    these: fewer than a fit counted there means some were deleted since."""
    ((likes, signals),) = await db.execute_fetchall(
        "SELECT (SELECT COUNT(*) FROM likes WHERE user_id = ? AND rowid <= ?),"
        " (SELECT COUNT(*) FROM use_signals WHERE user_id = ? AND id <= ?)",
        (user_id, likes_through, user_id, signals_through),
    )
    return int(likes), int(signals)


SIGNAL_KINDS = ("upscale", "vary", "reroll")


async def insert_use_signal(
    db: aiosqlite.Connection, user_id: int, kind: str, grid_job_id: str, image_id: int | None, next_job_id: str | None
) -> bool:
    """False when the same signal is already recorded (a second U click on the same image)."""
    try:
        async with transaction(db):
            await db.execute(
                "INSERT INTO use_signals (user_id, kind, grid_job_id, image_id, next_job_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, kind, grid_job_id, image_id, next_job_id, time.time()),
            )
    except sqlite3.IntegrityError:
        return False
    return True


async def use_signal_counts(db: aiosqlite.Connection, user_id: int) -> dict[str, int]:
    """The member's signals from use by kind (upscale, vary, reroll)."""
    rows = await db.execute_fetchall(
        "SELECT kind, COUNT(*) FROM use_signals WHERE user_id = ? GROUP BY kind", (user_id,)
    )
    return {kind: 0 for kind in SIGNAL_KINDS} | {kind: int(n) for kind, n in rows}


@dataclass(frozen=True)
class UseSignal:
    id: int
    user_id: int
    kind: str
    grid: list[int]  # the grid's image ids, in order
    chosen: int | None  # upscale, vary: the chosen image's id
    replacement: list[int]  # reroll: the image ids of the grid it drew, once that job is done (empty before)


async def use_signals(
    db: aiosqlite.Connection, user_id: int | None = None, users: list[int] | None = None, *,
    after: int = 0, through: int | None = None, also: tuple[int, ...] = (),
) -> list[UseSignal]:
    """Signals from use with the images they compare, of one member or of these members
    (those who turned learning from use off are left out of a community's); of one member,
    only those with an id after ``after`` and up to ``through``, and those in ``also``.

    A reroll's new grid counts once its job is done: its images arrive one by one, and a
    comparison that changed with each would have to be taken out of a fit again."""
    sql = (
        "SELECT s.id, s.user_id, s.kind, s.image_id, g.id AS gid, NULL AS rid FROM use_signals s"
        " JOIN images g ON g.job_id = s.grid_job_id WHERE {who}"
        " UNION ALL SELECT s.id, s.user_id, s.kind, s.image_id, NULL, n.id FROM use_signals s"
        " JOIN jobs j ON j.id = s.next_job_id AND j.state = 'done' JOIN images n ON n.job_id = j.id WHERE {who}"
        " ORDER BY 1, 5, 6"
    )
    if user_id is not None:
        who = f"s.user_id = ? AND (s.id > ? AND s.id <= ? OR s.id IN ({_in(also)}))"
        args = (user_id, after, through if through is not None else 2**63 - 1, *also)
        rows = await db.execute_fetchall(sql.format(who=who), args * 2)
    else:
        users = list(users or ())
        who = f"s.user_id IN ({_in(users)}) AND s.user_id NOT IN (SELECT user_id FROM user_settings WHERE learn_from_use = 0)"
        rows = await db.execute_fetchall(sql.format(who=who), (*users, *users))
    found: dict[int, UseSignal] = {}
    for r in rows:
        signal = found.setdefault(r["id"], UseSignal(r["id"], r["user_id"], r["kind"], [], r["image_id"], []))
        (signal.grid if r["gid"] is not None else signal.replacement).append(r["gid"] if r["gid"] is not None else r["rid"])
    return list(found.values())


async def signals_key(db: aiosqlite.Connection, user_id: int) -> tuple[int, int, tuple[int, ...]]:
    """(count, newest id, the rerolls whose new grid isn't done yet) of the member's signals
    from use: changes when one is added or removed, or a reroll's new grid is done."""
    ((count, newest),) = await db.execute_fetchall(
        "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM use_signals WHERE user_id = ?", (user_id,)
    )
    rows = await db.execute_fetchall(
        "SELECT s.id FROM use_signals s WHERE s.user_id = ? AND s.kind = 'reroll' AND NOT EXISTS"
        " (SELECT 1 FROM jobs j WHERE j.id = s.next_job_id AND j.state = 'done') ORDER BY s.id", (user_id,)
    )
    return int(count), int(newest), tuple(r[0] for r in rows)


async def prior_sample(db: aiosqlite.Connection, limit: int) -> list[int]:
    """Up to ``limit`` members with taste data, in a fixed pseudo-random order (the same
    members from one refit to the next, unbiased by activity): the community prior's sample."""
    rows = await db.execute_fetchall(
        "SELECT user_id FROM taste_counts WHERE votes + likes + signals > 0"
        " ORDER BY (user_id * 2654435761) % 4294967296 LIMIT ?", (limit,),
    )
    return sorted(r[0] for r in rows)


async def community_observations(db: aiosqlite.Connection) -> tuple[int, int]:
    """(members with votes, likes or signals from use, their count) over everyone's main profiles."""
    ((members, observations),) = await db.execute_fetchall(  # kept by triggers (migration 0013)
        "SELECT members, observations FROM taste_totals"
    )
    return int(members), int(observations)


# ---------------------------------------------------------------------------
# profile versions (codes)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileVersion:
    code: str
    user_id: int
    kind: str  # how it was made: 'votes' | 'moodboard'
    version: int
    basis_version: int
    w: np.ndarray
    votes: int
    likes: int
    images: int
    confidence: float
    public: bool
    created_at: float
    profile_id: int
    signals: int


def _profile_version(row) -> ProfileVersion:
    return ProfileVersion(
        row["code"], row["user_id"], row["kind"], row["version"], row["basis_version"], f64_array(row["w"]),
        row["votes"], row["likes"], row["images"], row["confidence"], bool(row["public"]), row["created_at"],
        row["profile_id"], row["signals"],
    )


async def insert_profile_version(
    db: aiosqlite.Connection,
    code: str,
    profile: Profile,
    basis_version: int,
    w,
    votes: int,
    likes: int = 0,
    signals: int = 0,
    images: int = 0,
    confidence: float = 0.0,
) -> int:
    """Insert the next version of the profile; returns its number. It is public or
    private as the profile is. Raises sqlite3.IntegrityError when the code is taken."""
    kind = privacy_kind(profile.kind)
    async with transaction(db):  # the next number and its row together
        ((version,),) = await db.execute_fetchall(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM profile_versions WHERE profile_id = ?", (profile.id,)
        )
        await db.execute(
            "INSERT INTO profile_versions (code, user_id, kind, version, basis_version, w, votes, likes, signals, images,"
            " confidence, public, created_at, profile_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " (SELECT public FROM profiles WHERE id = ?), ?, ?)",
            (code, profile.user_id, kind, version, basis_version, f64_blob(w), votes, likes, signals, images,
             confidence, profile.id, time.time(), profile.id),
        )
    return int(version)


async def get_profile_version(db: aiosqlite.Connection, code: str) -> ProfileVersion | None:
    rows = await db.execute_fetchall("SELECT * FROM profile_versions WHERE code = ?", (code,))
    return _profile_version(rows[0]) if rows else None


async def latest_profile_version(db: aiosqlite.Connection, profile_id: int) -> ProfileVersion | None:
    rows = await db.execute_fetchall(
        "SELECT * FROM profile_versions WHERE profile_id = ? ORDER BY version DESC LIMIT 1", (profile_id,)
    )
    return _profile_version(rows[0]) if rows else None


async def list_profile_versions(db: aiosqlite.Connection, user_id: int) -> list[ProfileVersion]:
    rows = await db.execute_fetchall(
        "SELECT * FROM profile_versions WHERE user_id = ? ORDER BY created_at DESC, rowid DESC", (user_id,)
    )
    return [_profile_version(r) for r in rows]


async def set_profile_public(db: aiosqlite.Connection, code: str, user_id: int, public: bool) -> bool:
    """One version's flag. False when the code is not this member's."""
    async with transaction(db):
        cur = await db.execute(
            "UPDATE profile_versions SET public = ? WHERE code = ? AND user_id = ?", (int(public), code, user_id)
        )
    return cur.rowcount == 1


async def vote_profile_norms(db: aiosqlite.Connection, basis_version: int) -> list[float]:
    """|w| of every main profile's latest snapshot on this basis (a typical taste size)."""
    rows = await db.execute_fetchall(
        "SELECT w FROM profile_versions v JOIN profiles p ON p.id = v.profile_id"
        " WHERE p.name = ? AND v.basis_version = ?"
        " AND v.version = (SELECT MAX(version) FROM profile_versions q WHERE q.profile_id = v.profile_id)",
        (MAIN_PROFILE, basis_version),
    )
    return [float(np.linalg.norm(f64_array(r[0]))) for r in rows]


# ---------------------------------------------------------------------------
# community prior cache
# ---------------------------------------------------------------------------


async def get_community_prior(db: aiosqlite.Connection, basis_version: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """(members, observations, mean, cov) cached for this basis, or None."""
    found = await get_community_prior_arrays(db, basis_version)
    return None if found is None else (found[0], found[1], found[2]["mean"], found[2]["cov"])


async def community_prior_stamp(db: aiosqlite.Connection, basis_version: int) -> tuple[int, int, float] | None:
    """(members, observations, created_at) of the prior cached for this basis, without its data."""
    rows = await db.execute_fetchall(
        "SELECT members, observations, created_at FROM community_priors WHERE basis_version = ?", (basis_version,)
    )
    return (int(rows[0][0]), int(rows[0][1]), float(rows[0][2])) if rows else None


async def get_community_prior_arrays(
    db: aiosqlite.Connection, basis_version: int
) -> tuple[int, int, dict[str, np.ndarray]] | None:
    """(members, observations, the prior's named arrays: taste.Prior.from_arrays) or None."""
    rows = await db.execute_fetchall("SELECT * FROM community_priors WHERE basis_version = ?", (basis_version,))
    if not rows:
        return None
    (row,) = rows
    return int(row["members"]), int(row["observations"]), npz_arrays(row["data"])


async def put_community_prior(
    db: aiosqlite.Connection,
    basis_version: int,
    members: int,
    observations: int,
    mean: np.ndarray,
    cov: np.ndarray,
    **clusters: np.ndarray,
) -> float:
    """``clusters``: a clustered prior's other arrays (taste.Prior.to_arrays). Returns its
    created_at (what community_prior_stamp reads back)."""
    data = npz_blob(mean=np.asarray(mean), cov=np.asarray(cov), **{n: np.asarray(a) for n, a in clusters.items()})
    async with transaction(db):
        made = time.time()
        await db.execute(
            "INSERT INTO community_priors (basis_version, members, observations, data, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (basis_version) DO UPDATE SET members = excluded.members, observations = excluded.observations,"
            " data = excluded.data, created_at = excluded.created_at",
            (basis_version, members, observations, data, made),
        )
    return made
