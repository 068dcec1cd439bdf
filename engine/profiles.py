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
   Privacy is the member's choice per kind (taste: main, named profiles and
   tunes; moodboards): every profile of that kind, and each new version and
   new profile of it, starts public or private as chosen (``set_public``,
   ``set_all_public``).
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
import functools
import logging
import math
import os
import re
import secrets
import sqlite3
import sys
import weakref
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiosqlite
import numpy as np

from engine import params
from engine import taste as tm
from engine.db import jobs as db_jobs
from engine.db import members, open_db, transaction
from engine.db import taste as q
from engine.presets import PRESETS

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CALIBRATION",
    "Answered",
    "Calibration",
    "CodeInfo",
    "Conditioning",
    "Pair",
    "ProfileStatus",
    "ProfileSummary",
    "Taste",
    "TasteError",
    "answer_pair",
    "answered",
    "check_new_profile",
    "check_profile_name",
    "conditioning",
    "create_moodboard",
    "create_profile",
    "create_tuned_profile",
    "current_basis",
    "current_code",
    "default_picks",
    "delete_profile",
    "explain",
    "get_code",
    "list_codes",
    "list_profiles",
    "member_posterior",
    "next_pair",
    "normalize_code",
    "privacy",
    "progress",
    "project_w",
    "record_like",
    "record_use",
    "rerank_direction",
    "resolve",
    "server_taste",
    "set_all_public",
    "set_defaults",
    "set_public",
    "status",
    "unlock_hint",
    "unlock_progress",
]

POOL_BUILD_COMMAND = "python -m engine.rankpool build --per-prompt 6"
NO_POOL_MESSAGE = f"There is no rank pool yet. The server owner builds one with `{POOL_BUILD_COMMAND}`."

CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lowercase
CODE_LENGTH = 7
CODE_RE = re.compile(r"^[a-z2-7]{7}$")

PRIOR_SIGMA = 1.0  # cold-start prior N(0, sigma^2 I)
PRIOR_MIN_MEMBERS = 3  # fewer members with data: the cold-start prior
PRIOR_REFRESH = 25  # community votes + likes between refits of a small community's prior ...
PRIOR_REFRESH_SHARE = 0.02  # ... and of a big one's: once it has grown by 2% (members or observations)
PRIOR_MAX_MEMBERS = 1000  # members the prior is fitted on (bench/db_scale.py times the refit)
PRIOR_MAX_VOTES = 500  # each one's newest votes
PRIOR_WAIT_MEMBERS = 100  # without a cached prior, a community this small waits for its first fit
DEFAULT_TASTE_NORM = 1.0  # |w| of a moodboard when no member has a profile on the basis yet

CHOICES = ("left", "right", "skip")
MAIN_PROFILE = q.MAIN_PROFILE
SERVER = "server"  # `--p server`: the community's taste, the prior's mean
MAX_PROFILES = 25  # live profiles per member, moodboards and tunes included
MAX_PROFILE_NAME = 32
PROFILE_NAME_RE = re.compile(rf"^[\w][\w \-]{{0,{MAX_PROFILE_NAME - 1}}}$")
RESERVED_NAMES = {SERVER}

# Unlocking the main profile counts explicit votes and signals from use, each
# as the vote-equivalent below. bench/taste_bench.py measured that 20 grids of
# ordinary use (a U click on each) save 10-15 of the votes needed, so a U click
# counts half a vote; a V click, a reroll and a like are weaker signals (their
# fit weights are 0.25, 0.4 and 0.3 of a vote per comparison) and count a quarter.
UNLOCK_CREDIT = {"upscale": 0.5, "vary": 0.25, "reroll": 0.25, "like": 0.25}

# Codes that don't churn: an unlocked profile gets a new version (and code)
# only when its live fit predicts the winner of more than this share of the
# rank pool's pairs differently from its latest version (a shared code then
# draws visibly differently), or after CODE_EVERY_N new votes, likes and
# signals, or on a new basis. Otherwise the latest code stays current.
CODE_MOVE_THRESHOLD = 0.05
CODE_EVERY_N = 25


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
    votes: int  # the profile's votes so far (for "N more to unlock")
    profile: str = MAIN_PROFILE  # the profile the vote teaches


@dataclass(frozen=True)
class Answered:
    """An answered /rank pair, for "you chose …": the prompt and both styles."""

    prompt: str
    left_style: str
    right_style: str
    choice: str  # 'left' | 'right' | 'skip'
    profile: str | None = None  # the profile it taught: None for the main one (as next_pair's profile_name)


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
    signals: dict[str, int] = field(default_factory=dict)  # signals from use by kind (main profile only)
    progress: float = 0.0  # vote-equivalents toward unlocking (UNLOCK_CREDIT)
    profile: str = MAIN_PROFILE

    @property
    def remaining(self) -> int:
        """Votes still needed to unlock."""
        return max(0, math.ceil(self.unlock_votes - self.progress))

    @property
    def use_signals(self) -> int:
        return sum(self.signals.values())


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
    signals: int = 0  # signals from use it was fitted on
    profile: str = MAIN_PROFILE  # the profile it is a version of
    profile_kind: str = "votes"  # 'votes' | 'moodboard' | 'tune'


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


# --p on a family whose IP-Adapter can't read the taste (FLUX, SD 3.5): this many of its style words.
TASTE_WORDS = 3


async def taste_words(db: aiosqlite.Connection, taste: Taste, s: float, preset_name: str) -> tuple[list[str], float]:
    """The style words a taste leans toward most (explain's ranking of the rank pool's style words,
    embedded in the same space as the basis) and their weight in the prompt, the preset's lambda(s):
    how --p steers a family without a taste-space IP-Adapter. ([], 0.0) at s = 0 or without words."""
    if s == 0:
        return [], 0.0
    words, embeddings = await q.style_words(db, taste.preset)
    toward, _ = explain(taste.w, taste.basis, words, embeddings, n=TASTE_WORDS)
    if not toward:
        return [], 0.0
    return toward, calibration_for(preset_name).scale(s)


def normalize_code(code: str) -> str:
    return code.strip().strip("`").lower()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# ---------------------------------------------------------------------------
# bases and the pool (cached per process: a basis never changes once written)
# ---------------------------------------------------------------------------

_basis_cache: dict[tuple[int, float], tuple[tm.Basis, str]] = {}
_pool_cache: dict[tuple[int, float, int], _Pool] = {}
_refitting: dict[tuple[int, int], asyncio.Task] = {}  # (connection, basis version) -> its prior's refit, running


@dataclass(frozen=True, eq=False)
class _Pool:
    images: list[q.PoolImage]
    ids: np.ndarray  # their ids, ascending
    z: np.ndarray  # (n, k) whitened with the basis
    pairs: np.ndarray  # (m, 2) indices into images, same prompt group, i < j
    deltas: np.ndarray  # (m, k) z of each pair's first image minus its second's
    keys: np.ndarray  # (m,) each pair as q.PAIR_KEY numbers


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
    ((count,),) = await db.execute_fetchall("SELECT COUNT(*) FROM pool_images")  # an index count: no embedding read
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
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    ids = np.array([im.id for im in images], dtype=np.int64)
    lo, hi = np.minimum(ids[pairs[:, 0]], ids[pairs[:, 1]]), np.maximum(ids[pairs[:, 0]], ids[pairs[:, 1]])
    pool = _Pool(images=images, ids=ids, z=z, pairs=pairs, deltas=z[pairs[:, 0]] - z[pairs[:, 1]],
                 keys=lo * q.PAIR_KEY + hi)
    if len(_pool_cache) > 4:
        _pool_cache.clear()
    _pool_cache[cache_key] = pool
    return pool


# ---------------------------------------------------------------------------
# posterior
# ---------------------------------------------------------------------------


async def whitened_pool(db: aiosqlite.Connection, basis: tm.Basis) -> tuple[list[q.PoolImage], np.ndarray]:
    """The current pool's images and their z (cached: a basis never changes)."""
    pool = await _pool(db, basis)
    return pool.images, pool.z


