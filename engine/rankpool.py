"""The rank pool: each prompt rendered in several styles, for /rank.

    python -m engine.rankpool build --per-prompt 6 [--prompts N] [--seed S] [--inline]
    python -m engine.rankpool status

`build` sends one POOL job per prompt through the configured queue (so the
bot's own workers, or remote ones, render it; `--inline` runs a worker in this
process instead), stores the PNGs under <data dir>/pool/ and their OpenCLIP
embeddings in `pool_images`, builds a new whitening basis from every pool
embedding of that CLIP space, and embeds the style words (data/styles.txt)
for /info explanations. Prompts already in the pool for the preset are
skipped, so an interrupted build resumes and a larger --prompts grows the pool.

Plain asyncio, no torch unless --inline: the worker does the GPU work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import numpy as np

from engine import safety
from engine import taste as tm
from engine.db import members as meta
from engine.db import transaction
from engine.db import taste as q
from engine.jobs import EmbedSpec, EventType, Job, JobKind, JobResult, JobState, PoolSpec
from engine.queue import Followed, JobQueue

log = logging.getLogger("engine.rankpool")

DATA = Path(__file__).resolve().parents[1] / "data"
PROMPTS_FILE = DATA / "rank_prompts.txt"
STYLES_FILE = DATA / "styles.txt"
POOL_DIR = "pool"  # under the data dir
POOL_SIZE = 512  # pixels per side: /rank shows two side by side
SYSTEM_USER = 0  # pool jobs belong to no member
BUILD_JOBS_KEY = "rankpool:jobs"  # meta: the running build's job ids, for the next run to adopt
WAIT_HINT_S = 15.0

Progress = Callable[[str], None]


def read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines, de-duplicated in order."""
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            seen.setdefault(line, None)
    return list(seen)


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"


@dataclass(frozen=True)
class PlannedPrompt:
    prompt: str
    styles: list[str]
    seed: int


def plan(prompts: Sequence[str], styles: Sequence[str], per_prompt: int, seed: int) -> list[PlannedPrompt]:
    """Seeded choice of `per_prompt` distinct styles and one image seed per prompt.
    A prompt's plan depends only on its position, so reruns agree."""
    rng = random.Random(seed)
    out = []
    for prompt in prompts:
        chosen = rng.sample(list(styles), per_prompt)
        out.append(PlannedPrompt(prompt, chosen, rng.randrange(2**31 - 1)))
    return out


