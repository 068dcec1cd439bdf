"""Taste-model sample efficiency on a simulated community.

    .venv/bin/python bench/taste_bench.py            # full run (about 5 min on 2 cores)
    .venv/bin/python bench/taste_bench.py --quick    # smoke run (< 30 s)

The world (seeded, numpy only):

* Items are d=256 "CLIP-like" embeddings: a shared offset (CLIP embeddings
  are far from zero-mean), a content vector per prompt with a decaying
  spectrum, a style offset from one of 40 style clusters that live in a
  32-d style subspace, a quality score per render along one hidden axis, and
  per-item jitter. A rank-pool prompt is rendered in 8 random styles, so a
  same-prompt pair differs mostly in style and in how well each render came
  out.
* The learner's Basis (k=64) is built from the rank pool only; evaluation
  uses pairs from held-out prompts.
* Each member has a hidden utility that is NOT in the learner's model family
  (linear in z): a soft-max over 2-3 preferred style prototypes plus a
  personal quirk and the shared quality axis h,
  u(x) = log sum_j pi_j exp(beta p_j . x) + gamma a . x + kappa h . x, on the
  unit-normalised embedding x. Each prototype is, with probability 0.6, one of
  5 community favourites (with popularity weights), otherwise the member's
  own; a is a personal linear quirk in the full 256-d space (partly outside
  the basis).
* Votes are noisy: P(a beats b) = Phi(T (u_a - u_b)) (probit, not the
  learner's logistic link).
* Two numbers are calibrated, each to a stated target and never to this
  bench's result. T is set so that the true utility scores ~77.5% expected
  held-out pairwise accuracy (the ceiling the issue asks for). kappa is set so
  that the best shared predictor, the crowd's majority on each pair, scores
  70.5% on individual members' votes: what PickScore, a model shared by all
  users, scores on Pick-a-Pic users' own picks (Kirstain et al. 2023). That is
  the conservative one of the paper's two measures of how communal taste is;
  by the other (another person agrees with a user's pick 68.0% of the time)
  the world would be more communal still. Without the quality axis (kappa=0,
  the first version of this bench) the crowd's majority scores about 63%.

Members are split: history members give 40 random votes each (--history active:
40 chosen by choose_pair from a cold start, as the bot's /rank chooses them;
--history random+use: the 40 random votes and 20 grids of ordinary use each, as
the bot's community prior sees votes and signals from use) and are the
only data the community prior sees; test members are the learners, and none
of their votes reach the prior. Accuracy is the expected held-out pairwise
accuracy (the mean over pairs of the true probability of the predicted
winner), averaged over test members.

Methods:
  (a) baseline: ridge Bradley-Terry, isotropic prior, random same-prompt pairs.
      Its sigma is tuned on the test members at 200 votes (an oracle-tuned,
      i.e. deliberately strong, baseline).
  (b) community prior (empirical Bayes on the history members), random pairs.
  (c) community prior + active choice (choose_pair over all within-prompt
      pairs of 32 random pool prompts; the bot offers every unanswered pair,
      so choose_pair is told that the pairs whose predictions matter are all
      of the pool's, as they are in the bot).
  (u) (c) for a member who made 20 /imagine grids before their first vote.

The community prior is what engine.taste.community_prior returns: with 300
history members, the server's taste clusters (a mixture; see engine/taste.py).

Ordinary use (members who only /imagine; the assumptions are this bench's,
not measured on people): each grid is a new prompt drawn four times, in one
style cluster for half of the prompts (the prompt names a style) and in four
for the rest. The member judges the four with the same noise as their votes
(Thurstone: T u + N(0, 1/2) each), rerolls when the best looks worse than
their own 20th percentile (at most twice; the reroll draws the same prompt
again), else upscales the favourite (70%) or varies a favourite judged with
twice the noise (30%). The weights of U, V and reroll are set here (one at a
time, on 50 members of their own, by the held-out log score of use-only
fits) and printed beside the ones engine/taste.py uses. Use runs on random
streams of its own, so (a), (b) and (c) are the same with or without it.

The last line is the smallest vote count on the grid at which (b) or (c)
reaches (a)'s accuracy at 200 votes; the lines before it give the same for
(u), and the grids of use alone (no votes) that reach it. How communal real
tastes are decides that answer, so the full run also prints how all three
move with the crowd's accuracy, from the first version's world (no quality
axis) up (--no-sweep skips that).
"""

from __future__ import annotations

import os

# k=64 linear algebra is far too small for threads; they only contend on 2 cores
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import taste  # noqa: E402

# ---------------------------------------------------------------------------
# the simulated world
# ---------------------------------------------------------------------------