async def _whiten_ids(db: aiosqlite.Connection, basis: tm.Basis, table: str, ids: list[int]) -> dict[int, np.ndarray]:
    """z of these rows' embeddings (``images`` or ``pool_images``), a few thousand at a time;
    rows without an embedding of the basis's size (none, or another model's) are left out."""
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 4096):
        raw = await q.embeddings_by_id(db, table, ids[start : start + 4096])
        keys = [i for i, e in raw.items() if e.shape == (basis.d,)]
        if keys:
            found.update(zip(keys, basis.whiten(np.stack([raw[i] for i in keys])), strict=True))
    return found


async def _vote_deltas(
    db: aiosqlite.Connection, basis: tm.Basis, votes: list[tuple[int, int, int]], newest: int | None = None
) -> dict[int, np.ndarray]:
    """Per member, z(winner) - z(loser) of their votes (at most their ``newest`` ones),
    looked up in the whitened pool by id: no embedding is read or whitened again."""
    if not votes:
        return {}
    users, winners, losers = (np.array(column, dtype=np.int64) for column in zip(*votes, strict=True))
    pool = await _pool(db, basis)
    found, z = np.ones(len(votes), dtype=bool), []
    for ids in (winners, losers):
        pos = np.searchsorted(pool.ids, ids).clip(0, max(len(pool.ids) - 1, 0))
        here = pool.ids[pos] == ids if len(pool.ids) else np.zeros(len(ids), dtype=bool)
        rows = np.zeros((len(ids), basis.k))
        rows[here] = pool.z[pos[here]]
        if not np.all(here):  # a pool image outside the current basis's pool (rare): its own embedding
            extra = await _whiten_ids(db, basis, "pool_images", np.unique(ids[~here]).tolist())
            for j in np.flatnonzero(~here):
                if int(ids[j]) in extra:
                    rows[j], here[j] = extra[int(ids[j])], True
        found &= here
        z.append(rows)
    by_member = _by_member(users[found], (z[0] - z[1])[found])  # oldest vote first within each
    return {u: d[-newest:] if newest else d for u, d in by_member.items()}


def _by_member(users: np.ndarray, rows: np.ndarray) -> dict[int, np.ndarray]:
    """``rows`` grouped by member (``users[i]`` is row i's), in their order within each: one
    sort for all of them, not a pass over every row per member (thousands at the prior's refit)."""
    if not len(users):
        return {}
    order = np.argsort(users, kind="stable")
    users, rows = users[order], rows[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return dict(zip(users[np.r_[0, bounds]].tolist(), np.split(rows, bounds), strict=True))


async def _use_deltas(
    db: aiosqlite.Connection, basis: tm.Basis, likes: list[tuple[int, int, int]], signals: list[q.UseSignal],
    *, store: bool = True,
) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Per member, (deltas, weights) of these likes (q.like_pairs: LIKE_WEIGHT over each other
    image of the grid) and signals from use (engine/taste.py use_comparisons). Each image's
    embedding is read and whitened once."""
    ids = {i for _, a, b in likes for i in (a, b)} | {i for s in signals for i in s.grid + s.replacement}
    z = await image_z(db, basis, sorted(ids), store=store)
    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    kept = [(u, a, b) for u, a, b in likes if a in z and b in z]
    if kept:
        liked = np.array([z[a] for _, a, _ in kept]) - np.array([z[b] for _, _, b in kept])
        for u, mine in _by_member(np.array([u for u, _, _ in kept], dtype=np.int64), liked).items():
            out[u].append((mine, np.full(len(mine), tm.LIKE_WEIGHT)))
    for signal in signals:
        grid = [i for i in signal.grid if i in z]
        if len(grid) < 2:
            continue
        z_grid = np.stack([z[i] for i in grid])
        if signal.kind == "reroll":
            drawn = [z[i] for i in signal.replacement if i in z]
            if not drawn:
                continue  # its new grid isn't done yet
            deltas, weights = tm.use_comparisons(z_grid, "reroll", z_replacement=np.stack(drawn))
        elif signal.chosen in grid:
            deltas, weights = tm.use_comparisons(z_grid, signal.kind, chosen=grid.index(signal.chosen))
        else:
            continue
        out[signal.user_id].append((deltas, weights))
    return {u: [_joined(parts, basis.k)] for u, parts in out.items()}


async def image_z(
    db: aiosqlite.Connection, basis: tm.Basis, ids: list[int], *, store: bool = True
) -> dict[int, np.ndarray]:
    """z of these images on the basis: from the taste index (image_taste), or whitened from
    their embeddings and (``store``) added to it. Images without an embedding of the
    basis's size are left out."""
    found = await q.image_z(db, basis.version, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        made = await _whiten_ids(db, basis, "images", missing)
        if store and made:
            await q.put_image_z(db, basis.version, made)
        found.update((i, v.astype(np.float32)) for i, v in made.items())
    return found


INDEX_BATCH = 2000
INDEXED_THROUGH = "image_taste_through"  # meta key: "<basis version>:<last image id indexed in order>"


def index_images(path: str, basis: tm.Basis, *, limit: int | None = None) -> int:
    """Add every image after the last one indexed to the taste index (image_taste), in id
    order, on a connection and an event loop of its own (run it in a thread: it reads
    gigabytes at a community's scale). Returns how many it whitened; ``limit`` stops early."""

    async def run(db: aiosqlite.Connection) -> int:
        after = await _indexed_through(db, basis)
        done = 0
        while limit is None or done < limit:
            rows = await q.images_after(db, after, INDEX_BATCH)
            if not rows:
                break
            raw = [(i, np.frombuffer(e, dtype=np.float32)) for i, e in rows if e is not None and len(e) == 4 * basis.d]
            if raw:
                z = basis.whiten(np.stack([e for _, e in raw])).astype(np.float32)
                await q.put_image_z(db, basis.version, dict(zip([i for i, _ in raw], z, strict=True)))
            after, done = rows[-1][0], done + len(raw)
            await members.set_meta(db, INDEXED_THROUGH, f"{basis.version}:{after}")
        return done

    return _apart(path, run)


async def _indexed_through(db: aiosqlite.Connection, basis: tm.Basis) -> int:
    """The last image id index_images has been through on this basis (0: none yet)."""
    version, _, through = (await members.get_meta(db, INDEXED_THROUGH) or "").partition(":")
    return int(through) if version == str(basis.version) and through.isdigit() else 0


async def images_to_index(db: aiosqlite.Connection, basis: tm.Basis) -> bool:
    """Whether index_images has anything to do: two cheap reads on this connection, so the
    upkeep starts its thread, connection and event loop only when an image came."""
    return await q.newest_image_id(db) > await _indexed_through(db, basis)


def _apart(path: str, work, *args, **kwargs):
    """``await work(db, *args, **kwargs)`` on a connection and an event loop of its own: called in
    a thread (or another process), it reads and writes without holding up the bot's loop."""

    async def run():
        db = await open_db(path)  # the bot's settings: it writes, so foreign keys are enforced too
        try:
            return await work(db, *args, **kwargs)
        finally:
            await db.close()

    return asyncio.run(run())


async def _path(db: aiosqlite.Connection) -> str:
    """The file of the connection's database."""
    ((path,),) = await db.execute_fetchall("SELECT file FROM pragma_database_list WHERE name = 'main'")
    return path


@dataclass(frozen=True)
class _Use:
    """A main profile's likes and signals from use, as they are now or as a fit holds them:
    how many of each, the newest of each, and the rerolls whose new grid isn't done yet
    (nothing to compare with until it is). ``key`` is how taste_fits stores it."""

    likes: int = 0
    likes_through: int = 0  # the newest like's rowid
    signals: int = 0
    signals_through: int = 0  # the newest signal's id
    waiting: tuple[int, ...] = ()
    learning: bool = True  # False: the member turned learning from use off, and signals are left out

    @property
    def key(self) -> str:
        signals = f"{self.signals}:{self.signals_through}:{','.join(map(str, self.waiting))}" if self.learning else "off"
        return f"{self.likes}:{self.likes_through}/{signals}"

    @classmethod
    def from_key(cls, key: str) -> _Use:
        likes, signals = key.split("/")
        count, through = map(int, likes.split(":"))
        if signals == "off":
            return cls(count, through, learning=False)
        n, newest, waiting = signals.split(":")
        return cls(count, through, int(n), int(newest), tuple(int(i) for i in waiting.split(",") if i))


NO_USE = _Use()  # a profile other than the main one learns from its votes alone


async def _use_now(db: aiosqlite.Connection, profile: q.Profile) -> _Use:
    """The main profile's likes and signals from use as they are now (NO_USE for other profiles)."""
    if not profile.is_main:
        return NO_USE
    likes, likes_through = await q.likes_key(db, profile.user_id)
    if not (await members.get_settings(db, profile.user_id)).learn_from_use:
        return _Use(likes, likes_through, learning=False)
    return _Use(likes, likes_through, *await q.signals_key(db, profile.user_id))


# A member's likes and signals from use, fitted at every vote of a small profile, change far
# less often than their votes: kept whitened per member, until a like or signal is added or removed.
USE_CACHE_SIZE = 128
_use_cache: weakref.WeakKeyDictionary[aiosqlite.Connection, OrderedDict] = weakref.WeakKeyDictionary()


async def _member_use(
    db: aiosqlite.Connection, basis: tm.Basis, user_id: int, now: _Use, held: _Use | None = None
) -> tuple[np.ndarray, np.ndarray, _Use]:
    """The member's likes and signals from use up to ``now`` (_use_now) as (deltas, weights);
    with ``held`` (what a fit has), only those it lacks. Then what a fit with them has: ``now``,
    less the rerolls whose new grid was read meanwhile. All of them are cached while ``now`` holds."""
    key = (basis.version, user_id, now)
    cache = _use_cache.setdefault(db, OrderedDict())
    if held is None and key in cache:
        cache.move_to_end(key)
        return cache[key]
    since = held or _Use(learning=now.learning)
    likes = await q.like_pairs(db, user_id, after=since.likes_through, through=now.likes_through)
    signals = await q.use_signals(
        db, user_id, after=since.signals_through, through=now.signals_through, also=since.waiting,
    ) if now.learning else []
    parts = (await _use_deltas(db, basis, likes, signals)).get(user_id, [])
    # still waiting: read without a new grid, and not done when ``now`` was read (one done with
    # every image withheld has none, and never will)
    unmatched = {s.id for s in signals if s.kind == "reroll" and not s.replacement}
    found = (*_joined(parts, basis.k), replace(now, waiting=tuple(i for i in now.waiting if i in unmatched)))
    if held is None:
        cache[key] = found
        while len(cache) > USE_CACHE_SIZE:
            cache.popitem(last=False)
    return found


def _joined(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, k)), np.zeros(0)
    return np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts])


