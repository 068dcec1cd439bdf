"""Web Rank: from a key press to the next pair on screen, on loopback.

The web server of `open_resources()` (as `python -m bot` starts it) answers a
signed-in client over real HTTP. Each vote is timed three ways, side by side:

  engine:     profiles.answer_pair + next_pair, called in-process (the floor)
  vote POST:  POST /api/rank/vote, which stores the vote and returns the next pair
  key->pair:  the vote POST, then both next images fetched at once (what
              static/rank.js does before it swaps the pair in)

The pool is synthetic (random CLIP-sized embeddings, PNGs at the default
preset's 512 px), so no model is loaded. Votes are paced at a fast human's
4 a second, inside the rate limit. It prints medians and p95 in ms, and ratios
to the engine and to the 100 ms budget.

    .venv/bin/python bench/web_rank_bench.py [--votes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.resources import open_resources  # noqa: E402
from bot.web import auth  # noqa: E402
from engine import profiles, rankpool  # noqa: E402
from engine.db import taste as q  # noqa: E402
from engine.presets import get_preset  # noqa: E402

BUDGET_MS = 100.0
PACE_S = 0.26  # a fast member: about 4 votes a second
PROMPTS, STYLES, SIDE = 40, 4, 512


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pool_png(rng: np.random.Generator) -> bytes:
    """A smooth random picture (compresses like a real one, unlike white noise)."""
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((SIDE, SIDE), Image.BICUBIC).save(out, "PNG")
    return out.getvalue()


async def make_pool(db, data_dir: Path, preset: str) -> None:
    rng = np.random.default_rng(0)
    dim = get_preset(preset).embed_dim
    (data_dir / "pool").mkdir(parents=True, exist_ok=True)
    for p in range(PROMPTS):
        prompt_id = await q.next_prompt_id(db)
        content = rng.normal(size=dim)
        for s in range(STYLES):
            relative = f"pool/{prompt_id:05d}-{s}.png"
            (data_dir / relative).write_bytes(pool_png(rng))
            embedding = content + 0.6 * rng.normal(size=dim)
            await q.insert_pool_image(db, prompt_id, f"prompt {p}", f"style {s}", relative, p, preset, embedding)
    await rankpool.build_basis(db, preset)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def run(votes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=folder, TASTEMAKER_MODEL="tiny",
            TASTEMAKER_WORKERS="0", TASTEMAKER_QUEUE="", TASTEMAKER_AUTO_POOL="0", TASTEMAKER_WEB_PORT=str(free_port()),
        )
        async with open_resources(settings) as resources:
            db, base = resources.db, resources.web.url
            await make_pool(db, Path(folder), "tiny")
            # 1. The floor: the engine alone, for one member.
            rng = np.random.default_rng(1)
            engine_ms = []
            pair = await profiles.next_pair(db, 1, rng)
            for n in range(votes):
                start = time.perf_counter()
                await profiles.answer_pair(db, 1, pair.id, "left" if n % 2 else "right")
                pair = await profiles.next_pair(db, 1, rng)
                engine_ms.append((time.perf_counter() - start) * 1000)
            # 2. Over HTTP, for another member signed in with a session cookie.
            session_id = await auth.create_session(db, 2, "bench")
            csrf = (await db.execute_fetchall("SELECT csrf FROM web_sessions"))[0][0]
            post_ms, key_ms = [], []
            jar = aiohttp.CookieJar(unsafe=True)
            jar.update_cookies({auth.COOKIE: session_id}, response_url=aiohttp.client.URL(base))
            async with aiohttp.ClientSession(cookie_jar=jar) as client:
                async with client.get(f"{base}/rank") as answer:
                    page = await answer.text()
                pair_id = int(page.split('data-pair="', 1)[1].split('"', 1)[0])
                for n in range(votes):
                    await asyncio.sleep(PACE_S)
                    start = time.perf_counter()
                    async with client.post(f"{base}/api/rank/vote", json={"pair_id": pair_id, "choice": "left" if n % 2 else "right"},
                                           headers={"X-CSRF-Token": csrf}) as answer:
                        assert answer.status == 200, await answer.text()
                        data = await answer.json()
                    posted = time.perf_counter()
                    await asyncio.gather(*(_fetch(client, base + data["pair"][side]) for side in ("left", "right")))
                    done = time.perf_counter()
                    post_ms.append((posted - start) * 1000)
                    key_ms.append((done - start) * 1000)
                    pair_id = data["pair"]["id"]
    e, p, k = summary(engine_ms), summary(post_ms), summary(key_ms)
    print(f"web rank, {votes} votes each (unlock at {settings.unlock_votes}), {SIDE}px PNG pool of {PROMPTS * STYLES}, loopback")
    print(f"{'':12}{'median ms':>11}{'p95 ms':>9}{'x engine':>10}{'of 100 ms':>11}")
    for name, (median, p95) in (("engine", e), ("vote POST", p), ("key->pair", k)):
        print(f"{name:12}{median:11.1f}{p95:9.1f}{median / e[0]:10.1f}{median / BUDGET_MS:11.2f}")
    verdict = "within" if k[1] < BUDGET_MS else "OVER"
    print(f"key press -> next pair: p95 {k[1]:.1f} ms, {verdict} the {BUDGET_MS:.0f} ms budget")


async def _fetch(client: aiohttp.ClientSession, url: str) -> None:
    async with client.get(url) as answer:
        assert answer.status == 200
        await answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=60)
    asyncio.run(run(parser.parse_args().votes))


if __name__ == "__main__":
    main()