async def build_pool(
    db: aiosqlite.Connection,
    queue: JobQueue,
    data_dir: Path,
    preset: str,
    prompts: Sequence[str],
    styles: Sequence[str],
    per_prompt: int,
    seed: int,
    on_progress: Progress | None = None,
    *,
    size: int | None = None,
    k: int = tm.DEFAULT_K,
    idle_s: float = 1.0,
) -> int:
    """Render the pool through the queue, store it, build a new basis; returns its version.

    Needs a worker on the queue. A failed prompt is reported and left out;
    when every prompt fails, RuntimeError.
    """
    say = on_progress or (lambda message: None)
    # 1. check inputs and plan
    styles = list(dict.fromkeys(s.strip() for s in styles if s.strip()))
    if not 2 <= per_prompt <= len(styles):
        raise ValueError(f"--per-prompt must be 2..{len(styles)} (the number of styles), got {per_prompt}")
    if size is None:
        from engine.presets import get_preset

        size = min(POOL_SIZE, get_preset(preset).base_size)
    data_dir = Path(data_dir)
    (data_dir / POOL_DIR).mkdir(parents=True, exist_ok=True)
    done_before = await q.pool_prompts(db, preset)
    todo = [p for p in plan(prompts, styles, per_prompt, seed) if p.prompt not in done_before]
    if len(todo) < len(prompts):
        say(f"{len(prompts) - len(todo)} of {len(prompts)} prompts are already in the pool for {preset}; skipping them")

    # 2. adopt the pool jobs an interrupted build (a restart) left in the queue and
    #    cancel the rest of it; record the jobs before submitting, so that the next
    #    run can adopt these; then the style words (small) and one POOL job per prompt
    key = f"{BUILD_JOBS_KEY}:{preset}"
    waiting = {item.prompt: item for item in todo}
    pool_jobs: dict[str, PlannedPrompt] = {}
    for job_id, prompt in json.loads(await meta.get_meta(db, key) or "{}").items():
        state = await queue.state(job_id)
        if prompt in waiting and state in (JobState.QUEUED, JobState.RUNNING, JobState.DONE):
            pool_jobs[job_id] = waiting.pop(prompt)
        elif state is not None:  # a duplicate now, or the old style words
            await queue.cancel(job_id)
            await queue.forget(job_id)
    if pool_jobs:
        say(f"adopted {len(pool_jobs)} prompts still queued from an interrupted build")
    embed_job = Job(kind=JobKind.EMBED, user_id=SYSTEM_USER, preset=preset, embed=EmbedSpec(texts=styles))
    new_jobs = [
        Job(
            kind=JobKind.POOL,
            user_id=SYSTEM_USER,
            preset=preset,
            pool=PoolSpec(prompt=item.prompt, styles=item.styles, seed=item.seed, width=size, height=size),
        )
        for item in waiting.values()
    ]
    pool_jobs.update({job.id: waiting[job.pool.prompt] for job in new_jobs})
    await meta.set_meta(db, key, json.dumps({embed_job.id: "", **{i: item.prompt for i, item in pool_jobs.items()}}))
    await queue.submit(embed_job)
    for job in new_jobs:
        await queue.submit(job)
    say(f"queued {len(new_jobs)} prompts x {per_prompt} styles ({preset}, {size}px) and {len(styles)} style words")

    # 3. collect results as they come (follow() wakes on each event)
    followed = Followed({job_id: "" for job_id in [embed_job.id, *pool_jobs]})
    started = False
    failures: list[str] = []
    done = 0
    t0 = time.monotonic()
    hinted = False
    async for events in queue.follow(followed, idle_s=idle_s):
        for event in events:
            started = started or event.type == EventType.STARTED
            if not event.type.terminal:
                continue
            if event.job_id == embed_job.id:
                label = "style words"
            else:
                done += 1
                label = f"[{done}/{len(pool_jobs)}] {pool_jobs[event.job_id].prompt}"
            if event.type == EventType.DONE and event.result is not None:
                if event.job_id == embed_job.id:
                    await _store_style_words(db, preset, styles, event.result)
                    say(f"{label}: {len(styles)} embedded")
                else:
                    n = await _store_pool_images(db, data_dir, preset, pool_jobs[event.job_id], event.result)
                    say(f"{label}: {n} images")
            else:
                reason = event.error or event.type.value
                failures.append(f"{label}: {reason}")
                say(f"{label}: FAILED ({reason})")
            await queue.forget(event.job_id)
        if not started and not hinted and time.monotonic() - t0 > WAIT_HINT_S:
            say("waiting for a worker: start the bot (or `python -m engine.worker`), or rerun with --inline")
            hinted = True

    # 4. a new basis from every pool embedding of this CLIP space
    await meta.set_meta(db, key, "{}")
    return await build_basis(db, preset, k=k, on_progress=say, failures=failures)


async def build_basis(
    db: aiosqlite.Connection,
    preset: str,
    *,
    k: int = tm.DEFAULT_K,
    on_progress: Progress | None = None,
    failures: Sequence[str] = (),
) -> int:
    """Build and store a new basis from the pool images of the preset's CLIP space;
    returns its version (the current one when nothing new arrived)."""
    say = on_progress or (lambda message: None)
    from engine.presets import get_preset

    dim = get_preset(preset).embed_dim
    images = await q.pool_images_of_dim(db, dim)
    if len(images) < 2:
        detail = f" ({len(failures)} failed; first: {failures[0]})" if failures else ""
        raise RuntimeError(f"the rank pool has {len(images)} images of {preset}'s embedding size{detail}")
    latest = await q.latest_basis(db)
    if latest is not None and latest.dim == dim and latest.images == len(images):
        say(f"nothing new: basis {latest.version} already covers all {len(images)} pool images")
        return latest.version
    version = await q.next_basis_version(db)
    embeddings = np.stack([im.embedding for im in images])
    basis = await asyncio.to_thread(tm.Basis.build, embeddings, k, version)
    data = basis.to_bytes()
    async with transaction(db):  # a basis and its images, or neither
        await q.insert_basis(db, version, preset, basis.d, basis.k, len(images), data)
        await q.assign_pool_basis(db, version, dim)
    groups = len({im.prompt_id for im in images})
    say(f"basis {version}: k={basis.k} from {len(images)} images of {groups} prompts")
    if failures:
        say(f"{len(failures)} prompts failed; rerun the same command to retry them")
    return version


