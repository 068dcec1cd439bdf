"""The rank pool: planning, the data files, and a real build through the SQLite
queue with the tiny preset's engine running in-process."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from engine import profiles, rankpool
from engine import taste as tm
from engine.db import connect
from engine.db import taste as q


def test_data_files():
    prompts = rankpool.read_lines(rankpool.PROMPTS_FILE)
    styles = rankpool.read_lines(rankpool.STYLES_FILE)
    assert len(prompts) >= 200 and len(styles) >= 40
    raw = [line.strip() for line in rankpool.PROMPTS_FILE.read_text().splitlines() if line.strip()]
    assert len(raw) == len(prompts)  # no duplicates
    # prompts stay neutral about style: no style word appears in a prompt
    for prompt in prompts:
        for style in styles:
            assert not re.search(rf"\b{re.escape(style)}\b", prompt, re.I), (prompt, style)


def test_plan_is_seeded_and_distinct():
    styles = [f"s{i}" for i in range(10)]
    a = rankpool.plan(["x", "y", "z"], styles, 4, seed=1)
    assert a == rankpool.plan(["x", "y", "z"], styles, 4, seed=1)
    assert a != rankpool.plan(["x", "y", "z"], styles, 4, seed=2)
    assert all(len(set(p.styles)) == 4 for p in a)
    assert rankpool.plan(["x", "y"], styles, 4, seed=1) == a[:2]  # a prompt's plan depends on its position only


async def test_build_pool_checks_per_prompt(tmp_path):
    db = await connect(tmp_path / "t.db")
    try:
        with pytest.raises(ValueError, match="per-prompt"):
            await rankpool.build_pool(db, None, tmp_path, "tiny", ["a"], ["s1", "s2"], 3, 0)
    finally:
        await db.close()


@pytest.mark.slow
async def test_build_pool_with_the_tiny_engine(tiny_models, tmp_path):
    from engine.generate import Engine
    from engine.queue import open_queue
    from engine.worker import Worker

    data_dir = tmp_path / "data"
    db_path = data_dir / "tastemaker.db"
    db = await connect(db_path)
    queue = await open_queue(f"sqlite:///{db_path}")
    worker_queue = await open_queue(f"sqlite:///{db_path}")
    engine = Engine("tiny", device="cpu", data_dir=tiny_models)
    await asyncio.to_thread(engine.load)
    stop = asyncio.Event()
    worker = asyncio.create_task(Worker(worker_queue, engine, poll_s=0.05).run_forever(stop))
    messages: list[str] = []
    prompts = ["a lighthouse on a rocky coast", "a bowl of ripe fruit on a table", "a fox in the snow", "a foggy pier"]
    styles = ["watercolor", "neon palette", "pencil sketch", "1970s film photo"]
    try:
        # 1. three prompts x three styles
        version = await asyncio.wait_for(
            rankpool.build_pool(db, queue, data_dir, "tiny", prompts[:3], styles, 3, seed=1, on_progress=messages.append),
            timeout=60,
        )
        assert version == 1
        images = await q.pool_images_of_dim(db, 64)
        assert len(images) == 9 and {im.basis_version for im in images} == {1}
        for prompt in prompts[:3]:
            group = [im for im in images if im.prompt == prompt]
            assert len(group) == 3 and len({im.prompt_id for im in group}) == 1
            assert len({im.style for im in group}) == 3 and {im.style for im in group} <= set(styles)
            assert len({im.seed for im in group}) == 1  # same seed: pairs differ by style
        for im in images:
            png = (data_dir / im.path).read_bytes()
            assert png.startswith(b"\x89PNG") and im.path.startswith("pool/")
            assert im.embedding.shape == (64,) and np.all(np.isfinite(im.embedding))
        basis = tm.Basis.from_bytes((await q.get_basis(db, 1)).data)
        assert basis.d == 64 and basis.k == 8  # capped at n - 1
        words, text_embeddings = await q.style_words(db, "tiny")
        assert sorted(words) == sorted(styles) and text_embeddings.shape == (4, 64)
        assert any("[3/3]" in m for m in messages) and any("basis 1" in m for m in messages)
        async with db.execute("SELECT COUNT(*) FROM queue_jobs") as cur:
            assert (await cur.fetchone())[0] == 0  # every job forgotten once stored

        # 2. the taste service works on it
        pair = await profiles.next_pair(db, 42, np.random.default_rng(0))
        assert pair is not None and pair.left_style != pair.right_style
        assert await profiles.answer_pair(db, 42, pair.id, "left")
        st = await profiles.status(db, 42, 1)
        assert st.unlocked and st.code and len(st.toward) == 2  # 4 words: two each way
        assert "rank pool: 9 images of 3 prompts" in await rankpool.pool_status(db)

        # 3. a rerun skips what is there; a larger prompt list grows the pool and the basis
        messages.clear()
        again = await rankpool.build_pool(db, queue, data_dir, "tiny", prompts[:3], styles, 3, seed=1, on_progress=messages.append)
        assert again == 1 and any("nothing new" in m for m in messages)
        grown = await asyncio.wait_for(
            rankpool.build_pool(db, queue, data_dir, "tiny", prompts, styles, 3, seed=1), timeout=60
        )
        assert grown == 2 and len(await q.pool_images_for_basis(db, 2, 64)) == 12
        old_code = st.code
        assert (await profiles.resolve(db, 7, [(old_code, 1.0)], 1)).basis.version == 2  # projected
    finally:
        stop.set()
        await worker
        await worker_queue.close()
        await queue.close()
        await db.close()


@pytest.mark.slow
async def test_a_build_cut_short_by_a_restart_is_adopted_not_drawn_twice(tiny_models, tmp_path):
    from engine.generate import Engine
    from engine.jobs import Job
    from engine.queue import open_queue
    from engine.worker import Worker

    data_dir = tmp_path / "data"
    db_path = data_dir / "tastemaker.db"
    db = await connect(db_path)
    queue = await open_queue(f"sqlite:///{db_path}")
    prompts = ["a lighthouse on a rocky coast", "a bowl of ripe fruit on a table", "a fox in the snow"]
    styles = ["watercolor", "neon palette", "pencil sketch"]
    messages: list[str] = []

    async def queued() -> dict[str, str]:
        """job id -> kind of every job in the queue"""
        async with db.execute("SELECT id, job FROM queue_jobs") as cur:
            return {row[0]: Job.from_json(row[1]).kind.value for row in await cur.fetchall()}

    async def until(check) -> None:
        for _ in range(200):
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    async def four_jobs_queued() -> bool:
        return len(await queued()) == 4

    async def adopted() -> bool:
        return any("adopted 3 prompts" in m for m in messages)

    builds: list[asyncio.Task] = []

    def build() -> asyncio.Task:
        builds.append(
            asyncio.create_task(
                rankpool.build_pool(db, queue, data_dir, "tiny", prompts, styles, 2, seed=1, on_progress=messages.append)
            )
        )
        return builds[-1]

    stop = asyncio.Event()
    worker = None
    try:
        # 1. a build with no worker yet, cut short (the bot restarting)
        first = build()
        await until(four_jobs_queued)
        before = await queued()
        first.cancel()
        # 2. the next build takes over the three queued prompts and draws none twice
        second = build()
        await until(adopted)
        after = await queued()
        pool_before = {i for i, kind in before.items() if kind == "pool"}
        assert {i for i, kind in after.items() if kind == "pool"} == pool_before
        assert sorted(after.values()) == ["embed", "pool", "pool", "pool"]  # the old style-word job is gone
        # 3. a worker finishes it: each prompt stored once, nothing left behind
        engine = Engine("tiny", device="cpu", data_dir=tiny_models)
        await asyncio.to_thread(engine.load)
        worker = asyncio.create_task(Worker(queue, engine, poll_s=0.05).run_forever(stop))
        assert await asyncio.wait_for(second, timeout=60) == 1
        images = await q.pool_images_of_dim(db, 64)
        assert len(images) == 6 and len({im.prompt_id for im in images}) == 3
        assert await queued() == {}
    finally:
        for task in builds:
            task.cancel()
        await asyncio.gather(*builds, return_exceptions=True)
        stop.set()
        if worker is not None:
            await worker
        await queue.close()
        await db.close()

