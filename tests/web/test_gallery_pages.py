"""Explore's orders across a member's servers (bot/web/gallery.py): page after page, the same
images in the same order as sorting every visible image at once, and nothing from elsewhere."""

from __future__ import annotations

import random

import pytest

from bot.web import gallery
from engine.db import connect

SERVERS = (11, 12, 13)
VIEWER = 1


@pytest.fixture
async def db(tmp_path):
    db = await connect(tmp_path / "gallery.db")
    rng = random.Random(5)
    for user in (VIEWER, 2, 3):
        await db.execute("INSERT INTO users (id, created_at) VALUES (?, 0)", (user,))
    image_ids = []
    for n in range(30):
        guild = SERVERS[n % 3] if n % 10 else 99  # every tenth job in a server the viewer isn't in
        state = "running" if n == 7 else "done"
        job = f"job-{n:02d}"
        await db.execute(
            "INSERT INTO jobs (id, kind, user_id, guild_id, prompt, request, state, created_at, finished_at)"
            " VALUES (?, 'imagine', 2, ?, 'p', '{}', ?, 0, ?)",
            (job, guild, state, float(rng.randrange(1000))),  # some jobs finish at the same second
        )
        for idx in range(1, 5):
            cursor = await db.execute(
                "INSERT INTO images (job_id, idx, user_id, path, width, height, seed, created_at)"
                " VALUES (?, ?, 2, 'x.png', 64, 64, 1, 0)", (job, idx),
            )
            image_ids.append(cursor.lastrowid)
    for image in rng.sample(image_ids, 40):
        for user in rng.sample((VIEWER, 2, 3), rng.randint(1, 3)):
            await db.execute("INSERT INTO likes (user_id, image_id, grid_image_id, created_at) VALUES (?, ?, ?, 0)",
                             (user, image, image))
    yield db
    await db.close()


async def everything(db) -> list[dict]:
    rows = await db.execute_fetchall(
        "SELECT i.id, i.job_id, i.idx, j.finished_at,"
        " (SELECT COUNT(*) FROM likes l WHERE l.image_id = i.id) AS likes FROM images i JOIN jobs j ON j.id = i.job_id"
        f" WHERE j.state = 'done' AND j.guild_id IN ({','.join('?' * len(SERVERS))})", SERVERS,
    )
    return [dict(r) for r in rows]


async def pages(db, order: str, size: int) -> list[int]:
    shown, offset = [], 0
    while page := (await gallery.page(db, VIEWER, list(SERVERS), order, offset, size))[0]:
        shown += [image.id for image in page]
        offset += size
    return shown


@pytest.mark.parametrize("size", [1, 7, 200])
async def test_newest_across_servers_page_by_page(db, size):
    rows = await everything(db)
    newest = [r["id"] for r in sorted(rows, key=lambda r: (-r["finished_at"], r["job_id"], r["idx"]))]
    assert await pages(db, "new", size) == newest


@pytest.mark.parametrize("size", [1, 7, 200])
async def test_most_liked_across_servers_then_the_newest_nobody_likes(db, size):
    rows = await everything(db)
    liked = [r["id"] for r in sorted((r for r in rows if r["likes"]), key=lambda r: (-r["likes"], -r["id"]))]
    unliked = [r["id"] for r in sorted((r for r in rows if not r["likes"]),
                                       key=lambda r: (-r["finished_at"], r["job_id"], r["idx"]))]
    assert await pages(db, "top", size) == liked + unliked
    [first], _ = await gallery.page(db, VIEWER, list(SERVERS), "top", 0, 1)
    assert first.likes == max(r["likes"] for r in rows) and first.liked == bool(
        await db.execute_fetchall("SELECT 1 FROM likes WHERE user_id = ? AND image_id = ?", (VIEWER, first.id)))
