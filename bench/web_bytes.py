"""What the web sends a browser at the default preset's 1024 px: bytes per Rank vote and
per Explore page, thumbnails (bot/web/thumbnails.py) against the PNG originals, side by side.

The web server of `open_resources()` (as `python -m bot` starts it) answers a signed-in
client over real HTTP, and the client fetches what the pages name, as a browser does:

  Rank, per vote:  the vote's answer and the pair it brings, which the page preloads
                   (before: the two PNGs of the next pair)
  Explore page:    the page and its 24 tiles: `src` (a screen at 1x: 384 px) or the
                   srcset's 768 px (a phone or a sharp screen); before: 24 PNGs
  first / cached:  a thumbnail's first request (it is encoded then) and the next ones

No model runs: the pictures are synthetic scenes (a 1/f background, soft-edged textured
shapes, grain) whose PNGs are about 2 MB at 1024 px, what a real SDXL result weighs;
their WebPs are what a detailed picture costs (smooth ones cost less).

    .venv/bin/python bench/web_bytes.py [--votes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
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
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.resources import open_resources  # noqa: E402
from bot.web import auth  # noqa: E402
from engine import rankpool  # noqa: E402
from engine.db import jobs as db_jobs  # noqa: E402
from engine.db import members  # noqa: E402
from engine.db import taste as q  # noqa: E402
from engine.db import web as store  # noqa: E402
from engine.jobs import JobState  # noqa: E402
from engine.presets import get_preset  # noqa: E402

SIDE = 1024
SCENES = 8  # distinct pictures, reused (each takes half a second to draw)
PROMPTS, STYLES = 12, 4
JOBS = 13  # 52 images: a full Explore page of 24 and more
GOALS = {"rank": (250 * 1024, "< 250 KB"), "explore": (3 * 1024 * 1024, "< 3 MB")}
GUILD, MEMBER = 1001, 2002


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _field(rng: np.random.Generator, beta: float) -> np.ndarray:
    fy, fx = np.fft.fftfreq(SIDE)[:, None], np.fft.rfftfreq(SIDE)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    x = np.fft.irfft2(f**-beta * np.exp(2j * np.pi * rng.random(f.shape)), s=(SIDE, SIDE))
    return (x - x.mean()) / x.std()


def scene(seed: int) -> bytes:
    """A 1024-px PNG of about 2 MB: a 1/f background, seven textured shapes, grain."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(40, 220, (8, 3))
    img = palette[0] + 40 * np.stack([_field(rng, 1.2) for _ in range(3)], -1)
    for k in range(1, 8):
        mask = Image.new("L", (SIDE, SIDE), 0)
        cx, cy, r = *rng.uniform(0, SIDE, 2), rng.uniform(60, 300)
        ImageDraw.Draw(mask).polygon(
            [(cx + r * rng.uniform(0.6, 1.2) * np.cos(a), cy + r * rng.uniform(0.6, 1.2) * np.sin(a))
             for a in np.linspace(0, 2 * np.pi, 9)[:-1]], fill=255)
        m = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(1, 6))), dtype=float)[..., None] / 255
        img = img * (1 - m) + (palette[k] + 25 * _field(rng, 1.1)[..., None] * rng.uniform(0.5, 1.5, 3)) * m
    img += rng.normal(0, 3.0, img.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


async def fill(db, data_dir: Path, pictures: list[bytes]) -> None:
    """A rank pool and a server's gallery of 1024-px pictures, through the bot's own writes."""
    rng = np.random.default_rng(0)
    dim = get_preset("tiny").embed_dim
    (data_dir / "pool").mkdir(parents=True, exist_ok=True)
    n = 0
    for p in range(PROMPTS):
        prompt_id = await q.next_prompt_id(db)
        content = rng.normal(size=dim)
        for s in range(STYLES):
            relative = f"pool/{prompt_id:05d}-{s}.png"
            (data_dir / relative).write_bytes(pictures[n % len(pictures)])
            n += 1
            await q.insert_pool_image(db, prompt_id, f"prompt {p}", f"style {s}", relative, p, "tiny",
                                      content + 0.6 * rng.normal(size=dim))
    await rankpool.build_basis(db, "tiny")
    await members.ensure_user(db, MEMBER + 1)
    for j in range(JOBS):
        job_id = f"{j:032x}"
        await db_jobs.insert_job(db, id=job_id, kind="imagine", user_id=MEMBER + 1, guild_id=GUILD, channel_id=1,
                                 prompt=f"a picture {j}", request={"text": f"a picture {j}"}, images=4)
        for idx in range(1, 5):
            relative = f"images/{job_id}/{idx}.png"
            (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (data_dir / relative).write_bytes(pictures[n % len(pictures)])
            n += 1
            await db_jobs.add_image(db, job_id=job_id, idx=idx, user_id=MEMBER + 1, path=relative, width=SIDE,
                                    height=SIDE, seed=j, embedding=rng.normal(size=dim))
        await db_jobs.update_job(db, job_id, state=JobState.DONE, finished_at=time.time() + j)
    await store.remember_member(db, MEMBER, GUILD, "bench", "Bench server")


async def fetch(client: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    start = time.perf_counter()
    async with client.get(url) as answer:
        assert answer.status == 200, (url, answer.status)
        return len(await answer.read()), (time.perf_counter() - start) * 1000


async def run(votes: int) -> None:
    started = time.perf_counter()
    pictures = [scene(seed) for seed in range(SCENES)]
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=folder, TASTEMAKER_MODEL="tiny",
            TASTEMAKER_WORKERS="0", TASTEMAKER_QUEUE="", TASTEMAKER_AUTO_POOL="0", TASTEMAKER_WEB_PORT=str(free_port()),
        )
        async with open_resources(settings) as resources:
            db, base = resources.db, resources.web.url
            await fill(db, Path(folder), pictures)
            session_id = await auth.create_session(db, MEMBER, "bench")
            csrf = (await db.execute_fetchall("SELECT csrf FROM web_sessions"))[0][0]
            jar = aiohttp.CookieJar(unsafe=True)
            jar.update_cookies({auth.COOKIE: session_id}, response_url=aiohttp.client.URL(base))
            async with aiohttp.ClientSession(cookie_jar=jar) as client:
                rank, first_ms, cached_ms = await _rank(client, base, csrf, votes)
                explore = await _explore(client, base)
                for url in explore.pop("urls")[:8]:  # already made: the cached path
                    cached_ms.append((await fetch(client, base + url))[1])
    png = statistics.mean(len(p) for p in pictures)
    kb = 1024
    print(f"web bytes at {SIDE} px: synthetic scenes whose PNGs average {png / kb / kb:.2f} MB; WebP q75; loopback")
    print(f"{'':26}{'PNG originals':>15}{'thumbnails':>13}{'ratio':>8}{'goal':>11}")
    rows = [
        ("Rank, per vote", rank["before"], rank["after"], GOALS["rank"]),
        ("Explore page of 24, 1x", explore["before"], explore["1x"], GOALS["explore"]),
        ("Explore page of 24, 2x", explore["before"], explore["2x"], GOALS["explore"]),
    ]
    for name, before, after, (goal, shown) in rows:
        verdict = "met" if after < goal else "MISSED"
        print(f"{name:26}{before / kb:13.0f}KB{after / kb:11.0f}KB{after / before:8.3f}{shown:>11} {verdict}")
    print(f"{'thumbnail request':26}first (encodes) p50 {statistics.median(first_ms):.1f} ms · "
          f"cached p50 {statistics.median(cached_ms):.1f} ms · {statistics.median(first_ms) / statistics.median(cached_ms):.0f}x")
    print(f"({votes} votes; the page's 24 tiles; ran in {time.perf_counter() - started:.0f} s)")


async def _rank(client: aiohttp.ClientSession, base: str, csrf: str, votes: int) -> tuple[dict, list[float], list[float]]:
    """Bytes per vote: the vote's JSON and the pair it brings (preloaded), against that pair's PNGs."""
    async with client.get(f"{base}/rank") as answer:
        page = await answer.text()
    pair_id = int(re.search(r'data-pair="(\d+)"', page).group(1))
    upcoming = json.loads(re.search(r'data-upcoming="([^"]*)"', page).group(1).replace("&#34;", '"'))
    first_ms, cached_ms, after, before = [], [], [], []
    for side in ("left", "right"):
        first_ms.append((await fetch(client, base + upcoming[side]))[1])
    for n in range(votes):
        async with client.post(f"{base}/api/rank/vote", headers={"X-CSRF-Token": csrf},
                               json={"pair_id": pair_id, "choice": "left" if n % 2 else "right", "upcoming": upcoming["id"]}) as answer:
            body = await answer.read()
        data = json.loads(body)
        pair_id, upcoming = upcoming["id"], data["pair"]
        sent = len(body)
        for side in ("left", "right"):
            size, ms = await fetch(client, base + upcoming[side])
            sent += size
            first_ms.append(ms)
            before.append((await fetch(client, base + re.sub(r"/\d+/[0-9a-f]{10}\.webp$", "", upcoming[side])))[0])
        after.append(sent)
        await asyncio.sleep(0.26)  # a fast member's pace, inside the rate limit
    return {"after": statistics.mean(after), "before": 2 * statistics.mean(before)}, first_ms, cached_ms


async def _explore(client: aiohttp.ClientSession, base: str) -> dict:
    async with client.get(f"{base}/explore") as answer:
        page = await answer.text()
    small = re.findall(r'<img loading="lazy" decoding="async" src="([^"]+)"', page)
    large = re.findall(r'srcset="[^"]+ 384w, ([^ ]+) 768w"', page)
    assert len(small) == len(large) == 24, (len(small), len(large))
    html = len(page.encode())
    one_x = html + sum([(await fetch(client, base + url))[0] for url in small])
    two_x = html + sum([(await fetch(client, base + url))[0] for url in large])
    originals = html + sum([(await fetch(client, base + re.sub(r"/\d+/[0-9a-f]{10}\.webp$", "", url)))[0] for url in small])
    return {"1x": one_x, "2x": two_x, "before": originals, "urls": small}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=20)
    asyncio.run(run(parser.parse_args().votes))


if __name__ == "__main__":
    main()
