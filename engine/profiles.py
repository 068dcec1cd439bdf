"""Taste profiles: votes and likes in, codes and conditioning out.

The bot calls these async functions over its aiosqlite connection; the math is
numpy (engine/taste.py), never torch. In the order a member meets them:

1. ``next_pair`` / ``answer_pair``: /rank shows two pool images of the same
   prompt in different styles (so the difference is style, not content) and
   records the vote. ``record_like``: a like is a win of weight LIKE_WEIGHT of
   the liked image over each other image of its grid. Likes on your own images
   do not count: they are not stored and ``record_like`` returns False.
2. ``member_posterior``: every vote and like is whitened with the *current*
   basis (embeddings are stored raw, so they survive a new basis) and fitted
   under the community prior (empirical Bayes over all members, cached per
   basis and refitted every ``PRIOR_REFRESH`` new votes + likes community-wide).
3. ``current_code`` / ``status``: a profile unlocks after ``unlock_votes``
   votes (skips do not count). When an unlocked profile has changed (new votes,
   new likes, or a new basis) and is next used or shown, it is snapshotted as a
   new version with its own immutable 7-character code; old codes keep working.
   Privacy is the member's choice per profile (votes, moodboards): each new
   version starts public or private as chosen (``set_public``, ``set_all_public``).
4. ``resolve``: ``--p`` picks become one taste vector w in the current basis,
   mixed linearly with weights normalised to sum to 1. ``conditioning`` turns w
   and ``--s`` into the IP-Adapter embedding and scale; ``rerank_direction``
   into a direction for best-of-N.
5. ``create_moodboard``: a profile from uploaded images instead of votes.
   ``explain``: the style words a profile leans toward and away from.

Codes made on an older basis are projected into the current one (see
``project_w``): a taste is a linear reward over normalised CLIP embeddings, so
its direction in CLIP space is re-expressed in the new basis. The part of it
outside the new basis's principal subspace is dropped; for two pools of the
same model that part is small. Codes made with a different image model (other
embedding size) are refused with a clear message.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, replace

import aiosqlite
import numpy as np

from engine import taste as tm
from engine.db import jobs as db_jobs
from engine.db import taste as q
from engine.db import transaction
from engine.presets import PRESETS

__all__ = [
    "DEFAULT_CALIBRATION",
    "Calibration",
    "CodeInfo",
    "Conditioning",
    "Pair",
    "ProfileStatus",
    "Taste",
    "TasteError",
    "answer_pair",
    "conditioning",
    "create_moodboard",
    "current_basis",
    "current_code",
    "explain",
    "get_code",
    "list_codes",
    "member_posterior",
    "next_pair",
    "normalize_code",
    "privacy",
    "project_w",
    "record_like",
    "rerank_direction",
    "resolve",
    "set_all_public",
    "set_public",
    "status",
]

POOL_BUILD_COMMAND = "python -m engine.rankpool build --per-prompt 6"
NO_POOL_MESSAGE = f"There is no rank pool yet. The server owner builds one with `{POOL_BUILD_COMMAND}`."

CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lowercase
CODE_LENGTH = 7
CODE_RE = re.compile(r"^[a-z2-7]{7}$")

PRIOR_SIGMA = 1.0  # cold-start prior N(0, sigma^2 I)
PRIOR_MIN_MEMBERS = 3  # fewer members with data: the cold-start prior
PRIOR_REFRESH = 25  # community votes + likes between refits of the community prior
DEFAULT_TASTE_NORM = 1.0  # |w| of a moodboard when no member has a profile on the basis yet

CHOICES = ("left", "right", "skip")
PROFILE_KINDS = ("votes", "moodboard")  # a member's profiles, each with its own privacy


class TasteError(ValueError):
    """A problem the member can fix or should know about; the message is shown as is."""


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A pair shown by /rank; ``id`` goes into the buttons' custom_id."""

    id: int
    left_id: int
    right_id: int
    left_path: str  # relative to the data dir
    right_path: str
    prompt: str
    left_style: str
    right_style: str
    votes: int  # the member's votes so far (for "N more to unlock")