D = 256
STYLE_DIM = 32
N_STYLES = 40
STYLES_PER_PROMPT = 8
N_SHARED_PROTOS = 5
SHARED_POPULARITY = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
P_SHARED = 0.6
BETA = 12.0
GAMMA = 2.0
TARGET_CEILING = 0.775
TARGET_CROWD = 0.705  # PickScore on Pick-a-Pic users' own picks
QUALITY_SPREAD = 0.14  # per-render spread along the quality axis, like one style dimension
K = 64


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF via erf (Abramowitz-Stegun 7.1.26, |err| < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


@dataclass
class World:
    style_basis: np.ndarray  # (d, STYLE_DIM) orthonormal
    style_centers: np.ndarray  # (N_STYLES, d)
    shared_protos: np.ndarray  # (N_SHARED_PROTOS, d) unit
    quality_axis: np.ndarray  # (d,) unit
    offset: np.ndarray  # (d,) what every embedding shares
    content_map: np.ndarray  # (d, d) sqrt(spectrum) then a rotation: content = normal @ content_map
    pool: np.ndarray | None = None  # (P, 8, d) raw embeddings of the rank pool
    evalset: np.ndarray | None = None  # (E, 8, d) held-out prompts


def new_content(rng: np.random.Generator, world: World, n_prompts: int) -> np.ndarray:
    return rng.normal(size=(n_prompts, D)) @ world.content_map


def render(rng: np.random.Generator, world: World, content: np.ndarray, styles: np.ndarray) -> np.ndarray:
    """Renders (n, d) of one prompt's content in the given style clusters."""
    n = len(styles)
    jitter_style = (rng.normal(size=(n, STYLE_DIM)) * 0.25 / math.sqrt(STYLE_DIM)) @ world.style_basis.T
    jitter = rng.normal(size=(n, D)) * (0.15 / math.sqrt(D))
    quality = rng.normal(size=(n, 1)) * QUALITY_SPREAD * world.quality_axis
    return world.offset + content + world.style_centers[styles] + jitter_style + quality + jitter


def render_prompts(rng: np.random.Generator, world: World, n_prompts: int) -> np.ndarray:
    """(n, 8, d): each prompt in 8 different style clusters (a rank pool)."""
    content = new_content(rng, world, n_prompts)
    out = np.empty((n_prompts, STYLES_PER_PROMPT, D))
    for i in range(n_prompts):
        out[i] = render(rng, world, content[i], rng.choice(N_STYLES, STYLES_PER_PROMPT, replace=False))
    return out


def make_world(rng: np.random.Generator, n_pool: int, n_eval: int) -> World:
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    style_basis = q[:, :STYLE_DIM]
    offset = rng.normal(size=D)
    offset *= 2.0 / np.linalg.norm(offset)
    spectrum = 1.0 / np.arange(1, D + 1)
    spectrum /= spectrum.sum()  # content: total variance 1, decaying
    rot, _ = np.linalg.qr(rng.normal(size=(D, D)))
    style_centers = (rng.normal(size=(N_STYLES, STYLE_DIM)) * (0.8 / math.sqrt(STYLE_DIM))) @ style_basis.T
    quality_axis = rng.normal(size=D)
    quality_axis /= np.linalg.norm(quality_axis)
    world = World(style_basis, style_centers, np.empty((N_SHARED_PROTOS, D)), quality_axis, offset, np.sqrt(spectrum)[:, None] * rot.T)
    # community favourites: blends of two style clusters ("watercolor + soft light")
    for j in range(N_SHARED_PROTOS):
        a, b = rng.choice(N_STYLES, 2, replace=False)
        v = style_centers[a] + 0.6 * style_centers[b]
        world.shared_protos[j] = v / np.linalg.norm(v)
    world.pool = render_prompts(rng, world, n_pool)
    world.evalset = render_prompts(rng, world, n_eval)
    return world


@dataclass
class Member:
    protos: np.ndarray  # (j, d) unit
    pi: np.ndarray  # (j,)
    quirk: np.ndarray  # (d,) unit


def make_members(rng: np.random.Generator, world: World, n: int, p_shared: float = P_SHARED) -> list[Member]:
    members = []
    for _ in range(n):
        n_p = int(rng.integers(2, 4))
        protos = np.empty((n_p, D))
        for j in range(n_p):
            if rng.random() < p_shared:
                protos[j] = world.shared_protos[rng.choice(N_SHARED_PROTOS, p=SHARED_POPULARITY)]
            else:  # the member's own: a style cluster pushed somewhere personal
                v = world.style_centers[rng.integers(N_STYLES)] + world.style_basis @ (
                    rng.normal(size=STYLE_DIM) * (0.5 / math.sqrt(STYLE_DIM))
                )
                protos[j] = v / np.linalg.norm(v)
        quirk = rng.normal(size=D)
        members.append(Member(protos, rng.dirichlet(np.full(n_p, 2.0)), quirk / np.linalg.norm(quirk)))
    return members


def personal_utility(m: Member, x: np.ndarray) -> np.ndarray:
    """The member's own part of the hidden utility of raw embeddings x (..., d)."""
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    a = BETA * (xn @ m.protos.T) + np.log(m.pi)
    amax = a.max(axis=-1, keepdims=True)
    lse = (amax + np.log(np.exp(a - amax).sum(axis=-1, keepdims=True)))[..., 0]
    return lse + GAMMA * (xn @ m.quirk)


def quality(world: World, x: np.ndarray) -> np.ndarray:
    """The part every member shares (times kappa): position on the quality axis."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)) @ world.quality_axis


# ---------------------------------------------------------------------------
# votes and evaluation
# ---------------------------------------------------------------------------

PAIRS = np.array([(i, j) for i in range(STYLES_PER_PROMPT) for j in range(i + 1, STYLES_PER_PROMPT)])


@dataclass
class MemberData:
    u_pool: np.ndarray  # (P, 8) utilities of pool items
    eval_dp: np.ndarray  # (n_eval_pairs,) true P(first beats second)


def eval_pairs(world_z_eval: np.ndarray) -> np.ndarray:
    """(E*28, k) whitened deltas of all within-prompt eval pairs."""
    return (world_z_eval[:, PAIRS[:, 0]] - world_z_eval[:, PAIRS[:, 1]]).reshape(-1, world_z_eval.shape[-1])


def true_probs(u: np.ndarray, temp: float) -> np.ndarray:
    du = u[:, PAIRS[:, 0]] - u[:, PAIRS[:, 1]]
    return norm_cdf(temp * du).reshape(-1)


def expected_accuracy(pred: np.ndarray, p_true: np.ndarray) -> float:
    """Expected accuracy of predicting 'first wins' iff pred > 0.5 (ties count half)."""
    return float(np.mean(np.where(pred > 0, p_true, np.where(pred < 0, 1 - p_true, 0.5))))


def calibrate_temperature(u_evals: np.ndarray, target: float) -> float:
    """T such that the true utilities (members, E, 8) score ``target``."""
    du = u_evals[:, :, PAIRS[:, 0]] - u_evals[:, :, PAIRS[:, 1]]
    lo, hi = 1e-3, 1e3
    while hi / lo > 1 + 1e-5:
        mid = math.sqrt(lo * hi)
        p = norm_cdf(mid * du)
        lo, hi = (mid, hi) if np.mean(np.maximum(p, 1 - p)) < target else (lo, mid)
    return math.sqrt(lo * hi)


def crowd_accuracy(p: np.ndarray) -> float:
    """Expected accuracy on each member's votes (p: members x pairs, true P(first
    wins)) of the best shared predictor: the majority of everyone else."""
    others = (p.sum(axis=0) - p) / (len(p) - 1)
    return float(np.mean(np.where(others > 0.5, p, np.where(others < 0.5, 1 - p, 0.5))))


def member_agreement(p: np.ndarray) -> float:
    """Chance that two different members vote the same way on a pair."""
    m, s = len(p), p.sum(axis=0)
    both = (s * s - (p * p).sum(axis=0)) + ((m - s) ** 2 - ((1 - p) ** 2).sum(axis=0))
    return float(np.mean(both / (m * (m - 1))))


def calibrate_world(u_personal: np.ndarray, q: np.ndarray, crowd: float | None) -> tuple[float, float]:
    """(kappa, T): T gives the ceiling; kappa, the weight of the shared quality
    axis, makes the crowd's majority score ``crowd`` (None: no shared axis)."""

    def temp_for(kappa: float) -> float:
        return calibrate_temperature(u_personal + kappa * q, TARGET_CEILING)

    def crowd_for(kappa: float) -> float:
        temp = temp_for(kappa)
        return crowd_accuracy(np.array([true_probs(u, temp) for u in u_personal + kappa * q]))

    if crowd is None or crowd_for(0.0) >= crowd:
        return 0.0, temp_for(0.0)
    lo, hi = 0.0, 1.0
    while crowd_for(hi) < crowd:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-3 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if crowd_for(mid) < crowd else (lo, mid)
    kappa = 0.5 * (lo + hi)
    return kappa, temp_for(kappa)


