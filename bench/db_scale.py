"""A year of a big community: the database at 10 000 members, 500 000 images with their
1024-d embeddings, 3 million votes, likes and signals from use, 50 000 codes, and how
fast every member-facing read, a vote's refit and the community prior's refit are there.

1. Fill (a bulk path: executemany into the project's own tables, at the schema before
   the migration that prepares the database for this size, *_community_scale.sql): a rank pool of
   228 prompts x 6 styles and its basis (engine.rankpool.build_basis), members in ten
   servers with lognormal activity, grids, /rank votes chosen by each member's taste,
   likes, U/V/reroll signals, profile versions (some 25 observations behind, so /info
   and /codes make new codes as they would), style words.
2. Migrate: that migration (counts kept by triggers, indexes) timed on that database; then
   what the upkeep cog does once after it: the images' taste index and a stored fit of
   every big profile (engine.profiles.store_fits).
3. The community prior's refit, as the bot runs it: in the background, while a ticker
   on the bot's loop measures its worst stall and /rank pairs are served.
4. Each read, p50 and p95 in ms over members drawn by activity: /info's reads
   (bot.cogs.info.info_embed), the next /rank pair, a vote and its refit, /codes' reads,
   /explore (newest, most liked, For you: bot/web/gallery.py, 4 + 1 a page), the web's
   Explore page and image page over HTTP (the server `python -m bot` runs), a new code.

    .venv/bin/python bench/db_scale.py               # full size (takes a while on 2 cores)
    .venv/bin/python bench/db_scale.py --scale 0.002 # small, as the tests run it
    .venv/bin/python bench/db_scale.py --data-dir /big/disk/dbscale --keep  # keep it; --keep again reuses it
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import aiohttp  # noqa: E402
import aiosqlite  # noqa: E402
import numpy as np  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.resources import open_resources  # noqa: E402
from bot.web import auth, gallery  # noqa: E402
from engine import db as database  # noqa: E402
from engine import profiles, rankpool  # noqa: E402
from engine.db import taste as q  # noqa: E402

FULL = {"members": 10_000, "images": 500_000, "votes": 2_000_000, "likes": 700_000, "signals": 300_000, "codes": 50_000}
PRESET, DIM = "sdxl-lightning", 1024
GUILDS = 10
GOAL_READ_MS, GOAL_REFIT_MS = 20.0, 10.0
UNLOCK = 20
YEAR = 365 * 86400.0
SNOWFLAKE = 1_200_000_000_000_000_000  # ids shaped like Discord's
STYLE_DIMS = 24
WORDS = 120


def scale_counts(scale: float) -> dict[str, int]:
    return {name: max(4 if name == "members" else 40, round(n * scale)) for name, n in FULL.items()}


# ---------------------------------------------------------------------------
# 1. fill
# ---------------------------------------------------------------------------


class World:
    """The synthetic community: who is active, where, and what they like."""

    def __init__(self, counts: dict[str, int], prompts: int, styles: int, seed: int = 7):
        self.rng = rng = np.random.default_rng(seed)
        self.counts, self.prompts, self.styles = counts, prompts, styles
        n = counts["members"]
        self.members = SNOWFLAKE + np.arange(n, dtype=np.int64)
        self.activity = rng.lognormal(0.0, 1.0, n)
        self.activity /= self.activity.sum()
        self.guilds = SNOWFLAKE // 2 + np.arange(GUILDS, dtype=np.int64)
        share = np.r_[0.7, 0.3 * 0.5 ** np.arange(1, GUILDS)]  # one big server, nine smaller ones
        self.home = rng.choice(GUILDS, n, p=share / share.sum())
        self.second = np.where(rng.random(n) < 0.2, rng.integers(0, GUILDS, n), -1)
        self.taste = rng.normal(size=(n, STYLE_DIMS))
        self.style_axes = rng.normal(size=(DIM, STYLE_DIMS)) / np.sqrt(DIM)
        self.center = rng.normal(size=DIM) * 0.5

    def embeddings(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal((len(content), DIM), dtype=np.float32) * 0.02
        return (self.center + content + style @ self.style_axes.T + noise).astype(np.float32)


def _blobs(array: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in array]


def fill_pool(conn: sqlite3.Connection, world: World) -> tuple[np.ndarray, np.ndarray]:
    """The rank pool: each prompt in several styles (same content, so a pair differs in style)."""
    rng, now = world.rng, time.time() - YEAR
    contents = rng.normal(size=(world.prompts, DIM)) * 0.05
    styles = rng.normal(size=(world.prompts * world.styles, STYLE_DIMS))
    content = np.repeat(contents, world.styles, axis=0)
    emb = world.embeddings(content, styles * 0.05)
    rows = [
        (i + 1, i // world.styles + 1, f"prompt {i // world.styles}", f"style {i % world.styles}",
         f"pool/{i // world.styles + 1:05d}-{i % world.styles}.png", i, PRESET, blob, now)
        for i, blob in enumerate(_blobs(emb))
    ]
    conn.executemany("INSERT INTO pool_images (id, prompt_id, prompt, style, path, seed, preset, embedding, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    return styles, np.arange(1, len(rows) + 1)


def fill_rest(conn: sqlite3.Connection, world: World, pool_styles: np.ndarray) -> dict[str, int]:
    rng, counts = world.rng, world.counts
    n = counts["members"]
    start = time.time() - YEAR
    members = world.members
    # members, their servers, their profiles (main; one in ten has a second, ranked on purpose)
    conn.executemany("INSERT INTO users (id, created_at) VALUES (?, ?)", [(int(m), start) for m in members])
    names = [(int(m), int(world.guilds[g]), f"member{i}", f"Server {g}", "command", start)
             for i, (m, g) in enumerate(zip(members, world.home, strict=True))]
    names += [(int(members[i]), int(world.guilds[g]), f"member{i}", f"Server {g}", "command", start)
              for i, g in enumerate(world.second) if g >= 0 and g != world.home[i]]
    conn.executemany("INSERT INTO web_members (user_id, guild_id, user_name, guild_name, source, seen_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", names)
    conn.executemany("INSERT INTO profiles (id, user_id, name, kind, public, created_at) VALUES (?, ?, 'main', 'votes', 1, ?)",
                     [(i + 1, int(m), start) for i, m in enumerate(members)])
    extra = np.flatnonzero(rng.random(n) < 0.1)
    conn.executemany("INSERT INTO profiles (id, user_id, name, kind, public, created_at) VALUES (?, ?, 'portraits', 'votes', 1, ?)",
                     [(n + 1 + j, int(members[i]), start) for j, i in enumerate(extra)])
    extra_profile = {int(i): n + 1 + j for j, i in enumerate(extra)}
    conn.executemany("INSERT INTO user_settings (user_id, learn_from_use) VALUES (?, 0)",
                     [(int(m),) for m in members[rng.random(n) < 0.05]])
    conn.commit()

    # grids: jobs of 4 images over the year, by active members, in their servers
    n_jobs = max(1, counts["images"] // 4)
    owner = rng.choice(n, n_jobs, p=world.activity)
    guild_index = np.where((world.second[owner] >= 0) & (rng.random(n_jobs) < 0.3), world.second[owner], world.home[owner])
    created = np.sort(start + rng.random(n_jobs) * YEAR)
    finished = created + rng.uniform(6, 20, n_jobs)
    job_ids = [f"{j:08x}{rng.integers(2**63):016x}{j:08x}" for j in range(n_jobs)]
    prompt_of = [f"a {a} {b} at {c}" for a, b, c in zip(
        rng.choice(["quiet", "glass", "paper", "neon", "misty", "golden"], n_jobs),
        rng.choice(["harbour", "forest", "city", "lantern", "fox", "tower", "garden"], n_jobs),
        rng.choice(["dawn", "noon", "dusk", "night"], n_jobs), strict=True)]
    for lo in range(0, n_jobs, 20_000):
        hi = min(n_jobs, lo + 20_000)
        conn.executemany(
            "INSERT INTO jobs (id, kind, user_id, guild_id, channel_id, message_id, prompt, request, state, created_at,"
            " started_at, finished_at, delivered_at, gpu_seconds, images) VALUES (?, 'imagine', ?, ?, ?, ?, ?, ?, 'done',"
            " ?, ?, ?, ?, 4.0, 4)",
            [(job_ids[j], int(members[owner[j]]), int(world.guilds[guild_index[j]]), int(world.guilds[guild_index[j]]) + 1,
              SNOWFLAKE + j, prompt_of[j],
              json.dumps({"text": prompt_of[j], "seed": j, "stylize": 100, "codes": [], "preset": PRESET}),
              float(created[j]), float(created[j]) + 1, float(finished[j]), float(finished[j]))
             for j in range(lo, hi)],
        )
        conn.commit()
    image_owner = np.repeat(owner, 4)
    n_images = 4 * n_jobs
    for lo in range(0, n_images, 8192):
        hi = min(n_images, lo + 8192)
        jobs = np.arange(lo, hi) // 4
        content = rng.standard_normal((hi - lo, DIM), dtype=np.float32) * 0.05
        style = (world.taste[image_owner[lo:hi]] * 0.5 + rng.normal(size=(hi - lo, STYLE_DIMS))) * 0.05
        blobs = _blobs(world.embeddings(content, style))
        nsfw = np.where(rng.random(hi - lo) < 0.003, 0.9, rng.beta(1, 60, hi - lo))
        conn.executemany(
            "INSERT INTO images (id, job_id, idx, user_id, path, width, height, seed, embedding, created_at, nsfw)"
            " VALUES (?, ?, ?, ?, ?, 1024, 1024, ?, ?, ?, ?)",
            [(i + 1, job_ids[jobs[i - lo]], i % 4 + 1, int(members[image_owner[i]]), f"images/{job_ids[jobs[i - lo]]}/{i % 4 + 1}.png",
              int(jobs[i - lo]), blobs[i - lo], float(finished[jobs[i - lo]]), float(nsfw[i - lo]))
             for i in range(lo, hi)],
        )
        conn.commit()
    conn.executemany("UPDATE users SET images_made = ?, gpu_seconds = ? WHERE id = ?",
                     [(4 * int(c), 4.0 * int(c), int(members[i])) for i, c in enumerate(np.bincount(owner, minlength=n)) if c])
    conn.commit()

    # /rank votes: each member's pairs (same prompt, two styles), answered by their taste
    pairs = np.array([(p * world.styles + a, p * world.styles + b) for p in range(world.prompts)
                      for a in range(world.styles) for b in range(a + 1, world.styles)])
    per_member = np.minimum(len(pairs) - 50, np.round(world.activity * counts["votes"]).astype(int))
    votes = np.zeros(n, dtype=int)
    rows = []
    vote_time = start
    for i in range(n):
        k = int(per_member[i])
        if k <= 0:
            continue
        chosen = pairs[rng.choice(len(pairs), k, replace=False)]
        margin = (pool_styles[chosen[:, 0]] - pool_styles[chosen[:, 1]]) @ world.taste[i]
        left_wins = rng.random(k) < 1 / (1 + np.exp(-margin))
        profile = np.where((i in extra_profile) & (rng.random(k) < 0.1), extra_profile.get(i, 0), i + 1)
        votes[i] = int(np.sum(profile == i + 1))
        for (a, b), win, prof in zip(chosen, left_wins, profile, strict=True):
            vote_time += 1.0
            rows.append((int(members[i]), int(a) + 1, int(b) + 1, vote_time, "left" if win else "right", vote_time + 2, int(prof)))
        if len(rows) > 200_000:
            _insert_votes(conn, rows)
            rows = []
    _insert_votes(conn, rows)

    # likes of others' images in the member's servers (the grid image itself)
    likers = rng.choice(n, counts["likes"] * 2, p=world.activity)
    picked = rng.integers(0, n_images, counts["likes"] * 2)
    keep = image_owner[picked] != likers
    keys = rng.permutation(np.unique((likers[keep].astype(np.int64) << 32) | picked[keep]))[: counts["likes"]]
    like_users, like_images = (keys >> 32).astype(int), (keys & 0xFFFFFFFF).astype(int)
    likes = np.bincount(like_users, minlength=n)
    for lo in range(0, len(keys), 200_000):
        conn.executemany(
            "INSERT INTO likes (user_id, image_id, grid_image_id, created_at) VALUES (?, ?, ?, ?)",
            [(int(members[u]), int(i) + 1, int(i) + 1, start + YEAR * (lo + j) / len(keys))
             for j, (u, i) in enumerate(zip(like_users[lo : lo + 200_000], like_images[lo : lo + 200_000], strict=True))],
        )
        conn.commit()

    # signals from use on the member's own grids: U, V and rerolls (drawing another of their grids)
    jobs_of = np.split(np.argsort(owner, kind="stable"), np.cumsum(np.bincount(owner, minlength=n))[:-1])
    signal_rows, seen = [], set()
    signals = np.zeros(n, dtype=int)
    who = rng.choice(n, counts["signals"] * 2, p=world.activity)
    learning = {int(r[0]) for r in conn.execute("SELECT user_id FROM user_settings WHERE learn_from_use = 0")}
    for u in who:
        own = jobs_of[u]
        if len(own) < 2 or len(signal_rows) >= counts["signals"]:
            continue
        grid = int(own[rng.integers(len(own))])
        kind = rng.choice(["upscale", "vary", "reroll"], p=[0.5, 0.3, 0.2])
        image = None if kind == "reroll" else 4 * grid + int(rng.integers(4)) + 1
        key = (u, kind, grid, image or 0)
        if key in seen:
            continue
        seen.add(key)
        nxt = job_ids[int(own[rng.integers(len(own))])] if kind == "reroll" else None
        signal_rows.append((int(members[u]), str(kind), job_ids[grid], image, nxt, float(finished[grid]) + 30))
        signals[u] += int(members[u]) not in learning
    conn.executemany("INSERT INTO use_signals (user_id, kind, grid_job_id, image_id, next_job_id, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", signal_rows)
    conn.commit()

    # codes: versions of main profiles; the latest of about a third is 25+ observations behind
    observed = votes + likes + signals
    unlocked = np.flatnonzero(votes + 0.25 * likes >= UNLOCK)
    weights = world.activity[unlocked] / world.activity[unlocked].sum()
    versions = np.maximum(1, np.round(weights * counts["codes"]).astype(int)) if len(unlocked) else np.zeros(0, int)
    code_rows, used, behind = [], set(), 0
    alphabet = np.array(list(profiles.CODE_ALPHABET))
    for u, nv in zip(unlocked, versions, strict=True):
        late = rng.random() < 0.35 and observed[u] > 60
        behind += late
        for v in range(1, nv + 1):
            code = "".join(rng.choice(alphabet, 7))
            while code in used:
                code = "".join(rng.choice(alphabet, 7))
            used.add(code)
            share = v / nv
            lag = 30 if late and v == nv else 0
            vv = max(0, int(votes[u] * share) - lag) if v < nv or late else int(votes[u])
            ll = int(likes[u] * share) if v < nv else int(likes[u])
            ss = int(signals[u] * share) if v < nv else int(signals[u])
            w = rng.normal(size=64) * 0.3
            code_rows.append((code, int(members[u]), "votes", v, 1, w.tobytes(), vv, ll, ss, 0.5, 1,
                              start + YEAR * share, int(u) + 1))
    conn.executemany(
        "INSERT INTO profile_versions (code, user_id, kind, version, basis_version, w, votes, likes, signals, confidence,"
        " public, created_at, profile_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", code_rows)
    conn.executemany("INSERT INTO style_words (word, preset, embedding) VALUES (?, ?, ?)",
                     [(f"style word {i}", PRESET, b) for i, b in enumerate(_blobs(world.embeddings(
                         rng.normal(size=(WORDS, DIM)) * 0.05, rng.normal(size=(WORDS, STYLE_DIMS)) * 0.05)))])
    conn.commit()
    return {"members": n, "images": n_images, "votes": int(per_member[per_member > 0].sum()), "likes": len(keys),
            "signals": len(signal_rows), "codes": len(code_rows), "codes behind": int(behind), "jobs": n_jobs}


def _insert_votes(conn: sqlite3.Connection, rows: list) -> None:
    conn.executemany("INSERT INTO rank_pairs (user_id, left_id, right_id, shown_at, choice, answered_at, profile_id)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()


def scale_migration() -> int:
    return next(n for n, path in database.migration_files() if path.stem.endswith("_community_scale"))


async def fill(data_dir: Path, world: World) -> tuple[dict[str, int], float]:
    path = data_dir / "tastemaker.db"
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = aiosqlite.Row
    try:
        await db.execute_fetchall("PRAGMA journal_mode=WAL")
        await database.migrate(db, target=scale_migration() - 1)
        started = time.perf_counter()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA synchronous=OFF")
        pool_styles, _ = fill_pool(conn, world)
        await rankpool.build_basis(db, PRESET)  # the project's own basis from the pool
        counts = fill_rest(conn, world, pool_styles)
        conn.close()
        await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await db.close()
    return counts, time.perf_counter() - started


async def migrate_timed(path: Path) -> float:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            await db.execute_fetchall(f"PRAGMA {pragma}")
        started = time.perf_counter()
        await database.migrate(db)
        took = time.perf_counter() - started
        await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await db.close()
    return took


# ---------------------------------------------------------------------------
# 2. timings
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


class Timer:
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.requests = 0  # started so far: the loop watcher leaves out the time they take

    async def time(self, name: str, awaitable):
        self.requests += 1
        start = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.samples.setdefault(name, []).append((time.perf_counter() - start) * 1000)
            self.requests += 1


async def watch_loop(stop: asyncio.Event, timer: Timer) -> tuple[float, int]:
    """(worst delay of a 1 ms sleep on the loop, sleeps delayed over 10 ms) while `stop` is unset,
    over the sleeps during which no timed request ran: what background work costs the loop."""
    worst, late = 0.0, 0
    while not stop.is_set():
        before, start = timer.requests, time.perf_counter()
        await asyncio.sleep(0.001)
        if timer.requests == before and before % 2 == 0:
            stall = (time.perf_counter() - start) * 1000 - 1.0
            worst, late = max(worst, stall), late + (stall > 10)
    return worst, late


async def measure(data_dir: Path, world: World, samples: int, session: int) -> tuple[Timer, dict[str, float]]:
    from bot.cogs.codes import Codes
    from bot.cogs.info import info_embed

    settings = Settings(
        _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=str(data_dir), TASTEMAKER_MODEL=PRESET,
        TASTEMAKER_WORKERS="0", TASTEMAKER_QUEUE="", TASTEMAKER_AUTO_POOL="0", TASTEMAKER_WEB_PORT=str(free_port()),
        TASTEMAKER_UNLOCK_VOTES=str(UNLOCK),
    )
    timer, facts = Timer(), {}
    rng = np.random.default_rng(11)
    async with open_resources(settings) as resources:
        db, base = resources.db, resources.web.url
        bot = SimpleNamespace(db=db, settings=settings)
        codes = Codes(bot)
        basis, _ = await profiles.current_basis(db)
        members_with_data, observations = await q.community_observations(db)
        # 0. What bot/cogs/upkeep.py does in the background once per basis (so once after the upgrade):
        #    the taste index of every image, then a stored fit of every big profile, with the loop watched.
        started = time.perf_counter()
        facts["indexed"] = await asyncio.to_thread(profiles.index_images, str(data_dir / "tastemaker.db"), basis)
        facts["index_s"] = time.perf_counter() - started
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_loop(stop, timer))
        started = time.perf_counter()
        facts["fitted"] = await profiles.store_fits(db, basis)
        facts["fit_s"] = time.perf_counter() - started
        stop.set()
        facts["stall_fits"] = await watcher
        # 1. The community prior's refit, in the background as the bot runs it, with /rank pairs served
        #    meanwhile; then as long again without it (side by side: this machine's own hiccups). Each pair
        #    is a member's first since the bot started: nothing of theirs in memory, a big profile's fit as
        #    step 0 stored it (under the cold-start prior: after the refit each one's is refined in the background).
        for phase in ("refit", "quiet"):
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_loop(stop, timer))
            started = time.perf_counter()
            refit = profiles.refit_prior_soon(db, basis, members_with_data, observations) if phase == "refit" else None
            while (not refit.done()) if refit else time.perf_counter() - started < min(30.0, facts["refit_s"]):
                member = int(world.members[rng.choice(len(world.members), p=world.activity)])
                await timer.time(f"first /rank pair, {'during the refit' if refit else 'after it'}",
                                 profiles.next_pair(db, member, rng))
                await asyncio.sleep(0.05)
            if refit:
                await refit
                facts["refit_s"] = time.perf_counter() - started
            stop.set()
            facts[f"stall_{phase}"] = await watcher
        facts["refit_members"] = min(members_with_data, profiles.PRIOR_MAX_MEMBERS)
        # 2. Sessions of members drawn by activity (the busy ones use the bot most): /info, `session`
        #    /rank votes, /codes, /explore in three orders, the web's Explore and an image page.
        drawn = [int(i) for i in rng.choice(len(world.members), samples, p=world.activity)]
        visible = {}  # each server's images an image page may show
        for g in {int(world.guilds[world.home[i]]) for i in drawn}:
            rows = await db.execute_fetchall(
                "SELECT i.id FROM jobs j JOIN images i ON i.job_id = j.id WHERE j.guild_id = ? AND j.state = 'done'"
                " AND j.deleted_at IS NULL AND i.nsfw < 0.6", (g,))
            visible[g] = [r[0] for r in rows]
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            for n, i in enumerate(drawn):
                member, guild = int(world.members[i]), int(world.guilds[world.home[i]])
                await timer.time("/info's reads", info_embed(bot, SimpleNamespace(id=member, display_name="m"), guild))
                for vote in range(session):
                    pair = await timer.time("next /rank pair", profiles.next_pair(db, member, rng))
                    await timer.time("a vote", profiles.answer_pair(db, member, pair.id, "left" if vote % 2 else "right"))
                    await timer.time("the vote's refit", profiles.member_posterior(db, member))
                await timer.time("/codes' reads", _codes_reads(codes, db, member))
                for order, name in (("new", "newest"), ("top", "most liked"), ("foryou", "For you")):
                    if order == "foryou" and f"foryou_cold_{guild}" not in facts:  # a server's first builds its candidates
                        facts[f"foryou_cold_{guild}"] = await _ms(gallery.page(db, member, [guild], order, 0, 5))
                    await timer.time(f"/explore {name}", gallery.page(db, member, [guild], order, 0, 5))
                session_id = await auth.create_session(db, member, f"member{i}")
                jar.update_cookies({auth.COOKIE: session_id}, response_url=aiohttp.client.URL(base))
                await timer.time("web Explore page", _get(client, f"{base}/explore"))
                if visible[guild]:  # (a small run's server may have none)
                    image_id = visible[guild][int(rng.integers(len(visible[guild])))]
                    await timer.time("web image page", _get(client, f"{base}/image/{image_id}"))
        # 3. New codes: members whose latest code is 25+ observations behind.
        behind = await db.execute_fetchall(
            "SELECT v.user_id FROM profile_versions v JOIN taste_counts c ON c.user_id = v.user_id"
            " WHERE v.version = (SELECT MAX(version) FROM profile_versions w WHERE w.profile_id = v.profile_id)"
            " AND c.votes + c.likes + c.signals - v.votes - v.likes - v.signals >= ? LIMIT ?",
            (profiles.CODE_EVERY_N, max(5, samples // 4)),
        )
        for (member,) in behind:
            await timer.time("a new code", profiles.current_code(db, member, UNLOCK))
    colds = [v for k, v in facts.items() if k.startswith("foryou_cold_")]
    facts["foryou_cold_ms"] = max(colds) if colds else 0.0
    return timer, facts


async def _codes_reads(codes, db, member: int) -> None:
    await codes.current(member)
    await profiles.list_codes(db, member)
    await profiles.privacy(db, member)


async def _ms(awaitable) -> float:
    start = time.perf_counter()
    await awaitable
    return (time.perf_counter() - start) * 1000


async def _get(client: aiohttp.ClientSession, url: str) -> None:
    async with client.get(url) as answer:
        assert answer.status == 200, (url, answer.status)
        await answer.read()


GOALS = {
    "/info's reads": GOAL_READ_MS, "next /rank pair": GOAL_READ_MS, "a vote": GOAL_READ_MS,
    "the vote's refit": GOAL_REFIT_MS, "/codes' reads": GOAL_READ_MS, "/explore newest": GOAL_READ_MS,
    "/explore most liked": GOAL_READ_MS, "/explore For you": GOAL_READ_MS, "web Explore page": GOAL_READ_MS,
    "web image page": GOAL_READ_MS, "a new code": GOAL_READ_MS, "first /rank pair, during the refit": GOAL_READ_MS,
    "first /rank pair, after it": GOAL_READ_MS,
}


def report(counts: dict[str, int], fill_s: float | None, migrate_s: float | None, size_gb: float, timer: Timer,
           facts: dict[str, float], total_s: float) -> bool:
    met = True
    print(f"db_scale: {counts['members']} members, {counts['images']} images ({DIM}-d embeddings), "
          f"{counts['votes']} votes, {counts['likes']} likes, {counts['signals']} signals "
          f"({counts['votes'] + counts['likes'] + counts['signals']} in all), {counts['codes']} codes; {size_gb:.2f} GB")
    if fill_s is not None:
        print(f"filled in {fill_s:.0f} s (bulk executemany); migration {scale_migration():04d} on it: {migrate_s:.1f} s "
              f"(goal < 60 s: {'met' if migrate_s < 60 else 'MISSED'})")
    print(f"{'':36}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'goal ms':>9}")
    for name, samples in timer.samples.items():
        p50, p95 = percentiles(samples)
        goal = GOALS[name]
        ok = p95 < goal
        met &= ok
        print(f"{name:36}{len(samples):5d}{p50:9.1f}{p95:9.1f}{'< %g' % goal:>9} {'met' if ok else 'MISSED'}")
    (worst, late), (quiet, quiet_late) = facts["stall_refit"], facts["stall_quiet"]
    print(f"community prior refit: {facts['refit_s']:.1f} s in the background ({facts['refit_members']:.0f} members "
          f"sampled); the loop, between requests: worst stall {worst:.1f} ms and {late} over 10 ms meanwhile, "
          f"{quiet:.1f} ms and {quiet_late} without it")
    print(f"taste index of the images (once per basis, in the background): {facts['indexed']:.0f} images in "
          f"{facts['index_s']:.1f} s")
    print(f"stored fits of big profiles (once per basis, in the background): {facts['fitted']:.0f} profiles in "
          f"{facts['fit_s']:.1f} s; the loop meanwhile: worst stall {facts['stall_fits'][0]:.1f} ms, "
          f"{facts['stall_fits'][1]} over 10 ms")
    print(f"For you's first view of a server since start (builds its candidates): up to {facts['foryou_cold_ms']:.0f} ms")
    print(f"{'every goal met' if met else 'GOALS MISSED'}; ran in {total_s:.0f} s")
    return met


async def run(args: argparse.Namespace) -> bool:
    started = time.perf_counter()
    counts = scale_counts(args.scale)
    prompts, styles = (228, 6) if args.scale >= 0.05 else (24, 4)  # a pool of 96 or more: k = 64
    world = World(counts, prompts, styles)
    temp = None
    data_dir = Path(args.data_dir) if args.data_dir else Path(temp := tempfile.mkdtemp(prefix="db_scale-"))
    path = data_dir / "tastemaker.db"
    try:
        fill_s = migrate_s = None
        if args.keep and path.exists():
            print(f"reusing {path}")
            conn = sqlite3.connect(path)
            counts = {"members": conn.execute("SELECT COUNT(*) FROM users").fetchone()[0],
                      "images": conn.execute("SELECT MAX(id) FROM images").fetchone()[0],
                      "votes": conn.execute("SELECT SUM(votes) FROM taste_counts").fetchone()[0],
                      "likes": conn.execute("SELECT COUNT(*) FROM likes").fetchone()[0],
                      "signals": conn.execute("SELECT COUNT(*) FROM use_signals").fetchone()[0],
                      "codes": conn.execute("SELECT COUNT(*) FROM profile_versions").fetchone()[0]}
            conn.close()
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            if path.exists():
                raise SystemExit(f"{path} exists: pass --keep to reuse it, or another --data-dir")
            counts, fill_s = await fill(data_dir, world)
            print(f"filled: {counts} in {fill_s:.0f} s", flush=True)
            migrate_s = await migrate_timed(path)
        size_gb = sum(f.stat().st_size for f in data_dir.glob("tastemaker.db*")) / 1e9
        timer, facts = await measure(data_dir, world, args.samples or max(10, min(200, counts["members"])), args.session)
        return report(counts, fill_s, migrate_s, size_gb, timer, facts, time.perf_counter() - started)
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of the full size (0.002: the tests' run)")
    parser.add_argument("--samples", type=int, default=0, help="members timed (default: 200, fewer when smaller)")
    parser.add_argument("--session", type=int, default=5, help="/rank votes per member drawn")
    parser.add_argument("--data-dir", default="", help="where to build it (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the database; reuse it if it is there")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