@dataclass(frozen=True)
class ProfileStatus:
    votes: int
    likes: int
    unlock_votes: int
    unlocked: bool
    confidence: float  # 0..1
    code: str | None  # the current code once unlocked
    toward: list[str]
    away: list[str]
    public: bool = True  # the current code's: False, only its owner may use it

    @property
    def remaining(self) -> int:
        """Votes still needed to unlock."""
        return max(0, self.unlock_votes - self.votes)


@dataclass(frozen=True)
class CodeInfo:
    code: str
    kind: str  # 'votes' | 'moodboard'
    version: int
    votes: int
    likes: int
    images: int  # moodboard images
    confidence: float
    public: bool
    basis_version: int
    created_at: float


@dataclass(frozen=True, eq=False)
class Taste:
    """Resolved ``--p``: one taste vector in the current basis."""

    w: np.ndarray  # (k,)
    basis: tm.Basis
    codes: list[tuple[str, float]]  # the codes used and their normalised weights
    preset: str = ""  # the preset whose OpenCLIP made the basis


@dataclass(frozen=True)
class Conditioning:
    vector: list[float] | None  # c(s) in OpenCLIP image-embedding space; None: no adapter
    scale: float  # IP-Adapter scale lambda(s)


# ---------------------------------------------------------------------------
# strength calibration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """tau(s) and lambda(s): monotone piecewise-linear curves from 0 at s = 0 to
    (tau_max, scale_max) at s = 1000.

    The maxima are per preset (engine/presets.py: taste_tau_max,
    taste_lambda_max) and are calibrated by the stylize benchmark: tau so the
    taste's reward of generated images keeps rising with s, lambda so prompt
    adherence (CLIP text score) stays within budget. The shape puts knots at
    the stylize levels members pick in /settings (50, 100, 250, 750). tau
    rises roughly linearly (tau is in standard deviations of the pool along
    the taste, per unit |w|); lambda rises faster at first, so that the
    default s = 100 already steers visibly. s = 0 is exactly "off".
    """

    tau_max: float = 3.0
    scale_max: float = 0.8
    s: tuple[float, ...] = (0, 50, 100, 250, 750, 1000)
    tau_shape: tuple[float, ...] = (0.0, 0.15, 0.3, 0.5, 0.85, 1.0)
    scale_shape: tuple[float, ...] = (0.0, 0.3, 0.45, 0.6, 0.85, 1.0)

    def __post_init__(self) -> None:
        if not (len(self.s) == len(self.tau_shape) == len(self.scale_shape)) or len(self.s) < 2:
            raise ValueError("calibration knots must have equal lengths >= 2")
        if self.s[0] != 0 or self.tau_shape[0] != 0 or self.scale_shape[0] != 0 or self.s[-1] != 1000:
            raise ValueError("calibration curves must run from (0, 0) to s = 1000")
        for name in ("s", "tau_shape", "scale_shape"):
            values = getattr(self, name)
            if any(b < a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"calibration {name} must be non-decreasing")
        if not (self.tau_max > 0 and 0 < self.scale_max <= 2):
            raise ValueError("need tau_max > 0 and 0 < scale_max <= 2")

    def tau(self, s: float) -> float:
        return self.tau_max * float(np.interp(s, self.s, self.tau_shape))

    def scale(self, s: float) -> float:
        return self.scale_max * float(np.interp(s, self.s, self.scale_shape))


DEFAULT_CALIBRATION = Calibration()


def calibration_for(preset_name: str) -> Calibration:
    """The preset's constants (engine/presets.py, built-in or the owner's file); DEFAULT_CALIBRATION for other names."""
    preset = PRESETS.get(preset_name)
    if preset is None:
        return DEFAULT_CALIBRATION
    return Calibration(tau_max=preset.taste_tau_max, scale_max=preset.taste_lambda_max)


# ---------------------------------------------------------------------------
# pure math
# ---------------------------------------------------------------------------


def conditioning(
    taste_or_w: Taste | np.ndarray,
    basis: tm.Basis | None,
    s: float,
    preset_name: str,
    calibration: Calibration | None = None,
) -> Conditioning:
    """c(s) = rho * normalize(mu_ref + tau(s) U Lambda^1/2 w) and the IP-Adapter scale lambda(s).

    mu_ref is the unit direction of the basis mean (the pool's average image),
    so c(s) is a plausible image embedding of typical norm rho that leans
    toward the taste as s grows. s = 0 returns (None, 0.0): the worker then
    runs without the adapter, exactly as without --p. ``calibration`` overrides
    the preset's (bench/steer_bench.py tries candidates).
    """
    if isinstance(taste_or_w, Taste):
        w = taste_or_w.w
        basis = basis or taste_or_w.basis
    else:
        w = np.asarray(taste_or_w, dtype=np.float64)
    if basis is None:
        raise ValueError("conditioning needs a basis")
    if not 0 <= s <= 1000:
        raise ValueError(f"stylize must be 0-1000, got {s}")
    if w.shape != (basis.k,):
        raise ValueError(f"taste has shape {w.shape}, the basis has k = {basis.k}")
    if s == 0:
        return Conditioning(vector=None, scale=0.0)
    cal = calibration or calibration_for(preset_name)
    mu_ref = basis.mean / max(float(np.linalg.norm(basis.mean)), 1e-12)
    c = mu_ref + cal.tau(s) * basis.unwhiten_direction(w)
    c = basis.rho * c / max(float(np.linalg.norm(c)), 1e-12)
    return Conditioning(vector=c.astype(np.float64).tolist(), scale=cal.scale(s))


def reward_direction(basis: tm.Basis, w: np.ndarray) -> np.ndarray:
    """U Lambda^-1/2 w: w^T z(phi) = dot(phi/|phi|, this) - a constant."""
    w = np.asarray(w, dtype=np.float64)
    return basis.components @ (w / np.sqrt(basis.variances))


def rerank_direction(basis: tm.Basis, w: np.ndarray) -> list[float]:
    """A unit direction r in embedding space with dot(phi/|phi|, r) = (w^T z(phi) + const) / |U Lambda^-1/2 w|,
    so it orders images exactly as the profile does (for --q 2 best-of-N).
    All zeros when w is zero: there is nothing to rank by, so skip reranking."""
    r = reward_direction(basis, w)
    norm = float(np.linalg.norm(r))
    return (r / norm if norm > 0 else r).tolist()


def project_w(w: np.ndarray, old: tm.Basis, new: tm.Basis) -> np.ndarray:
    """Express a taste made on basis ``old`` in basis ``new``.

    The taste is the reward r^T phi-hat (+ const) with r = U_old Lambda_old^-1/2 w.
    In the new basis the reward w'^T z_new(phi) has direction U_new Lambda_new^-1/2 w',
    so the least-squares match is w' = Lambda_new^1/2 U_new^T r: exact for the part
    of r inside the new principal subspace, the rest is dropped.
    """
    if old.d != new.d:
        raise ValueError(f"bases have different embedding sizes ({old.d} vs {new.d})")
    if old.version == new.version:
        return np.asarray(w, dtype=np.float64).copy()
    r = reward_direction(old, w)
    return np.sqrt(new.variances) * (new.components.T @ r)


def explain(
    w: np.ndarray, basis: tm.Basis, words: list[str], text_embeddings: np.ndarray | None, n: int = 3
) -> tuple[list[str], list[str]]:
    """The n style words the profile scores highest (toward) and lowest (away).

    Each word's CLIP text embedding t is whitened as if it were an image:
    score = w^T z(t). This is an approximation: text and image embeddings sit
    apart in CLIP space (the modality gap), but that offset is nearly the same
    for every text, so it shifts all scores alike and leaves the ranking; what
    remains approximate is that the whitening uses the pool images' variances,
    which may weigh some text directions more or less than images would.
    """
    if text_embeddings is None or not words:
        return [], []
    w = np.asarray(w, dtype=np.float64)
    if not np.any(w):
        return [], []
    emb = np.asarray(text_embeddings, dtype=np.float64)
    if emb.shape != (len(words), basis.d):
        raise ValueError(f"text embeddings must be ({len(words)}, {basis.d}), got {emb.shape}")
    scores = basis.whiten(emb) @ w
    n = max(0, min(n, len(words) // 2))
    order = np.argsort(-scores, kind="stable")
    toward = [words[i] for i in order[:n]]
    away = [words[i] for i in order[::-1][:n]]
    return toward, away


def normalize_code(code: str) -> str:
    return code.strip().strip("`").lower()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# ---------------------------------------------------------------------------
# bases and the pool (cached per process: a basis never changes once written)
# ---------------------------------------------------------------------------

_basis_cache: dict[tuple[int, float], tuple[tm.Basis, str]] = {}
_pool_cache: dict[tuple[int, float, int], _Pool] = {}
_refitting: dict[int, asyncio.Task] = {}  # basis version -> its community prior refit, running in the background


@dataclass(frozen=True, eq=False)
class _Pool:
    images: list[q.PoolImage]
    z: np.ndarray  # (n, k) whitened with the basis
    pairs: np.ndarray  # (m, 2) indices into images, same prompt group, i < j


def _load_basis(row: q.BasisRow) -> tuple[tm.Basis, str]:
    key = (row.version, row.created_at)
    hit = _basis_cache.get(key)
    if hit is None:
        if len(_basis_cache) > 16:
            _basis_cache.clear()
        hit = _basis_cache[key] = (tm.Basis.from_bytes(row.data), row.preset)
    return hit


async def current_basis(db: aiosqlite.Connection) -> tuple[tm.Basis, str] | None:
    """(basis, preset) of the current rank pool, or None before the first build."""
    key = await q.latest_basis_key(db)
    if key is None:
        return None
    hit = _basis_cache.get(key)
    if hit is not None:
        return hit
    row = await q.get_basis(db, key[0])
    return None if row is None else _load_basis(row)


async def _require_basis(db: aiosqlite.Connection) -> tuple[tm.Basis, str]:
    found = await current_basis(db)
    if found is None:
        raise TasteError(NO_POOL_MESSAGE)
    return found


async def _basis_version(db: aiosqlite.Connection, version: int) -> tm.Basis:
    row = await q.get_basis(db, version)
    if row is None:
        raise TasteError(f"Basis {version} is missing from the database.")
    return _load_basis(row)[0]


async def _pool(db: aiosqlite.Connection, basis: tm.Basis) -> _Pool:
    """The current basis's pool images, whitened, with every same-prompt pair."""
    key = await q.latest_basis_key(db)
    count = (await q.pool_counts(db))[0]
    cache_key = (basis.version, key[1] if key else 0.0, count)
    hit = _pool_cache.get(cache_key)
    if hit is not None:
        return hit
    images = await q.pool_images_for_basis(db, basis.version, basis.d)
    if images:
        z = basis.whiten(np.stack([im.embedding for im in images]))
    else:
        z = np.zeros((0, basis.k))
    groups: dict[int, list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        groups[im.prompt_id].append(i)
    pairs = [(a, b) for members in groups.values() for x, a in enumerate(members) for b in members[x + 1 :]]
    pool = _Pool(images=images, z=z, pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2))
    if len(_pool_cache) > 4:
        _pool_cache.clear()
    _pool_cache[cache_key] = pool
    return pool


# ---------------------------------------------------------------------------
# posterior
# ---------------------------------------------------------------------------


async def _observations(
    db: aiosqlite.Connection, basis: tm.Basis, user_id: int | None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per member: (deltas (n, k) whitened with the basis, weights (n,)).
    Votes weigh 1, likes LIKE_WEIGHT per other image of the grid. Embeddings of
    another size (another model's pool) are left out."""
    rows = [(u, a, b, 1.0) for u, a, b in await q.vote_embeddings(db, user_id)]
    rows += [(u, a, b, tm.LIKE_WEIGHT) for u, a, b in await q.like_embeddings(db, user_id)]
    rows = [r for r in rows if r[1].shape == (basis.d,) and r[2].shape == (basis.d,)]
    if not rows:
        return {}
    users = np.array([r[0] for r in rows])
    z = basis.whiten(np.stack([r[1] for r in rows] + [r[2] for r in rows]))
    deltas = z[: len(rows)] - z[len(rows) :]
    weights = np.array([r[3] for r in rows])
    return {int(u): (deltas[users == u], weights[users == u]) for u in np.unique(users)}


async def community_prior(db: aiosqlite.Connection, basis: tm.Basis) -> tm.Prior:
    """The prior of every member's taste on this basis: empirical Bayes over all
    members' votes and likes, cached and refitted every PRIOR_REFRESH new
    observations community-wide (or when the number of members changes).

    A stale cached prior is served at once while the refit runs in the
    background: a refit over hundreds of members takes seconds, and a member's
    /imagine must be acknowledged within three."""
    members, observations = await q.community_observations(db)
    cached = await q.get_community_prior_arrays(db, basis.version)
    stale = None
    if cached is not None and cached[2]["mean"].shape == (basis.k,):
        c_members, c_obs, arrays = cached
        stale = tm.Prior.from_arrays(arrays)  # the server's taste clusters too, when it has them
        if c_members == members and observations - c_obs < PRIOR_REFRESH:
            return stale
    if members < PRIOR_MIN_MEMBERS:
        return tm.Prior.isotropic(basis.k, PRIOR_SIGMA)
    if stale is not None:
        if basis.version not in _refitting:
            _refitting[basis.version] = asyncio.create_task(_refit_prior(db, basis, members, observations))
        return stale
    return await _refit_prior(db, basis, members, observations)


async def _refit_prior(db: aiosqlite.Connection, basis: tm.Basis, members: int, observations: int) -> tm.Prior:
    try:
        data = await _observations(db, basis, None)
        users = sorted(data)
        prior = await asyncio.to_thread(
            tm.community_prior,
            [data[u][0] for u in users],
            [data[u][1] for u in users],
            k=basis.k,
            min_members=PRIOR_MIN_MEMBERS,
            sigma=PRIOR_SIGMA,
        )
        await q.put_community_prior(db, basis.version, members, observations, **prior.to_arrays())
        return prior
    finally:
        _refitting.pop(basis.version, None)


async def _posterior(db: aiosqlite.Connection, basis: tm.Basis, user_id: int) -> tm.Posterior:
    prior = await community_prior(db, basis)
    mine = (await _observations(db, basis, user_id)).get(user_id)
    if mine is None:
        return tm.fit(np.zeros((0, basis.k)), prior=prior)
    return tm.fit(mine[0], mine[1], prior=prior)


async def member_posterior(db: aiosqlite.Connection, user_id: int) -> tm.Posterior:
    """The member's taste on the current basis from their votes and likes,
    under the community prior. TasteError when there is no rank pool."""
    basis, _ = await _require_basis(db)
    return await _posterior(db, basis, user_id)


# ---------------------------------------------------------------------------
# /rank and likes
# ---------------------------------------------------------------------------


async def next_pair(db: aiosqlite.Connection, user_id: int, rng: np.random.Generator) -> Pair | None:
    """Choose, record and return the next pair for the member, or None when
    there is no rank pool (the bot then shows NO_POOL_MESSAGE). Both images
    come from the same prompt; pairs the member answered (skips included) are
    never shown again. TasteError when the member has answered every pair."""
    found = await current_basis(db)
    if found is None:
        return None
    basis, _ = found
    pool = await _pool(db, basis)
    if len(pool.pairs) == 0:
        return None
    # 1. candidates: same-prompt pairs the member has not answered
    answered = await q.answered_pairs(db, user_id)
    ids = np.array([im.id for im in pool.images])
    a, b = ids[pool.pairs[:, 0]], ids[pool.pairs[:, 1]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    fresh = np.array([(int(x), int(y)) not in answered for x, y in zip(lo, hi, strict=True)], dtype=bool)
    candidates = pool.pairs[fresh]
    if len(candidates) == 0:
        raise TasteError(
            f"You have ranked all {len(pool.pairs)} pairs in the rank pool. "
            f"The server owner can grow it with `{POOL_BUILD_COMMAND} --prompts N`."
        )
    # 2. the most informative pair under the member's posterior (or a random one)
    posterior = await _posterior(db, basis, user_id)
    deltas = pool.z[candidates[:, 0]] - pool.z[candidates[:, 1]]
    i, j = candidates[tm.choose_pair(posterior, deltas, rng)]
    if rng.random() < 0.5:  # no side bias
        i, j = j, i
    left, right = pool.images[int(i)], pool.images[int(j)]
    # 3. record it; its id goes into the buttons
    pair_id = await q.insert_rank_pair(db, user_id, left.id, right.id)
    return Pair(
        id=pair_id,
        left_id=left.id,
        right_id=right.id,
        left_path=left.path,
        right_path=right.path,
        prompt=left.prompt,
        left_style=left.style,
        right_style=right.style,
        votes=await q.vote_count(db, user_id),
    )


async def answer_pair(db: aiosqlite.Connection, user_id: int, pair_id: int, choice: str) -> bool:
    """Record 'left', 'right' or 'skip'. False when the pair was already answered
    or is not this member's (a second click, or someone else's buttons)."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
    return await q.answer_rank_pair(db, pair_id, user_id, choice)


async def record_like(db: aiosqlite.Connection, user_id: int, image_id: int) -> bool:
    """Like an image: a win of weight LIKE_WEIGHT over each other image of its grid
    (for a single image, the grid it came from via the job's parent image).

    Returns False, storing nothing, for a member's own image or a repeated like.
    TasteError for an unknown image."""
    image = await db_jobs.get_image(db, image_id)
    if image is None:
        raise TasteError("That image is no longer known to the bot.")
    if image.user_id == user_id:
        return False
    grid_image = image.id
    if len(await db_jobs.images_of(db, image.job_id)) < 2:
        job = await db_jobs.get_job(db, image.job_id)
        if job is not None and job.parent_image_id is not None:
            grid_image = job.parent_image_id
    return await q.insert_like(db, user_id, image.id, grid_image)


# ---------------------------------------------------------------------------
# snapshots and codes
# ---------------------------------------------------------------------------


async def _insert_version(db: aiosqlite.Connection, **fields) -> str:
    """Insert a profile version under a fresh random code; returns the code."""
    for _ in range(20):
        code = _new_code()
        try:
            await q.insert_profile_version(db, code=code, **fields)
            return code
        except sqlite3.IntegrityError:
            if await q.get_profile_version(db, code) is None:
                raise  # not a code collision
    raise RuntimeError("could not find a free profile code")


async def _snapshot(db: aiosqlite.Connection, user_id: int, basis: tm.Basis) -> q.ProfileVersion:
    """The member's latest votes snapshot, made anew if votes, likes or the basis changed."""
    votes = await q.vote_count(db, user_id)
    likes = await q.like_count(db, user_id)
    latest = await q.latest_profile_version(db, user_id, "votes")
    if latest is not None and (latest.votes, latest.likes, latest.basis_version) == (votes, likes, basis.version):
        return latest
    posterior = await _posterior(db, basis, user_id)
    code = await _insert_version(
        db,
        user_id=user_id,
        kind="votes",
        basis_version=basis.version,
        w=posterior.mean,
        votes=votes,
        likes=likes,
        confidence=posterior.confidence(),
    )
    found = await q.get_profile_version(db, code)
    assert found is not None
    return found


def _locked_message(votes: int, unlock_votes: int) -> str:
    n = unlock_votes - votes
    return f"Your profile is locked: rank {n} more pair{'s' if n != 1 else ''} to unlock it (`/rank`)."


async def current_code(db: aiosqlite.Connection, user_id: int, unlock_votes: int) -> str:
    """The member's current code, snapshotting a new version if the profile changed.
    TasteError when locked ("rank N more pairs") or there is no rank pool."""
    votes = await q.vote_count(db, user_id)
    if votes < unlock_votes:
        raise TasteError(_locked_message(votes, unlock_votes))
    basis, _ = await _require_basis(db)
    return (await _snapshot(db, user_id, basis)).code


async def status(db: aiosqlite.Connection, user_id: int, unlock_votes: int) -> ProfileStatus:
    """What /info shows. For an unlocked profile this snapshots a changed profile
    (so the code shown is the one --p will use); a locked one shows the live fit."""
    votes = await q.vote_count(db, user_id)
    likes = await q.like_count(db, user_id)
    unlocked = votes >= unlock_votes
    found = await current_basis(db)
    if found is None:
        return ProfileStatus(votes, likes, unlock_votes, unlocked, 0.0, None, [], [])
    basis, preset = found
    if unlocked:
        snap = await _snapshot(db, user_id, basis)
        code, w, confidence, public = snap.code, snap.w, snap.confidence, snap.public
    else:
        posterior = await _posterior(db, basis, user_id)
        code, w, confidence, public = None, posterior.mean, posterior.confidence(), True
    words, text_embeddings = await q.style_words(db, preset)
    if text_embeddings is not None and text_embeddings.shape[1] != basis.d:
        words, text_embeddings = [], None
    toward, away = explain(w, basis, words, text_embeddings) if votes + likes > 0 else ([], [])
    return ProfileStatus(votes, likes, unlock_votes, unlocked, float(confidence), code, toward, away, public)


def _code_info(v: q.ProfileVersion) -> CodeInfo:
    return CodeInfo(
        code=v.code,
        kind=v.kind,
        version=v.version,
        votes=v.votes,
        likes=v.likes,
        images=v.images,
        confidence=v.confidence,
        public=v.public,
        basis_version=v.basis_version,
        created_at=v.created_at,
    )


async def list_codes(db: aiosqlite.Connection, user_id: int) -> list[CodeInfo]:
    """The member's codes, newest first."""
    return [_code_info(v) for v in await q.list_profile_versions(db, user_id)]


async def get_code(db: aiosqlite.Connection, code: str) -> CodeInfo | None:
    code = normalize_code(code)
    found = await q.get_profile_version(db, code) if CODE_RE.match(code) else None
    return None if found is None else _code_info(found)


async def privacy(db: aiosqlite.Connection, user_id: int) -> dict[str, bool]:
    """Whether the member's new codes start public, per profile kind ('votes', 'moodboard')."""
    return await q.profile_privacy(db, user_id)


async def set_public(db: aiosqlite.Connection, user_id: int, code: str, public: bool) -> CodeInfo:
    """Make one of the member's codes public or private. TasteError otherwise.

    Making a code private also makes its profile private: every later version
    (new votes, likes or basis; the next moodboard) starts private, so privacy
    isn't lost by voting again. Making one code public shares that code only;
    the profile stays as it was (``set_all_public`` changes both)."""
    found = await get_code(db, code)
    if found is None:
        raise TasteError(f"Unknown code `{normalize_code(code)}`.")
    async with transaction(db):
        if not await q.set_profile_public(db, found.code, user_id, public):
            raise TasteError(f"`{found.code}` is not one of your codes.")
        if not public:
            await q.set_profile_privacy(db, user_id, (found.kind,), public=False)
    return replace(found, public=public)


async def set_all_public(db: aiosqlite.Connection, user_id: int, public: bool) -> int:
    """Every code of the member (taste versions and moodboards), and every new one
    from now on, public or private. Returns how many codes changed."""
    return await q.set_profile_privacy(db, user_id, PROFILE_KINDS, public, all_versions=True)


async def _taste_of(db: aiosqlite.Connection, version: q.ProfileVersion, basis: tm.Basis) -> np.ndarray:
    if version.basis_version == basis.version:
        return version.w
    old = await _basis_version(db, version.basis_version)
    if old.d != basis.d:
        raise TasteError(
            f"Code `{version.code}` was made with a different image model and cannot be used with this rank pool."
        )
    return project_w(version.w, old, basis)


async def resolve(
    db: aiosqlite.Connection, user_id: int, picks: list[tuple[str | None, float]], unlock_votes: int
) -> Taste:
    """``--p`` picks to one taste vector in the current basis.

    None is the member's current code (TasteError when locked). Others' codes
    must be public; the owner may always use their own. Weights are normalised
    to sum to 1 and mixed linearly: w = sum alpha_i w_i. Codes from an older
    basis are projected into the current one (``project_w``)."""
    basis, preset = await _require_basis(db)
    if not picks:
        picks = [(None, 1.0)]
    total = float(sum(weight for _, weight in picks))
    if not math.isfinite(total) or total <= 0:
        raise TasteError("The `--p` weights must add up to more than 0.")
    w = np.zeros(basis.k)
    used: list[tuple[str, float]] = []
    for code, weight in picks:
        if code is None:
            code = await current_code(db, user_id, unlock_votes)
        code = normalize_code(code)
        version = await q.get_profile_version(db, code) if CODE_RE.match(code) else None
        if version is None:
            raise TasteError(f"Unknown code `{code}`.")
        if not version.public and version.user_id != user_id:
            raise TasteError(f"Code `{code}` is private: only its owner can use it.")
        alpha = float(weight) / total
        w = w + alpha * await _taste_of(db, version, basis)
        used.append((code, alpha))
    return Taste(w=w, basis=basis, codes=used, preset=preset)


# ---------------------------------------------------------------------------
# moodboards
# ---------------------------------------------------------------------------


async def create_moodboard(db: aiosqlite.Connection, user_id: int, embeddings: np.ndarray) -> str:
    """A profile from images (their OpenCLIP embeddings): w points toward the mean
    of their whitened embeddings, scaled to a typical taste norm (the median |w|
    of members' current profiles on this basis). Stored as a 'moodboard' version
    owned by the member; returns its code."""
    basis, _ = await _require_basis(db)
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise TasteError("A moodboard needs at least one image.")
    if emb.shape[1] != basis.d:
        raise ValueError(f"embeddings must be (n, {basis.d}), got {emb.shape}")
    m = basis.whiten(emb).mean(axis=0)
    norm = float(np.linalg.norm(m))
    if not norm > 1e-9:
        raise TasteError("These images average out to no particular style; try images that share a look.")
    norms = [n for n in await q.vote_profile_norms(db, basis.version) if n > 0]
    size = float(np.median(norms)) if norms else DEFAULT_TASTE_NORM
    return await _insert_version(
        db,
        user_id=user_id,
        kind="moodboard",
        basis_version=basis.version,
        w=m / norm * size,
        votes=0,
        likes=0,
        images=int(emb.shape[0]),
        confidence=0.0,
    )