async def _store_pool_images(
    db: aiosqlite.Connection, data_dir: Path, preset: str, item: PlannedPrompt, result: JobResult,
    nsfw_threshold: float = safety.DEFAULT_THRESHOLD,
) -> int:
    """Store one prompt's images; those the NSFW check flags never enter the pool
    (every member sees pool images, in any channel)."""
    prompt_id = await q.next_prompt_id(db)
    stored = 0
    for i, image in enumerate(result.images):
        if safety.flagged(image.nsfw, nsfw_threshold):
            log.info("pool image %r, %r left out: nsfw %s", item.prompt, image.label, image.nsfw)
            continue
        style = image.label or (item.styles[i] if i < len(item.styles) else f"style {i + 1}")
        relative = f"{POOL_DIR}/{prompt_id:05d}-{i + 1}-{slug(style)}.png"
        path = data_dir / relative
        await asyncio.to_thread(path.write_bytes, image.png)
        await q.insert_pool_image(db, prompt_id, item.prompt, style, relative, image.seed, preset, image.embedding)
        stored += 1
    return stored


async def _store_style_words(db: aiosqlite.Connection, preset: str, styles: Sequence[str], result: JobResult) -> None:
    if len(result.text_embeddings) != len(styles):
        raise RuntimeError(f"asked for {len(styles)} text embeddings, got {len(result.text_embeddings)}")
    async with transaction(db):
        for word, embedding in zip(styles, result.text_embeddings, strict=True):
            await q.upsert_style_word(db, word, preset, embedding)


async def pool_status(db: aiosqlite.Connection) -> str:
    images, groups, pending = await q.pool_counts(db)
    latest = await q.latest_basis(db)
    lines = [f"rank pool: {images} images of {groups} prompts" + (f" ({pending} not in a basis yet)" if pending else "")]
    if latest is None:
        lines.append("basis: none yet; build one with `python -m engine.rankpool build --per-prompt 6`")
    else:
        words, _ = await q.style_words(db, latest.preset)
        lines.append(
            f"basis: version {latest.version} ({latest.preset}, d={latest.dim}, k={latest.k}, "
            f"{latest.images} images, {time.strftime('%Y-%m-%d %H:%M', time.localtime(latest.created_at))})"
        )
        lines.append(f"style words: {len(words)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from engine.config import EngineSettings

    settings = EngineSettings()
    parser = argparse.ArgumentParser(prog="python -m engine.rankpool", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="render the rank pool and build a new basis")
    build.add_argument("--per-prompt", type=int, default=6, help="styles per prompt (default 6)")
    build.add_argument("--prompts", type=int, default=None, help="use the first N prompts (default all)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--inline", action="store_true", help="run a worker in this process")
    build.add_argument("--preset", default=settings.model, help="model preset (TASTEMAKER_MODEL)")
    build.add_argument("--size", type=int, default=None, help=f"pixels per side (default min({POOL_SIZE}, preset size))")
    build.add_argument("--prompts-file", type=Path, default=PROMPTS_FILE)
    build.add_argument("--styles-file", type=Path, default=STYLES_FILE)
    sub.add_parser("status", help="pool size and basis version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from engine.presets import load_presets

        load_presets(settings)  # the owner's presets.toml too, as the bot and the workers read it
        return asyncio.run(_main(args, settings))
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


async def _main(args: argparse.Namespace, settings) -> int:
    from engine.db import connect
    from engine.queue import open_queue

    db = await connect(settings.db_path)
    try:
        if args.command == "status":
            print(await pool_status(db))
            return 0
        from engine.presets import get_preset

        get_preset(args.preset)  # a clear error for an unknown preset
        prompts = read_lines(args.prompts_file)
        if args.prompts is not None:
            prompts = prompts[: args.prompts]
        styles = read_lines(args.styles_file)
        queue = await open_queue(settings.queue_url)
        stop = asyncio.Event()
        worker_task = None
        worker_queue = None
        try:
            if args.inline:
                from engine.worker import Worker, load_engine

                print(f"loading {args.preset} for the inline worker...", flush=True)
                runner = await asyncio.to_thread(
                    load_engine, args.preset, settings.device, settings.data_dir, dtype=settings.dtype, compile=settings.compile
                )
                worker_queue = await open_queue(settings.queue_url)
                worker_task = asyncio.create_task(Worker(worker_queue, runner, poll_s=0.1).run_forever(stop))
            version = await build_pool(
                db,
                queue,
                settings.data_dir,
                args.preset,
                prompts,
                styles,
                args.per_prompt,
                args.seed,
                on_progress=lambda message: print(message, flush=True),
                size=args.size,
            )
            print(f"done: the rank pool is on basis {version}")
        finally:
            stop.set()
            if worker_task is not None:
                await worker_task
            if worker_queue is not None:
                await worker_queue.close()
            await queue.close()
        return 0
    finally:
        await db.close()


if __name__ == "__main__":
    sys.exit(main())