async def _community_observations(
    db: aiosqlite.Connection, basis: tm.Basis, users: list[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per member of ``users``: (deltas (n, k) whitened with the basis, weights (n,)) of their
    main profile, with their newest PRIOR_MAX_VOTES votes: what the community prior is fitted on.

    A main profile learns from its /rank votes (weight 1), likes (LIKE_WEIGHT over each
    other image of the grid) and, unless the member turned it off, signals from use
    (engine/taste.py use_comparisons). Embeddings of another size (another model) are left out."""
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    votes = await q.vote_pairs(db, users=users)
    for u, deltas in (await _vote_deltas(db, basis, votes, PRIOR_MAX_VOTES)).items():
        found[u].append((deltas, np.ones(len(deltas))))
    likes, signals = await q.like_pairs(db, users=users), await q.use_signals(db, users=users)
    for u, parts in (await _use_deltas(db, basis, likes, signals, store=False)).items():
        found[u] += parts
    return {int(u): _joined(parts, basis.k) for u, parts in found.items() if parts}


def _prior_is_fresh(cached_members: int, cached_observations: int, members_with_data: int, observations: int) -> bool:
    """A small community's prior is refitted at each new member and every PRIOR_REFRESH
    observations; a big one's once it has grown by PRIOR_REFRESH_SHARE."""
    return (
        abs(members_with_data - cached_members) < max(1.0, PRIOR_REFRESH_SHARE * cached_members)
        and observations - cached_observations < max(PRIOR_REFRESH, PRIOR_REFRESH_SHARE * cached_observations)
    )


async def community_prior(db: aiosqlite.Connection, basis: tm.Basis) -> tm.Prior:
    """The prior of every member's taste on this basis: empirical Bayes over the
    members' main profiles (votes, likes, signals from use), cached and refitted
    as the community grows (``_prior_is_fresh``).

    One refit runs at a time, in the background: a stale cached prior is served
    meanwhile, since a refit takes seconds (a minute at 10 000 members) and a
    member's /imagine must be acknowledged within three. With no prior cached yet,
    a small community's first request waits for it (a second or so); a big one's
    is served the cold-start prior until it lands."""
    return (await _community_prior(db, basis))[0]


async def _community_prior(db: aiosqlite.Connection, basis: tm.Basis) -> tuple[tm.Prior, float]:
    """community_prior, and when it was made (its created_at; 0 for the cold-start prior)."""
    members_with_data, observations = await q.community_observations(db)
    stamp = await q.community_prior_stamp(db, basis.version)
    stale = None
    if stamp is not None:
        c_members, c_obs, made = stamp
        stale = await _stored_prior(db, basis, made)  # the server's taste clusters too, when it has them
        if stale is not None and _prior_is_fresh(c_members, c_obs, members_with_data, observations):
            return stale, made
    if members_with_data < PRIOR_MIN_MEMBERS:
        return _cold_prior(basis.k), 0.0
    refit = refit_prior_soon(db, basis, members_with_data, observations)
    if stale is not None:
        return stale, made
    if members_with_data <= PRIOR_WAIT_MEMBERS:
        return await asyncio.shield(refit)
    return _cold_prior(basis.k), 0.0


# The stored prior, decoded once: the same object until it is refitted (fits cached against it).
_priors: weakref.WeakKeyDictionary[aiosqlite.Connection, dict[tuple[int, float], tm.Prior]] = weakref.WeakKeyDictionary()


async def _stored_prior(db: aiosqlite.Connection, basis: tm.Basis, made: float) -> tm.Prior | None:
    known = _priors.setdefault(db, {})
    key = (basis.version, made)
    if key not in known:
        found = await q.get_community_prior_arrays(db, basis.version)
        if found is None or found[2]["mean"].shape != (basis.k,):
            return None
        _remember_prior(db, basis, made, tm.Prior.from_arrays(found[2]))
    return known[key]


def _remember_prior(db: aiosqlite.Connection, basis: tm.Basis, made: float, prior: tm.Prior) -> None:
    known = _priors.setdefault(db, {})
    if len(known) > 8:
        known.clear()
    known[(basis.version, made)] = prior


@functools.cache
def _cold_prior(k: int) -> tm.Prior:
    return tm.Prior.isotropic(k, PRIOR_SIGMA)


def refit_prior_soon(db: aiosqlite.Connection, basis: tm.Basis, members_with_data: int, observations: int) -> asyncio.Task:
    """The community prior's refit on this connection and basis, in the background: the one
    running, or a new one (the counts are what it will be stored with)."""
    key = (id(db), basis.version)
    if key not in _refitting:
        _refitting[key] = asyncio.create_task(_refit_prior(db, basis, members_with_data, observations))
    return _refitting[key]


async def _refit_prior(
    db: aiosqlite.Connection, basis: tm.Basis, members_with_data: int, observations: int
) -> tuple[tm.Prior, float]:
    """The refitted prior, stored, and its created_at; cached as _stored_prior would decode it."""
    try:
        path = await _path(db)
        if members_with_data <= PRIOR_WAIT_MEMBERS:  # a second or two: a thread
            prior = await asyncio.to_thread(fit_community_prior, path, basis)
        else:  # a minute of numpy and Python: a process, so the bot's loop never waits for the GIL
            prior = tm.Prior.from_arrays(q.npz_arrays(await _in_a_process(path, basis)))
        made = await q.put_community_prior(db, basis.version, members_with_data, observations, **prior.to_arrays())
        _remember_prior(db, basis, made, prior)  # the waiting request's and the next ones': no re-read, no decode
        return prior, made
    finally:
        _refitting.pop((id(db), basis.version), None)


async def _in_a_process(path: str, basis: tm.Basis, *args: str) -> bytes:
    """What `python -m engine.prior_fit DATABASE BASIS_VERSION *args`, a process of its own, writes:
    the community prior's fit, or with --profiles, fit_profiles'."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.prior_fit", path, str(basis.version), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:  # cancelled (the bot is stopping): don't leave it running
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"a background fit failed: {err.decode(errors='replace')[-2000:]}")
    return out


def fit_community_prior(path: str, basis: tm.Basis) -> tm.Prior:
    """The community prior from the database at ``path``, on a connection and an event loop
    of its own: run in a thread, it reads and fits without holding up the bot's loop or its
    connection. Fitted on up to PRIOR_MAX_MEMBERS members (a fixed pseudo-random sample: a
    k x k covariance is well estimated long before 10 000 members, and the fit's time
    grows with each one)."""

    async def load() -> dict[int, tuple[np.ndarray, np.ndarray]]:
        db = await open_db(path, read_only=True)
        try:
            return await _community_observations(db, basis, await q.prior_sample(db, PRIOR_MAX_MEMBERS))
        finally:
            await db.close()

    data = asyncio.run(load())
    users = sorted(data)
    return tm.community_prior(
        [data[u][0] for u in users], [data[u][1] for u in users], k=basis.k, min_members=PRIOR_MIN_MEMBERS,
        sigma=PRIOR_SIGMA,
    )


# A vote's refit. A small profile is fitted again, exactly, at every vote (a millisecond).
# A big one (a year of /rank, likes and use: thousands of comparisons) keeps its latest fit,
# in memory and in taste_fits (so a new process, or a member back after a while, starts from
# it), and takes each vote, like and signal from use that came since in with taste.update
# (O(k^2) a comparison, whatever the history); an exact fit runs in a thread every
# FIT_EXACT_EVERY of them, or once the community prior has been refitted, replacing the folded
# one when it is done. The upkeep cog stores a fit for every big profile that has none on the
# basis (fit_profiles), so after an upgrade or a new basis no member waits for one.
FIT_INCREMENTAL_FROM = 300  # comparisons
FIT_EXACT_EVERY = 20  # votes, likes and signals
FIT_CACHE_SIZE = 256
FITS_IN_A_THREAD = 50  # big profiles without a stored fit: up to this many are fitted in a thread, more in a process


@dataclass(eq=False)
class _Fit:
    prior_made: float  # the community prior it was fitted under (its created_at; 0: the cold-start one)
    use: _Use  # the likes and signals from use in it
    votes: int
    through: float  # the latest answered_at among its votes
    observations: int  # the comparisons in it
    posterior: tm.Posterior
    folded: int = 0  # votes, likes and signals taken in with taste.update since the last exact fit
    refining: asyncio.Task | None = None


_fits: weakref.WeakKeyDictionary[aiosqlite.Connection, OrderedDict] = weakref.WeakKeyDictionary()


async def _posterior(db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile) -> tm.Posterior:
    prior, made = await _community_prior(db, basis)
    if profile.kind != "votes":
        return tm.fit(np.zeros((0, basis.k)), prior=prior)
    fits = _fits.setdefault(db, OrderedDict())
    key = (profile.id, basis.version)
    fit = fits.get(key) or await _stored_fit(db, basis, profile)
    if fit is not None and fit.observations >= FIT_INCREMENTAL_FROM and await _fold(db, basis, profile, fit):
        _remember(fits, key, fit)
        if (fit.folded >= FIT_EXACT_EVERY or fit.prior_made != made) and fit.refining is None:
            fit.refining = asyncio.create_task(_refine(db, basis, profile, fit))
        return fit.posterior
    if fit is None or fit.observations < FIT_INCREMENTAL_FROM:  # small (a big one has a stored fit): here
        fit = await _exact_fit(db, basis, profile, prior, made, fit.posterior.mean if fit else None)
    else:  # big: read and fitted in a thread
        fit = await _exact_fit_apart(db, basis, profile, prior, made, fit.posterior.mean)
    _remember(fits, key, fit)
    return fit.posterior


async def _fold(db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile, fit: _Fit) -> bool:
    """Take the votes, likes and signals from use that came since the fit in, one comparison at
    a time. False, leaving the fit as it was, when only an exact fit will do: more than
    FIT_EXACT_EVERY came, some were deleted, learning from use was turned on or off, or
    another request changed the fit meanwhile."""
    before, held = fit.posterior, fit.use
    now = await _use_now(db, profile)
    new = await q.profile_votes(db, profile.id, after=fit.through)
    came = len(new) + now.likes - held.likes + now.signals - held.signals
    if came > FIT_EXACT_EVERY or fit.votes + len(new) != await q.vote_count(db, profile.id):
        return False
    fresh = [(profile.user_id, w, l) for _, w, l, _ in new]
    parts = [(d, np.ones(len(d))) for d in (await _vote_deltas(db, basis, fresh)).values()]
    if now != held:
        if now.learning != held.learning or (held.likes, held.signals) != await q.use_counts_through(
            db, profile.user_id, held.likes_through, held.signals_through
        ):
            return False
        deltas, weights, held = await _member_use(db, basis, profile.user_id, now, held)
        parts.append((deltas, weights))
    if fit.posterior is not before:
        return False
    deltas, weights = _joined(parts, basis.k)
    posterior = fit.posterior
    for delta, weight in zip(deltas, weights, strict=True):
        posterior = tm.update(posterior, delta, weight)
    fit.posterior, fit.use, fit.votes, fit.observations = posterior, held, fit.votes + len(new), fit.observations + len(weights)
    fit.through, fit.folded = max([fit.through, *(v[3] for v in new)]), fit.folded + came
    return True


def _remember(fits: OrderedDict, key: tuple[int, int], fit: _Fit) -> None:
    fits[key] = fit
    fits.move_to_end(key)
    while len(fits) > FIT_CACHE_SIZE:
        fits.popitem(last=False)


async def _stored_fit(db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile) -> _Fit | None:
    found = await q.get_fit(db, profile.id, basis.version)
    if found is None:
        return None
    posterior = tm.Posterior(mean=found.mean, precision=found.precision)
    return _Fit(found.prior_made, _Use.from_key(found.use_key), found.votes, found.voted_through, found.observations,
                posterior)


async def _exact_fit(
    db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile, prior: tm.Prior, made: float,
    init: np.ndarray | None = None, *, store: bool = False,
) -> _Fit:
    """Every vote, like and signal of the profile, fitted; a big one's fit (any, with ``store``) is stored."""
    votes = await q.profile_votes(db, profile.id)
    deltas = (await _vote_deltas(db, basis, [(profile.user_id, w, l) for _, w, l, _ in votes])).get(profile.user_id)
    parts = [] if deltas is None else [(deltas, np.ones(len(deltas)))]
    use = await _use_now(db, profile)
    if profile.is_main:
        use_deltas, use_weights, use = await _member_use(db, basis, profile.user_id, use)
        parts.append((use_deltas, use_weights))
    deltas, weights = _joined(parts, basis.k)
    if len(weights) < FIT_INCREMENTAL_FROM:
        posterior = tm.fit(deltas, weights, prior=prior)
    else:  # thousands of comparisons: a few milliseconds of numpy, off the loop
        posterior = await asyncio.to_thread(tm.fit, deltas, weights, prior=prior, init=init)
    fit = _Fit(made, use, len(votes), max((v[3] for v in votes), default=0.0), len(weights), posterior)
    if store or fit.observations >= FIT_INCREMENTAL_FROM:
        await q.put_fit(db, profile.id, q.StoredFit(basis.version, made, use.key, fit.votes, fit.through,
                                                    fit.observations, posterior.mean, posterior.precision))
    return fit


async def _exact_fit_apart(
    db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile, prior: tm.Prior, made: float,
    init: np.ndarray | None = None,
) -> _Fit:
    """_exact_fit on a connection and an event loop of its own, in a thread: a big profile's
    thousands of comparisons are read and fitted while the bot's loop serves everyone else."""
    return await asyncio.to_thread(_apart, await _path(db), _exact_fit, basis, profile, prior, made, init)


# Background exact fits take turns: after a prior refit every active member's next request
# starts one, and a crowd of them at once would take the CPU the bot's loop needs.
_refine_turns: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _refine(db: aiosqlite.Connection, basis: tm.Basis, profile: q.Profile, fit: _Fit) -> None:
    """An exact fit of the profile under the current prior, in its turn; it replaces the folded
    one if no vote, like or signal came in meanwhile."""
    try:
        async with _refine_turns.setdefault(db, asyncio.Lock()):
            prior, made = await _community_prior(db, basis)
            exact = await _exact_fit_apart(db, basis, profile, prior, made, fit.posterior.mean)
        if (exact.votes, exact.use) == (fit.votes, fit.use):
            fit.posterior, fit.prior_made, fit.through, fit.folded = exact.posterior, made, exact.through, 0
    except Exception:  # a background nicety: the folded fit stays
        log.exception("exact refit of profile %s failed", profile.id)
    finally:
        fit.refining = None


def fit_profiles(path: str, basis: tm.Basis, *, limit: int | None = None, todo: list[int] | None = None) -> int:
    """Store an exact fit of every big main profile that has none on this basis yet, busiest
    first, on a connection and an event loop of its own; their first /rank pair then takes in
    only what came since. Under the stored community prior (a newer one refits each in the
    background at its next use). Returns how many it fitted; ``limit`` stops early; ``todo``:
    those profiles (q.unfitted_profiles as the caller just found them), not looked up again."""

    async def run(db: aiosqlite.Connection) -> int:
        stamp = await q.community_prior_stamp(db, basis.version)
        prior = None if stamp is None else await _stored_prior(db, basis, stamp[2])
        prior, made = (prior, stamp[2]) if prior is not None else (_cold_prior(basis.k), 0.0)
        profile_ids = todo if todo is not None else await q.unfitted_profiles(
            db, basis.version, FIT_INCREMENTAL_FROM, -1 if limit is None else limit
        )
        for profile_id in profile_ids:
            await _exact_fit(db, basis, await q.get_profile(db, profile_id), prior, made, store=True)
        return len(profile_ids)

    return _apart(path, run)


async def store_fits(db: aiosqlite.Connection, basis: tm.Basis) -> int:
    """fit_profiles for the upkeep cog, each minute: a few profiles (members who just grew big)
    in a thread; more (after an upgrade or a new basis, thousands: a minute of numpy and Python
    that would hold the GIL the bot's loop needs) in a process of its own. Returns how many."""
    waiting = await q.unfitted_profiles(db, basis.version, FIT_INCREMENTAL_FROM, FITS_IN_A_THREAD + 1)
    if not waiting:
        return 0
    if len(waiting) <= FITS_IN_A_THREAD:  # every one of them (under the limit): fitted as found
        return await asyncio.to_thread(fit_profiles, await _path(db), basis, todo=waiting)
    return int(await _in_a_process(await _path(db), basis, "--profiles"))


async def member_posterior(db: aiosqlite.Connection, user_id: int, profile_name: str | None = None) -> tm.Posterior:
    """The member's taste on the current basis (their main profile unless named),
    under the community prior. TasteError when there is no rank pool."""
    basis, _ = await _require_basis(db)
    return await _posterior(db, basis, await _profile_named(db, user_id, profile_name))


# ---------------------------------------------------------------------------
# profiles: the main one, others ranked on purpose, moodboards, tunes
# ---------------------------------------------------------------------------


async def _profile_named(db: aiosqlite.Connection, user_id: int, name: str | None) -> q.Profile:
    """The member's profile of this name; the main one for None. TasteError when unknown."""
    if name is None or name.strip().lower() == MAIN_PROFILE:
        return await q.main_profile(db, user_id)
    found = await q.find_profile(db, user_id, name.strip())
    if found is None:
        raise TasteError(f"You have no profile named `{name.strip()}`. `/profile list` shows yours.")
    return found


def check_profile_name(name: str) -> str:
    """A new profile's name, trimmed; TasteError when it can't be one."""
    name = " ".join(name.split())
    if not PROFILE_NAME_RE.fullmatch(name):
        raise TasteError(
            f"`{name[:40]}` can't be a profile name: use 1-{MAX_PROFILE_NAME} letters, digits, spaces, `-` or `_`."
        )
    if name.lower() in RESERVED_NAMES:
        raise TasteError(f"`{name}` is reserved; pick another name.")
    return name


async def check_new_profile(db: aiosqlite.Connection, user_id: int, name: str | None) -> str | None:
    """The name a new profile of the member's would take (None: an automatic one), if
    they have room for one; TasteError otherwise. Checked before a job for one is queued."""
    live = await q.list_profiles(db, user_id)
    if len(live) >= MAX_PROFILES:
        raise TasteError(f"You have {len(live)} profiles, the most one member may keep. `/profile delete` one first.")
    if name is None:
        return None
    name = check_profile_name(name)
    if any(p.name.lower() == name.lower() for p in live):
        raise TasteError(f"You already have a profile named `{name}`.")
    return name


async def create_profile(db: aiosqlite.Connection, user_id: int, name: str, kind: str = "votes") -> q.Profile:
    """A new named profile, public or private as the member chose for its kind
    (``privacy``), so a new profile never shares what the member chose to hide."""
    public = (await privacy(db, user_id))[q.privacy_kind(kind)]
    name = await check_new_profile(db, user_id, name)
    made = await q.insert_profile(db, user_id, name, kind, public)
    if made is None:  # made a moment ago by another click
        raise TasteError(f"You already have a profile named `{name}`.")
    return made


async def delete_profile(db: aiosqlite.Connection, user_id: int, name: str) -> q.Profile:
    """Remove a profile from the member's list; its codes keep working for whoever uses them."""
    profile = await _profile_named(db, user_id, name)
    if profile.is_main:
        raise TasteError("Your main profile can't be deleted. `/codes visibility:private` hides its codes.")
    await q.delete_profile(db, profile.id)
    return profile


async def set_defaults(db: aiosqlite.Connection, user_id: int, picks: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The profiles a bare ``--p`` mixes, with weights (normalised when used).
    Returns the names as stored and their weights."""
    if not picks:
        raise TasteError("Name at least one profile.")
    if len(picks) > params.MAX_CODES:
        raise TasteError(f"A default mix takes at most {params.MAX_CODES} profiles.")
    chosen: dict[int, tuple[str, float]] = {}
    for name, weight in picks:
        if not (math.isfinite(weight) and 0 < weight <= 100):
            raise TasteError(f"`{name}::{weight:g}`: a weight is a number above 0 and at most 100.")
        profile = await _profile_named(db, user_id, name)
        if profile.id in chosen:
            raise TasteError(f"`{profile.name}` is named twice. List each profile once.")
        chosen[profile.id] = (profile.name, float(weight))
    await q.set_default_weights(db, user_id, {pid: weight for pid, (_, weight) in chosen.items()})
    return list(chosen.values())


@dataclass(frozen=True)
class ProfileSummary:
    name: str
    kind: str  # 'votes' | 'moodboard' | 'tune'
    votes: int  # explicit votes (a tune's picks)
    code: str | None  # its latest code, if it has one
    public: bool
    default_weight: float | None
    created_at: float


async def list_profiles(db: aiosqlite.Connection, user_id: int) -> list[ProfileSummary]:
    """The member's profiles, main first. Codes are the latest made: listing never snapshots."""
    out = []
    for profile in await q.list_profiles(db, user_id):
        latest = await q.latest_profile_version(db, profile.id)
        votes = await q.vote_count(db, profile.id) if profile.kind == "votes" else (latest.votes if latest else 0)
        out.append(ProfileSummary(profile.name, profile.kind, votes, latest.code if latest else None,
                                  profile.public, profile.default_weight, profile.created_at))
    return out


# ---------------------------------------------------------------------------
# /rank, likes and signals from use
# ---------------------------------------------------------------------------


async def next_pair(
    db: aiosqlite.Connection, user_id: int, rng: np.random.Generator, profile_name: str | None = None,
    avoid: tuple[int, int] | None = None,
) -> Pair | None:
    """Choose, record and return the next pair for the member's profile (the main
    one unless named), or None when there is no rank pool (the bot then shows
    NO_POOL_MESSAGE). Both images come from the same prompt; pairs answered for
    this profile (skips included) are never shown for it again, nor ``avoid`` (the
    pool image ids of a pair shown and not answered yet: the web's preloaded one).
    TasteError when every pair is answered, or the profile is unknown or not ranked by votes."""
    profile = await _profile_named(db, user_id, profile_name)
    if profile.kind != "votes":
        raise TasteError(f"`{profile.name}` is a {profile.kind}: it isn't ranked with /rank.")
    found = await current_basis(db)
    if found is None:
        return None
    basis, _ = found
    pool = await _pool(db, basis)
    if len(pool.pairs) == 0:
        return None
    # 1. candidates: same-prompt pairs not answered for this profile
    answered = await q.answered_pairs(db, profile.id)
    if avoid is not None:
        answered = np.append(answered, min(avoid) * q.PAIR_KEY + max(avoid))
    fresh = ~np.isin(pool.keys, answered)
    candidates, deltas = pool.pairs[fresh], pool.deltas[fresh]
    if len(candidates) == 0:
        raise TasteError(
            f"You have ranked all {len(pool.pairs)} pairs in the rank pool. "
            f"The server owner can grow it with `{POOL_BUILD_COMMAND} --prompts N`."
        )
    # 2. the most informative pair under the profile's posterior (or a random one)
    posterior = await _posterior(db, basis, profile)
    i, j = candidates[tm.choose_pair(posterior, deltas, rng)]
    if rng.random() < 0.5:  # no side bias
        i, j = j, i
    left, right = pool.images[int(i)], pool.images[int(j)]
    # 3. record it; its id goes into the buttons
    pair_id = await q.insert_rank_pair(db, user_id, left.id, right.id, profile.id)
    return Pair(
        id=pair_id,
        left_id=left.id,
        right_id=right.id,
        left_path=left.path,
        right_path=right.path,
        prompt=left.prompt,
        left_style=left.style,
        right_style=right.style,
        votes=await q.vote_count(db, profile.id),
        profile=profile.name,
    )


async def answer_pair(db: aiosqlite.Connection, user_id: int, pair_id: int, choice: str) -> bool:
    """Record 'left', 'right' or 'skip'. False when the pair was already answered
    or is not this member's (a second click, or someone else's buttons)."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
    return await q.answer_rank_pair(db, pair_id, user_id, choice)


async def answered(db: aiosqlite.Connection, user_id: int, pair_id: int) -> Answered | None:
    """What a member's answered pair showed: its prompt, both styles, the choice (for "you chose …")
    and the profile it taught (so the next pair teaches the same one)."""
    pair = await q.get_rank_pair(db, pair_id)
    if pair is None or pair.user_id != user_id or pair.choice is None:
        return None
    rows = await db.execute_fetchall(
        "SELECT id, prompt, style FROM pool_images WHERE id IN (?, ?)", (pair.left_id, pair.right_id)
    )
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    if len(by_id) != 2:
        return None
    taught = await q.get_profile(db, pair.profile_id) if pair.profile_id is not None else None
    return Answered(prompt=by_id[pair.left_id][0], left_style=by_id[pair.left_id][1],
                    right_style=by_id[pair.right_id][1], choice=pair.choice,
                    profile=None if taught is None or taught.is_main else taught.name)


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
    if image.video is not None:  # a clip: a like on the image it animates, over the rest of that image's grid
        job = await db_jobs.get_job(db, image.job_id)
        start = job.request.get("start_image_id") if job is not None else None
        if start is not None and await db_jobs.get_image(db, start) is not None:
            grid_image = start
    elif len(await db_jobs.images_of(db, image.job_id)) < 2:  # one image (an upscale): its parent's grid
        job = await db_jobs.get_job(db, image.job_id)
        if job is not None and job.parent_image_id is not None:
            grid_image = job.parent_image_id
    return await q.insert_like(db, user_id, image.id, grid_image)


async def record_use(
    db: aiosqlite.Connection, user_id: int, kind: str, grid_job_id: str, *,
    image_id: int | None = None, next_job_id: str | None = None,
) -> bool:
    """A signal from use on the member's own grid: ``upscale`` or ``vary`` chose
    ``image_id`` of it; ``reroll`` drew ``next_job_id`` in its place. Stored
    only when the member learns from use, the grid is theirs and has two or
    more images, and the same signal isn't stored yet. Returns whether it was."""
    if kind not in q.SIGNAL_KINDS:
        raise ValueError(f"kind must be one of {q.SIGNAL_KINDS}, got {kind!r}")
    if (kind == "reroll") != (next_job_id is not None) or (kind == "reroll") == (image_id is not None):
        raise ValueError("a reroll names the job it drew; a U or V click names the image it chose")
    if not (await members.get_settings(db, user_id)).learn_from_use:
        return False
    grid = await db_jobs.get_job(db, grid_job_id)
    if grid is None or grid.user_id != user_id:
        return False
    shown = await db_jobs.images_of(db, grid_job_id)
    if len(shown) < 2 or (image_id is not None and image_id not in {im.id for im in shown}):
        return False
    return await q.insert_use_signal(db, user_id, kind, grid_job_id, image_id, next_job_id)


def unlock_progress(votes: int, likes: int, signals: dict[str, int]) -> float:
    """Vote-equivalents toward unlocking the main profile (UNLOCK_CREDIT)."""
    return votes + likes * UNLOCK_CREDIT["like"] + sum(n * UNLOCK_CREDIT[kind] for kind, n in signals.items())


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


@dataclass(frozen=True)
class _Counts:
    votes: int
    likes: int
    signals: dict[str, int]

    @property
    def observations(self) -> int:
        return self.votes + self.likes + sum(self.signals.values())


async def _counts(db: aiosqlite.Connection, profile: q.Profile) -> _Counts:
    votes = await q.vote_count(db, profile.id)
    if not profile.is_main:
        return _Counts(votes, 0, {})
    signals = await q.use_signal_counts(db, profile.user_id)
    if not (await members.get_settings(db, profile.user_id)).learn_from_use:
        signals = {kind: 0 for kind in signals}  # not in the fit, so not counted
    return _Counts(votes, await q.like_count(db, profile.user_id), signals)


def predictions_moved(old_w: np.ndarray, new_w: np.ndarray, deltas: np.ndarray) -> float:
    """The share of pairs (rows of ``deltas``) whose predicted winner differs between two tastes."""
    if len(deltas) == 0:
        return 0.0 if np.allclose(old_w, new_w) else 1.0
    return float(np.mean(np.sign(deltas @ old_w) != np.sign(deltas @ new_w)))


async def _snapshot(db: aiosqlite.Connection, profile: q.Profile, basis: tm.Basis, counts: _Counts) -> q.ProfileVersion:
    """The profile's current version. A new one (and a new code) is made only
    when there is none on this basis, or the live fit predicts the winner of
    more than CODE_MOVE_THRESHOLD of the pool's pairs differently from the
    latest version, or CODE_EVERY_N observations came since it: so a shared code
    doesn't go stale with every click, and old codes keep working. ``counts``: the profile's now."""
    latest = await q.latest_profile_version(db, profile.id)
    signals = sum(counts.signals.values())
    if latest is not None and latest.basis_version == basis.version:
        since = counts.observations - (latest.votes + latest.likes + latest.signals)
        if since <= 0 and (latest.votes, latest.likes, latest.signals) == (counts.votes, counts.likes, signals):
            return latest
    posterior = await _posterior(db, basis, profile)
    if latest is not None and latest.basis_version == basis.version and since < CODE_EVERY_N:
        if predictions_moved(latest.w, posterior.mean, (await _pool(db, basis)).deltas) <= CODE_MOVE_THRESHOLD:
            return latest
    code = await _insert_version(
        db,
        profile=profile,
        basis_version=basis.version,
        w=posterior.mean,
        votes=counts.votes,
        likes=counts.likes,
        signals=signals,
        confidence=posterior.confidence(),
    )
    found = await q.get_profile_version(db, code)
    assert found is not None
    return found


def _locked_message(status: ProfileStatus) -> str:
    n = status.remaining
    main = status.profile == MAIN_PROFILE
    where, rank = ("", "/rank") if main else (f" **{status.profile}**", f"/rank profile:{status.profile}")
    done = f"{round(status.progress, 2):g}/{status.unlock_votes}" + (" votes and use" if main else " votes")
    return f"Your profile{where} is locked: rank {n} more pair{'s' if n != 1 else ''} with `{rank}` to unlock it ({done})."


async def unlock_hint(db: aiosqlite.Connection, user_id: int, unlock_votes: int, profile_name: str | None = None) -> str | None:
    """Why the profile (main unless named) has no code yet, "Your profile … is locked:
    rank N more pairs with `/rank …`", or None when it is unlocked or made at once
    (a moodboard, a tune). Cheap: no fit, no snapshot."""
    profile = await _profile_named(db, user_id, profile_name)
    if profile.kind != "votes":
        return None
    counts = await _counts(db, profile)
    if _progress(profile, counts) >= unlock_votes:
        return None
    return _locked_message(_status(profile, counts, unlock_votes))


async def current_code(db: aiosqlite.Connection, user_id: int, unlock_votes: int, profile_name: str | None = None) -> str:
    """The current code of the member's profile (main unless named), snapshotting a
    new version when it has moved enough. TasteError when locked ("rank N more
    pairs"), unknown, or there is no rank pool."""
    profile = await _profile_named(db, user_id, profile_name)
    if profile.kind != "votes":
        latest = await q.latest_profile_version(db, profile.id)
        if latest is None:
            raise TasteError(f"`{profile.name}` has no code yet.")
        return latest.code
    counts = await _counts(db, profile)
    progress = _progress(profile, counts)
    if progress < unlock_votes:
        raise TasteError(_locked_message(_status(profile, counts, unlock_votes)))
    basis, _ = await _require_basis(db)
    return (await _snapshot(db, profile, basis, counts)).code


async def progress(db: aiosqlite.Connection, user_id: int, profile_name: str | None = None) -> float:
    """Vote-equivalents toward unlocking the profile (main unless named), cheaply: no fit, no snapshot."""
    profile = await _profile_named(db, user_id, profile_name)
    return _progress(profile, await _counts(db, profile))


def _progress(profile: q.Profile, counts: _Counts) -> float:
    if profile.is_main:
        return unlock_progress(counts.votes, counts.likes, counts.signals)
    return float(counts.votes)


def _status(
    profile: q.Profile, counts: _Counts, unlock_votes: int, *, unlocked: bool | None = None, confidence: float = 0.0,
    code: str | None = None, toward: list[str] | None = None, away: list[str] | None = None, public: bool | None = None,
) -> ProfileStatus:
    """The profile's status; ``unlocked`` defaults to its progress reaching ``unlock_votes``."""
    progress = _progress(profile, counts)
    return ProfileStatus(
        votes=counts.votes, likes=counts.likes, unlock_votes=unlock_votes,
        unlocked=progress >= unlock_votes if unlocked is None else unlocked, confidence=confidence, code=code,
        toward=toward or [], away=away or [], public=profile.public if public is None else public,
        signals=counts.signals, progress=progress, profile=profile.name,
    )


async def status(db: aiosqlite.Connection, user_id: int, unlock_votes: int, profile_name: str | None = None) -> ProfileStatus:
    """What /info shows for a profile (main unless named). For an unlocked profile
    this snapshots a moved profile (so the code shown is the one --p will use);
    a locked one shows the live fit."""
    profile = await _profile_named(db, user_id, profile_name)
    counts = await _counts(db, profile)
    found = await current_basis(db)
    if found is None:
        return _status(profile, counts, unlock_votes)
    basis, preset = found
    unlocked = _progress(profile, counts) >= unlock_votes
    if profile.kind != "votes":
        latest = await q.latest_profile_version(db, profile.id)
        if latest is None:
            return _status(profile, counts, unlock_votes)
        code, w, confidence, public = latest.code, await _taste_of(db, latest, basis), latest.confidence, latest.public
        counts = replace(counts, votes=latest.votes)
        unlocked = True
    elif unlocked:
        snap = await _snapshot(db, profile, basis, counts)
        code, w, confidence, public = snap.code, snap.w, snap.confidence, snap.public
    else:
        posterior = await _posterior(db, basis, profile)
        code, w, confidence, public = None, posterior.mean, posterior.confidence(), profile.public
    words, text_embeddings = await q.style_words(db, preset)
    if text_embeddings is not None and text_embeddings.shape[1] != basis.d:
        words, text_embeddings = [], None
    toward, away = explain(w, basis, words, text_embeddings) if counts.observations or profile.kind != "votes" else ([], [])
    return _status(profile, counts, unlock_votes, unlocked=unlocked, confidence=float(confidence), code=code,
                   toward=toward, away=away, public=public)


async def _code_info(db: aiosqlite.Connection, v: q.ProfileVersion) -> CodeInfo:
    profile = await q.get_profile(db, v.profile_id)
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
        signals=v.signals,
        profile=profile.name if profile else MAIN_PROFILE,
        profile_kind=profile.kind if profile else v.kind,
    )


async def list_codes(db: aiosqlite.Connection, user_id: int) -> list[CodeInfo]:
    """The member's codes, newest first."""
    return [await _code_info(db, v) for v in await q.list_profile_versions(db, user_id)]


async def get_code(db: aiosqlite.Connection, code: str) -> CodeInfo | None:
    code = normalize_code(code)
    found = await q.get_profile_version(db, code) if CODE_RE.match(code) else None
    return None if found is None else await _code_info(db, found)


async def privacy(db: aiosqlite.Connection, user_id: int) -> dict[str, bool]:
    """Whether new codes start public, per kind: 'votes' for taste profiles (main, named,
    tunes), 'moodboard' for moodboards (before a first one: as the taste profiles)."""
    main = await q.main_profile(db, user_id)
    boards = await q.kind_public(db, user_id, "moodboard")
    return {"votes": main.public, "moodboard": main.public if boards is None else boards}


async def set_public(db: aiosqlite.Connection, user_id: int, code: str, public: bool) -> CodeInfo:
    """Make one of the member's codes public or private. TasteError otherwise.

    Making a code private also makes its kind private (taste or moodboard): every
    profile of that kind, so every later version and every new profile of it
    starts private, and privacy isn't lost by voting again or ranking another
    profile. Making one code public shares that code only; the kind stays as it
    was (``set_all_public`` changes both)."""
    found = await q.get_profile_version(db, normalize_code(code)) if CODE_RE.match(normalize_code(code)) else None
    if found is None:
        raise TasteError(f"Unknown code `{normalize_code(code)}`.")
    async with transaction(db):
        if not await q.set_profile_public(db, found.code, user_id, public):
            raise TasteError(f"`{found.code}` is not one of your codes.")
        if not public:
            await q.set_profiles_public(db, user_id, False, found.kind)
    return replace(await _code_info(db, found), public=public)


async def set_all_public(db: aiosqlite.Connection, user_id: int, public: bool) -> int:
    """Every code of the member (every profile's versions), and every new one
    from now on, public or private. Returns how many codes changed."""
    await q.main_profile(db, user_id)  # so that a member with no profile yet keeps the choice
    return await q.set_profiles_public(db, user_id, public, all_versions=True)


async def _taste_of(db: aiosqlite.Connection, version: q.ProfileVersion, basis: tm.Basis) -> np.ndarray:
    if version.basis_version == basis.version:
        return version.w
    old = await _basis_version(db, version.basis_version)
    if old.d != basis.d:
        raise TasteError(
            f"Code `{version.code}` was made with a different image model and cannot be used with this rank pool."
        )
    return project_w(version.w, old, basis)


async def default_picks(db: aiosqlite.Connection, user_id: int, unlock_votes: int) -> list[tuple[str, float]]:
    """What a bare ``--p`` means: the current codes of the member's default mix
    (``/prefer personalize``), or of the main profile when there is none."""
    defaults = [p for p in await q.list_profiles(db, user_id) if p.default_weight is not None]
    if not defaults:
        return [(await current_code(db, user_id, unlock_votes), 1.0)]
    return [(await current_code(db, user_id, unlock_votes, p.name), float(p.default_weight)) for p in defaults]


async def server_taste(db: aiosqlite.Connection, basis: tm.Basis) -> np.ndarray:
    """``--p server``: the community's own taste, the prior's mean (refreshed as members
    vote). TasteError before there is one (the cold-start prior's mean is no one's taste)."""
    if (await q.community_observations(db))[0] < PRIOR_MIN_MEMBERS:
        raise TasteError(
            f"`{SERVER}` is the community's own taste, and there is none yet: it forms once {PRIOR_MIN_MEMBERS} "
            "members have voted (`/rank`), liked or used their grids."
        )
    prior = await community_prior(db, basis)
    return np.asarray(prior.mean, dtype=np.float64)


async def resolve(
    db: aiosqlite.Connection,
    user_id: int,
    picks: list[tuple[str | None, float]],
    unlock_votes: int,
    *,
    house: tuple[str, float, int | None] | None = None,
) -> Taste:
    """``--p`` picks to one taste vector in the current basis.

    None is the member's default mix (``default_picks``: the main profile's
    current code unless they chose defaults; TasteError when locked). SERVER is
    the community's taste. Others' codes must be public; the owner may always
    use their own. Weights are normalised to sum to 1 and mixed linearly:
    w = sum alpha_i w_i. Codes from an older basis are projected into the
    current one (``project_w``).

    ``house`` (code, weight, who set it) is a server's house taste: the mix
    becomes (1 - weight) * the member's + weight * the house's. With no picks
    the house taste alone is used."""
    basis, preset = await _require_basis(db)
    expanded: list[tuple[str, float]] = []
    for code, weight in picks:
        if code is None:
            defaults = await default_picks(db, user_id, unlock_votes)
            total = sum(w for _, w in defaults)
            expanded += [(c, weight * w / total) for c, w in defaults]
        else:
            expanded.append((normalize_code(code), weight))
    total = float(sum(weight for _, weight in expanded))
    if expanded and (not math.isfinite(total) or total <= 0):
        raise TasteError("The `--p` weights must add up to more than 0.")
    w = np.zeros(basis.k)
    used: list[tuple[str, float]] = []
    share = 1.0 if house is None or not expanded else 1.0 - house[1]
    for code, weight in expanded:
        alpha = share * float(weight) / total
        w = w + alpha * await _pick_taste(db, user_id, code, basis)
        used.append((code, alpha))
    if house is not None:
        code, weight, owner = house
        alpha = 1.0 - share if expanded else 1.0
        w = w + alpha * await _pick_taste(db, owner if owner is not None else user_id, code, basis, house=True)
        used.append((code, alpha))
    if not used:
        raise TasteError("No taste to use: give `--p` a code.")
    return Taste(w=w, basis=basis, codes=used, preset=preset)


async def _pick_taste(db: aiosqlite.Connection, user_id: int, code: str, basis: tm.Basis, *, house: bool = False) -> np.ndarray:
    """One code's taste in the basis, if ``user_id`` may use it."""
    if code == SERVER:
        return await server_taste(db, basis)
    version = await q.get_profile_version(db, code) if CODE_RE.match(code) else None
    what = "This server's house taste" if house else "Code"
    if version is None:
        raise TasteError(f"{what} `{code}` is unknown." if house else f"Unknown code `{code}`.")
    if not version.public and version.user_id != user_id:
        raise TasteError(f"{what} `{code}` is private: only its owner can use it.")
    return await _taste_of(db, version, basis)


# ---------------------------------------------------------------------------
# moodboards and tunes: profiles made at once, not by voting
# ---------------------------------------------------------------------------


async def typical_taste_norm(db: aiosqlite.Connection, basis: tm.Basis) -> float:
    """The median |w| of members' main profiles on this basis (DEFAULT_TASTE_NORM before any)."""
    norms = [n for n in await q.vote_profile_norms(db, basis.version) if n > 0]
    return float(np.median(norms)) if norms else DEFAULT_TASTE_NORM


async def create_moodboard(db: aiosqlite.Connection, user_id: int, embeddings: np.ndarray, name: str | None = None) -> str:
    """A profile from images (their OpenCLIP embeddings): w points toward the mean
    of their whitened embeddings, scaled to a typical taste norm. Each moodboard
    is its own profile ("moodboard N" unless named); it starts private when the
    member chose so for moodboards (or, before a first one, for their taste).
    Returns its code."""
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
    profile = await _new_made_profile(db, user_id, name, "moodboard")
    return await _insert_version(
        db,
        profile=profile,
        basis_version=basis.version,
        w=m / norm * await typical_taste_norm(db, basis),
        votes=0,
        images=int(emb.shape[0]),
    )


async def create_tuned_profile(
    db: aiosqlite.Connection, user_id: int, name: str | None, z_winners: np.ndarray, z_losers: np.ndarray
) -> str:
    """A style tune's result (``/tune``): the member's picks between renders of
    their own prompt, as whitened (n, k) winner and loser embeddings, fitted
    under the community prior. A new 'tune' profile ("tune N" unless named)
    with one version; returns its code."""
    basis, _ = await _require_basis(db)
    winners, losers = np.asarray(z_winners, dtype=np.float64), np.asarray(z_losers, dtype=np.float64)
    if winners.shape != losers.shape or winners.ndim != 2 or winners.shape[1] != basis.k or len(winners) == 0:
        raise ValueError(f"picks must be two (n >= 1, {basis.k}) arrays of the same shape")
    posterior = tm.fit(winners - losers, prior=await community_prior(db, basis))
    profile = await _new_made_profile(db, user_id, name, "tune")
    return await _insert_version(
        db, profile=profile, basis_version=basis.version, w=posterior.mean, votes=len(winners),
        confidence=posterior.confidence(),
    )


async def _new_made_profile(db: aiosqlite.Connection, user_id: int, name: str | None, kind: str) -> q.Profile:
    """A moodboard's or a tune's profile, public or private as the member chose for its kind."""
    if name is not None:
        return await create_profile(db, user_id, name, kind)
    await check_new_profile(db, user_id, None)
    public = (await privacy(db, user_id))[q.privacy_kind(kind)]
    live = await q.list_profiles(db, user_id)
    taken = {p.name.lower() for p in live}
    n = 1 + sum(p.kind == kind for p in live)
    while f"{kind} {n}" in taken:
        n += 1
    made = await q.insert_profile(db, user_id, f"{kind} {n}", kind, public)
    if made is None:  # a concurrent one took the name
        raise TasteError("Another profile was made at the same moment; please try again.")
    return made