def random_votes(rng, z_pool, u_pool, temp, n):
    """n random same-prompt votes as (winner - loser) deltas."""
    prompts = rng.integers(z_pool.shape[0], size=n)
    pairs = PAIRS[rng.integers(len(PAIRS), size=n)]
    a, b = pairs[:, 0], pairs[:, 1]
    p = norm_cdf(temp * (u_pool[prompts, a] - u_pool[prompts, b]))
    first = rng.random(n) < p
    delta = z_pool[prompts, a] - z_pool[prompts, b]
    return np.where(first[:, None], delta, -delta)


def active_votes(rng, z_pool, u_pool, temp, prior, n, grid, n_cand_prompts, explore, times, known=None, given=None):
    """Sequential votes chosen by choose_pair; returns {n_votes: posterior}.
    ``known``: (deltas, weights) the member gave before (signals from use).
    ``given``: a list the votes' deltas are appended to."""
    k = z_pool.shape[-1]
    d0, c0 = known if known is not None else (np.empty((0, k)), np.empty(0))
    out = {}
    deltas = np.concatenate([d0, np.empty((n, k))])
    weights = np.concatenate([c0, np.ones(n)])
    n0 = len(d0)
    # the bot offers every pair of its pool; this samples prompts for speed, so
    # the pairs whose predictions matter are named: all of the pool's
    every = (z_pool[:, PAIRS[:, 0]] - z_pool[:, PAIRS[:, 1]]).reshape(-1, k)
    pool_spread = every.T @ every / len(every)
    post = taste.fit(deltas[:n0], weights[:n0], prior=prior)
    if 0 in grid:
        out[0] = post
    for t in range(n):
        prompts = rng.choice(z_pool.shape[0], n_cand_prompts, replace=False)
        zc = z_pool[prompts]  # (c, 8, k)
        cand = (zc[:, PAIRS[:, 0]] - zc[:, PAIRS[:, 1]]).reshape(-1, zc.shape[-1])
        idx = taste.choose_pair(post, cand, rng, explore=explore, spread=pool_spread)
        pr, pair = prompts[idx // len(PAIRS)], PAIRS[idx % len(PAIRS)]
        p = norm_cdf(temp * (u_pool[pr, pair[0]] - u_pool[pr, pair[1]]))
        deltas[n0 + t] = cand[idx] if rng.random() < p else -cand[idx]
        t0 = time.perf_counter()
        post = taste.fit(deltas[: n0 + t + 1], weights[: n0 + t + 1], prior=prior, init=post.mean)
        if t + 1 == n:
            times.append(time.perf_counter() - t0)
        if t + 1 in grid:
            out[t + 1] = post
    if given is not None:
        given.append(deltas[n0:].copy())
    return out


# ---------------------------------------------------------------------------
# ordinary use: /imagine grids, then U, V or a reroll
# ---------------------------------------------------------------------------

GRID = 4
SAME_STYLE_P = 0.5  # prompts that name a style: the grid's four renders share one style cluster
P_UPSCALE = 0.7  # a kept grid gets a U on the favourite, else a V
REROLL_SHARE = 0.2  # a grid whose best image is in the member's own worst fifth is rerolled
V_NOISE = 2.0  # a V is picked by a noisier judgement than a U (this many times the noise sd)
MAX_REROLLS = 2
USE_GRIDS = (5, 10, 20, 50, 100)  # grids of use alone that the bench scores
USE_BEFORE = 20  # grids a member made before their first /rank vote, in (u)
HISTORY_SHOWN = {
    "random": "random votes",
    "active": "active votes",
    "random+use": f"random votes and {USE_BEFORE} grids of use",
}


@dataclass
class UseEvent:
    signal: str  # "upscale", "vary" or "reroll"
    grid: np.ndarray  # (4, d) raw embeddings
    chosen: int | None = None
    replacement: np.ndarray | None = None  # a reroll's new grid


def draw_grid(rng: np.random.Generator, world: World, content: np.ndarray) -> np.ndarray:
    """One /imagine grid of a prompt: four renders, in one style cluster when the
    prompt names a style (SAME_STYLE_P), else in four."""
    if rng.random() < SAME_STYLE_P:
        styles = np.full(GRID, rng.integers(N_STYLES))
    else:
        styles = rng.choice(N_STYLES, GRID, replace=False)
    return render(rng, world, content, styles)


def simulate_use(rng, world, utility, temp: float, n_grids: int) -> list[UseEvent]:
    """A member who only uses /imagine: each new prompt's grid gets one action.
    Judgements are Thurstonian with the vote noise (T u_i + N(0, 1/2) per image,
    so two images compare as a vote would): the grid is rerolled when its best
    perceived image is in the member's own worst REROLL_SHARE (at most
    MAX_REROLLS times), else the favourite is upscaled (P_UPSCALE) or a
    noisier favourite varied."""
    noise = math.sqrt(0.5)
    # the member's reroll threshold: a quantile of their own best-of-four
    probe = [draw_grid(rng, world, new_content(rng, world, 1)[0]) for _ in range(100)]
    best = [np.max(temp * utility(g) + rng.normal(size=GRID) * noise) for g in probe]
    threshold = float(np.quantile(best, REROLL_SHARE))
    events = []
    for content in new_content(rng, world, n_grids):
        grid = draw_grid(rng, world, content)
        for attempt in range(MAX_REROLLS + 1):
            u = temp * utility(grid)
            seen = u + rng.normal(size=GRID) * noise
            if seen.max() < threshold and attempt < MAX_REROLLS:
                new = draw_grid(rng, world, content)
                events.append(UseEvent("reroll", grid, replacement=new))
                grid = new
                continue
            if rng.random() < P_UPSCALE:
                events.append(UseEvent("upscale", grid, chosen=int(np.argmax(seen))))
            else:
                vary = u + rng.normal(size=GRID) * noise * V_NOISE
                events.append(UseEvent("vary", grid, chosen=int(np.argmax(vary))))
            break
    return events


def first_grids(events: list[UseEvent], n_grids: int) -> list[UseEvent]:
    """The events of the first n_grids prompts (a prompt's rerolls, then its U or V)."""
    kept = 0
    for j, e in enumerate(events):
        kept += e.signal != "reroll"
        if kept == n_grids:
            return events[: j + 1]
    return events


def use_deltas(events: list[UseEvent], basis: taste.Basis, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The events as weighted comparisons through engine.taste.use_comparisons."""
    ds, cs = [np.empty((0, basis.k))], [np.empty(0)]
    for e in events:
        w = weights[e.signal]
        if w <= 0:
            continue
        z_rep = None if e.replacement is None else basis.whiten(e.replacement)
        d, c = taste.use_comparisons(basis.whiten(e.grid), e.signal, e.chosen, z_rep, weight=w)
        ds.append(d)
        cs.append(c)
    return np.concatenate(ds), np.concatenate(cs)


def log_score(pred: np.ndarray, p_true: np.ndarray) -> float:
    """Expected log-likelihood per pair of predicted P(first wins): a proper
    score, so it rewards calibration as well as accuracy."""
    q = np.clip(pred, 1e-9, 1 - 1e-9)
    return float(np.mean(p_true * np.log(q) + (1 - p_true) * np.log(1 - q)))


USE_WEIGHT_GRID = {
    "upscale": (0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
    "vary": (0.0, 0.25, 0.5, 1.0, 1.5),
    "reroll": (0.0, 0.1, 0.2, 0.4, 0.8),
}


def taste_use_weights() -> dict[str, float]:
    """The weights engine/taste.py gives signals from use."""
    return {"upscale": taste.UPSCALE_WEIGHT, "vary": taste.VARY_WEIGHT, "reroll": taste.REROLL_WEIGHT}


def set_use_weights(member_events, basis, prior, ev, p_evals) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Each signal's weight, one signal at a time (U, then V, then reroll), as
    the grid value whose use-only fits score best (held-out log score) on
    members of their own, not the test members."""
    chosen = {"upscale": 0.0, "vary": 0.0, "reroll": 0.0}
    table: dict[str, dict[float, float]] = {}
    for signal, values in USE_WEIGHT_GRID.items():
        table[signal] = {}
        for v in values:
            w = {**chosen, signal: v}
            scores = []
            for events, p_true in zip(member_events, p_evals, strict=True):
                d, c = use_deltas(events, basis, w)
                scores.append(log_score(taste.fit(d, c, prior=prior).prob(ev), p_true))
            table[signal][v] = float(np.mean(scores))
        chosen[signal] = max(table[signal], key=table[signal].get)
    return chosen, table


def ece(pred: np.ndarray, p_true: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of P(first wins), binned by prediction."""
    edges = np.minimum((pred * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        sel = edges == b
        if sel.any():
            err += sel.mean() * abs(pred[sel].mean() - p_true[sel].mean())
    return float(err)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


@dataclass
class Result:
    grid: list[int]
    acc: dict[str, dict[int, float]]  # method -> votes -> mean expected accuracy
    ceiling: float
    linear_oracle: float | None
    temp: float
    kappa: float
    crowd: float
    agreement: float
    best_sigma: float
    acc0: float
    ece_pooled: float
    ece_member: float
    refit_ms: float
    t_prior: float
    sizes: dict[str, int]
    use_weights: dict[str, float] | None = None
    use_table: dict[str, dict[float, float]] | None = None
    use_only: dict[int, float] | None = None  # grids of use -> accuracy, no votes
    use_only_ece: float | None = None

    def votes_needed(self) -> int | None:
        """Smallest grid vote count where (b) or (c) reaches (a) at the largest count."""
        target = self.acc["a"][self.grid[-1]]
        for n in self.grid:
            if max(self.acc["b"][n], self.acc["c"][n]) >= target:
                return n
        return None

    def votes_needed_with_use(self) -> int | None:
        """The same for (u): active votes after USE_BEFORE grids of ordinary use."""
        target = self.acc["a"][self.grid[-1]]
        for n in sorted(self.acc.get("u", {})):
            if self.acc["u"][n] >= target:
                return n
        return None

    def grids_needed(self) -> int | None:
        """Grids of ordinary use alone (no votes) that reach (a) at the largest count."""
        target = self.acc["a"][self.grid[-1]]
        for n in sorted(self.use_only or {}):
            if self.use_only[n] >= target:
                return n
        return None


def run(
    *,
    seed: int,
    quick: bool,
    p_shared: float = P_SHARED,
    crowd: float | None = TARGET_CROWD,
    explore: float,
    cand_prompts: int,
    n_test: int | None = None,
    linear_oracle: bool = True,
    use: bool = True,
    history: str = "random",
) -> Result:
    if quick:
        n_pool, n_eval, n_hist, n_t, n_tune = 300, 60, 80, 20, 20
        grid = [5, 10, 20, 40, 100, 200]
    else:
        n_pool, n_eval, n_hist, n_t, n_tune = 400, 120, 300, 100, 50
        grid = [5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 80, 100, 150, 200]
    n_test = n_t if n_test is None else n_test
    hist_votes, max_votes = 40, max(grid)
    rng = np.random.default_rng(seed)

    # 1. world, basis (from the rank pool only) and members
    world = make_world(rng, n_pool, n_eval)
    basis = taste.Basis.build(world.pool.reshape(-1, D), k=K)
    z_pool = basis.whiten(world.pool.reshape(-1, D)).reshape(n_pool, STYLES_PER_PROMPT, -1)
    z_eval = basis.whiten(world.evalset.reshape(-1, D)).reshape(n_eval, STYLES_PER_PROMPT, -1)
    ev = eval_pairs(z_eval)
    members = make_members(rng, world, n_hist + n_test, p_shared)
    u_eval_own = np.array([personal_utility(m, world.evalset) for m in members])
    q_pool, q_eval = quality(world, world.pool), quality(world, world.evalset)
    kappa, temp = calibrate_world(u_eval_own[n_hist:], q_eval, crowd)
    u_pool = [personal_utility(m, world.pool) + kappa * q_pool for m in members]
    u_eval = u_eval_own + kappa * q_eval
    p_eval = [true_probs(u, temp) for u in u_eval]
    test = range(n_hist, n_hist + n_test)
    crowd_acc = crowd_accuracy(np.array(p_eval[n_hist:]))
    agreement = member_agreement(np.array(p_eval[n_hist:]))
    ceiling = float(np.mean([np.mean(np.maximum(p_eval[i], 1 - p_eval[i])) for i in test]))

    def acc_of(w: np.ndarray, i: int) -> float:
        return expected_accuracy(ev @ w, p_eval[i])

    # 2. the community prior sees only the history members (40 random votes each)
    t0 = time.perf_counter()
    if history == "active":  # as in the bot: each history member's pairs chosen by choose_pair, from a cold start
        hist = []
        cold = taste.Prior.isotropic(basis.k, 1.0)
        for i in range(n_hist):
            active_votes(rng, z_pool, u_pool[i], temp, cold, hist_votes, set(), cand_prompts, explore, [], given=hist)
    else:
        hist = [random_votes(rng, z_pool, u_pool[i], temp, hist_votes) for i in range(n_hist)]
    hist_w = None
    if history == "random+use":  # as the bot's prior sees them: votes and each member's signals from use
        h_rng, engine_w = np.random.default_rng([seed, 2]), taste_use_weights()
        hist_w = [np.ones(len(d)) for d in hist]
        for i in range(n_hist):
            def util(x, m=members[i]):
                return personal_utility(m, x) + kappa * quality(world, x)
            d, c = use_deltas(simulate_use(h_rng, world, util, temp, USE_BEFORE), basis, engine_w)
            hist[i], hist_w[i] = np.concatenate([hist[i], d]), np.concatenate([hist_w[i], c])
    prior_c = taste.community_prior(hist, hist_w, k=basis.k)
    t_prior = time.perf_counter() - t0
    acc0 = float(np.mean([acc_of(prior_c.mean, i) for i in test]))

    # 3. random-pair vote streams of the test members, shared by (a) and (b)
    streams = {i: random_votes(rng, z_pool, u_pool[i], temp, max_votes) for i in test}

    # (a) ridge baseline; sigma tuned on the test members at max_votes (oracle-tuned)
    sig_grid = [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0]
    best_sigma = max(
        sig_grid,
        key=lambda sg: np.mean(
            [acc_of(taste.fit(streams[i], prior=taste.Prior.isotropic(basis.k, sg)).mean, i) for i in test]
        ),
    )
    prior_iso = taste.Prior.isotropic(basis.k, best_sigma)
    acc: dict[str, dict[int, float]] = {"a": {}, "b": {}, "c": {}}
    for n in grid:
        acc["a"][n] = float(np.mean([acc_of(taste.fit(streams[i][:n], prior=prior_iso).mean, i) for i in test]))
        acc["b"][n] = float(np.mean([acc_of(taste.fit(streams[i][:n], prior=prior_c).mean, i) for i in test]))

    # (c) community prior + active choice, refit after every vote
    times: list[float] = []
    per_n: dict[int, list[float]] = {n: [] for n in grid}
    probs_c, ptrue_c = [], []
    for i in test:
        posts = active_votes(rng, z_pool, u_pool[i], temp, prior_c, max_votes, set(grid), cand_prompts, explore, times)
        for n in grid:
            per_n[n].append(acc_of(posts[n].mean, i))
        probs_c.append(posts[max_votes].prob(ev))
        ptrue_c.append(p_eval[i])
    for n in grid:
        acc["c"][n] = float(np.mean(per_n[n]))
    ece_pooled = ece(np.concatenate(probs_c), np.concatenate(ptrue_c))
    ece_member = float(np.mean([ece(p, q) for p, q in zip(probs_c, ptrue_c, strict=True)]))

    # 4. ordinary use, on random streams of their own (the numbers above stay as they were)
    use_results = {}
    if use:
        use_rng = np.random.default_rng([seed, 1])

        def utility_of(m: Member):
            return lambda x: personal_utility(m, x) + kappa * quality(world, x)

        # 4a. the weights of the signals, set on members of their own
        tuners = make_members(use_rng, world, n_tune, p_shared)
        tune_events = [simulate_use(use_rng, world, utility_of(m), temp, USE_BEFORE) for m in tuners]
        tune_p = [
            true_probs(personal_utility(m, world.evalset) + kappa * q_eval, temp) for m in tuners
        ]
        use_weights, use_table = set_use_weights(tune_events, basis, prior_c, ev, tune_p)
        # 4b. the test members' use: use alone, then /rank votes on top of USE_BEFORE grids
        events = {i: simulate_use(use_rng, world, utility_of(members[i]), temp, max(USE_GRIDS)) for i in test}
        use_only, probs_u = {}, []
        for g in USE_GRIDS:
            accs = []
            for i in test:
                post = taste.fit(*use_deltas(first_grids(events[i], g), basis, use_weights), prior=prior_c)
                accs.append(acc_of(post.mean, i))
                if g == USE_BEFORE:
                    probs_u.append(post.prob(ev))
            use_only[g] = float(np.mean(accs))
        use_only_ece = ece(np.concatenate(probs_u), np.concatenate(ptrue_c))
        grid_u = [0, *grid]
        per_u: dict[int, list[float]] = {n: [] for n in grid_u}
        for i in test:
            known = use_deltas(first_grids(events[i], USE_BEFORE), basis, use_weights)
            posts = active_votes(
                use_rng, z_pool, u_pool[i], temp, prior_c, max(grid_u), set(grid_u), cand_prompts, explore, [], known
            )
            for n in grid_u:
                per_u[n].append(acc_of(posts[n].mean, i))
        acc["u"] = {n: float(np.mean(per_u[n])) for n in grid_u}
        use_results = {
            "use_weights": use_weights,
            "use_table": use_table,
            "use_only": use_only,
            "use_only_ece": use_only_ece,
        }

    # 5. context: the best linear taste on these features (5000 random votes each)
    lin = None
    if linear_oracle:
        lin = float(
            np.mean(
                [
                    acc_of(taste.fit(random_votes(rng, z_pool, u_pool[i], temp, 5000), prior=prior_iso).mean, i)
                    for i in test
                ]
            )
        )
    sizes = {
        "pool": n_pool, "eval": n_eval, "eval_pairs": len(ev), "hist": n_hist, "test": n_test, "k": basis.k, "tune": n_tune
    }
    return Result(
        grid=grid,
        acc=acc,
        ceiling=ceiling,
        linear_oracle=lin,
        temp=temp,
        kappa=kappa,
        crowd=crowd_acc,
        agreement=agreement,
        best_sigma=best_sigma,
        acc0=acc0,
        ece_pooled=ece_pooled,
        ece_member=ece_member,
        refit_ms=1e3 * statistics.median(times),
        t_prior=t_prior,
        sizes=sizes,
        **use_results,
    )


def needed(n: int | None, most: int, unit: str = "") -> str:
    return f">{most}{unit}" if n is None else f"{n}{unit}"


def print_use(r: Result) -> None:
    print(
        f"ordinary use (members who only /imagine; {SAME_STYLE_P:.0%} of prompts name a style; per grid one action: "
        f"a reroll when its best is in the member's worst {REROLL_SHARE:.0%}, else U {P_UPSCALE:.0%} / V)"
    )
    print(f"weights of signals from use, set on {r.sizes['tune']} members of their own ({USE_BEFORE} grids each),")
    print("one signal at a time; held-out log score per pair of use-only fits (higher is better):")
    for signal, row in r.use_table.items():
        cells = "  ".join(f"{v:g}: {sc:.4f}" for v, sc in row.items())
        print(f"  {signal:>7}  {cells}  -> {r.use_weights[signal]:g}")
    engine_w = taste_use_weights()
    same = all(abs(engine_w[k] - v) < 1e-12 for k, v in r.use_weights.items())
    note = "the same" if same else "differs: engine/taste.py holds the full run's choice, from 50 members"
    print(f"  engine/taste.py uses {engine_w} ({note})")
    print("use alone, no votes (grids: accuracy): " + "  ".join(f"{g}: {a:.3f}" for g, a in r.use_only.items()))
    print(f"use alone, calibration at {USE_BEFORE} grids: ECE {r.use_only_ece:.3f} pooled over members")
    print()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (< 30 s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", type=float, default=P_SHARED, help="chance a taste prototype is a community one")
    ap.add_argument(
        "--crowd", type=float, default=TARGET_CROWD, help="the crowd majority's accuracy on members' votes (0: none)"
    )
    ap.add_argument("--explore", type=float, default=0.15, help="choose_pair's random-pair rate")
    ap.add_argument("--cand-prompts", type=int, default=32, help="pool prompts offered to choose_pair per vote")
    ap.add_argument("--no-sweep", action="store_true", help="skip the sensitivity sweep over the crowd's accuracy")
    ap.add_argument("--history", choices=("random", "active", "random+use"), default="random",
                    help="how history members chose their 40 votes: random pairs, or choose_pair's (as in the bot); "
                    "random+use: random votes plus 20 grids of ordinary use each (the bot's prior sees both)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    kw = {"seed": args.seed, "explore": args.explore, "cand_prompts": args.cand_prompts, "history": args.history}
    crowd = args.crowd or None
    r = run(quick=args.quick, p_shared=args.shared, crowd=crowd, **kw)
    z = r.sizes

    print(f"taste bench  seed={args.seed}  {'quick' if args.quick else 'full'}")
    print(
        f"world: d={D}, {N_STYLES} style clusters, rank pool {z['pool']} prompts x {STYLES_PER_PROMPT} styles, "
        f"eval {z['eval']} held-out prompts ({z['eval_pairs']} same-prompt pairs), basis k={z['k']}"
    )
    print(
        f"members: {z['hist']} history (x40 {HISTORY_SHOWN[args.history]}, the only input to the community prior, "
        f"fitted in {r.t_prior:.1f} s) + {z['test']} test learners; community share of taste prototypes "
        f"{args.shared:.2f}"
    )
    print(f"label noise: probit, T={r.temp:.3f}; ceiling (true utility): {r.ceiling:.3f}")
    print(
        f"shared quality axis: kappa={r.kappa:.2f}; the crowd's majority scores {r.crowd:.3f} on members' votes "
        f"(target {crowd or 'none'}), two members agree on {r.agreement:.3f} of pairs"
    )
    if r.linear_oracle is not None:
        print(f"best linear taste on these features (5000 votes): {r.linear_oracle:.3f}")
    print(f"community prior mean alone (0 votes): {r.acc0:.3f}")
    print(f"(a) ridge sigma, oracle-tuned on the test members at {r.grid[-1]} votes: {r.best_sigma}")
    print(
        f"(c) choose_pair over all same-prompt pairs of {args.cand_prompts} random pool prompts "
        f"(the predictions that matter: all of the pool's pairs), explore={args.explore}"
    )
    print()
    print("held-out pairwise accuracy (expected, mean over test members)")
    print(f"{'votes':>5} | {'(a) baseline':>12} | {'(b) prior':>9} | {'(c) prior+active':>16} | {'(u) (c) after':>13}")
    print(f"{'':>5} | {'ridge+random':>12} | {'+random':>9} | {'':>16} | {f'{USE_BEFORE} grids of use':>13}")
    print("-" * 68)
    acc_u = r.acc.get("u", {})
    for n in [0, *r.grid] if acc_u else r.grid:
        row = [r.acc["a"].get(n)] + [r.acc[m].get(n, r.acc0 if n == 0 else None) for m in ("b", "c", "u")]
        print(f"{n:>5} | " + " | ".join(f"{x:>{w}.3f}" if x is not None else " " * w for x, w in zip(row, (12, 9, 16, 13))))
    print()
    if r.use_weights is not None:
        print_use(r)
    print(
        f"(c) calibration at {r.grid[-1]} votes: ECE {r.ece_pooled:.3f} pooled over members, "
        f"{r.ece_member:.3f} mean per member"
    )
    print(f"median refit time per vote at {r.grid[-1]} votes: {r.refit_ms:.3f} ms (warm-started Newton, k={z['k']})")

    first_world = None
    if not args.quick and not args.no_sweep:
        print()
        print("sensitivity: votes needed vs how communal tastes are (50 test learners each)")
        print(
            f"{'crowd':>5} | {'agree':>5} | {'prior@0':>7} | {'(a)@200':>7} | {'best@40':>7} | {'needed':>6} | "
            f"{'with use':>8} | {'use alone':>9}"
        )
        for target in (None, 0.66, 0.74):  # None: the first version's world, no shared axis
            rs = run(quick=False, p_shared=args.shared, crowd=target, n_test=50, linear_oracle=False, **kw)
            if target is None:
                first_world = rs
            best40 = max(rs.acc["b"][40], rs.acc["c"][40])
            print(
                f"{rs.crowd:>5.3f} | {rs.agreement:>5.3f} | {rs.acc0:>7.3f} | {rs.acc['a'][200]:>7.3f} | "
                f"{best40:>7.3f} | {needed(rs.votes_needed(), rs.grid[-1]):>6} | "
                f"{needed(rs.votes_needed_with_use(), rs.grid[-1]):>8} | "
                f"{needed(rs.grids_needed(), max(USE_GRIDS), ' grids'):>9}"
            )

    print(f"elapsed: {time.perf_counter() - t_start:.1f} s")
    if first_world is not None:  # the issue asks for these beside the main world's
        fw = first_world
        print(
            f"first world (no shared quality axis, kappa=0; crowd {fw.crowd:.3f}; 50 test learners): "
            f"votes needed {needed(fw.votes_needed(), fw.grid[-1])}, "
            f"after {USE_BEFORE} grids of use {needed(fw.votes_needed_with_use(), fw.grid[-1])}, "
            f"grids of use alone {needed(fw.grids_needed(), max(USE_GRIDS))}"
        )
    target = f"baseline@{r.grid[-1]} ({r.acc['a'][r.grid[-1]]:.4f})"
    if r.use_weights is not None:
        print(f"grids of ordinary use alone to match {target}: {needed(r.grids_needed(), max(USE_GRIDS))}")
        print(
            f"votes needed after {USE_BEFORE} grids of ordinary use: "
            f"{needed(r.votes_needed_with_use(), r.grid[-1])}"
        )
    print(f"votes needed to match baseline@{r.grid[-1]}: {needed(r.votes_needed(), r.grid[-1])}")


if __name__ == "__main__":
    main()
