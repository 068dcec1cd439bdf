"""python -m bot backup / restore, as an owner runs them: a backup taken in a process of its
own while members vote, like and make grids through the running bot, refused restores, and
a restore into a new data dir that holds every vote, like, code and image the bot had when
the backup began, each image byte for byte."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.delivery import POLL_S
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished

REPO = Path(__file__).resolve().parents[2]


def rows(path: Path) -> dict[str, set]:
    """What a member would miss: votes, likes, codes, images (and their files' names)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "votes": set(db.execute("SELECT id, choice FROM rank_pairs WHERE choice IS NOT NULL")),
            "likes": set(db.execute("SELECT user_id, image_id FROM likes")),
            "codes": set(db.execute("SELECT code, user_id, votes FROM profile_versions")),
            "images": set(db.execute("SELECT id, path FROM images")),
            "pool": set(db.execute("SELECT id, path FROM pool_images")),
        }
    finally:
        db.close()


def run_bot_command(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TASTEMAKER_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_UNLOCK_VOTES": "4"}])
async def test_a_backup_taken_while_members_vote_and_like_restores_every_one(simcord_env, world, simcord_bot, tmp_path_factory):
    _, channel, alice, bob = world
    data_dir = simcord_bot.settings.data_dir
    # 1. A grid of Bob's, Alice's votes (her profile unlocks: a code) and a like.
    await bob.slash(channel, "imagine", prompt="a harbour at dawn --seed 1")
    await run_until(simcord_env, lambda: finished(channel, "a harbour at dawn"))
    message = (await alice.slash(channel, "rank")).response.message
    for _ in range(4):
        message = (await alice.click(message, label="◀ Left")).response.message
    assert "unlocked" in message.content
    explore = (await alice.slash(channel, "explore")).response.message
    assert "counts toward your taste" in (await alice.click(explore, label="1")).response.content

    # 2. The backup, in a process of its own, while Alice votes and likes and Bob's next grid lands.
    target = tmp_path_factory.mktemp("backups") / "tastemaker"
    before = rows(data_dir / "tastemaker.db")
    await bob.slash(channel, "imagine", prompt="a harbour at noon --seed 2")
    backup = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "backup", str(target), cwd=REPO, env={**os.environ, "TASTEMAKER_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    answered = asyncio.create_task(backup.communicate())
    writes, liked = 0, 2
    while not answered.done():
        if writes < 12:
            message = (await alice.click(message, label="Right ▶")).response.message
            writes += 1
        if liked <= 4:
            await alice.click(explore, label=str(liked))
            liked += 1
        await asyncio.to_thread(time.sleep, 0.03)  # the backup and the worker, in real time
        await simcord_env.advance_time(POLL_S)  # the bot's job pump, in virtual time
    out, err = await answered
    assert backup.returncode == 0, err.decode()
    assert f"Backed up {data_dir} to {target}" in out.decode()
    assert writes >= 1  # the bot wrote while the backup ran
    await run_until(simcord_env, lambda: finished(channel, "a harbour at noon"))
    after = rows(data_dir / "tastemaker.db")

    # 3. Restore refuses the running bot's data dir and says how it knows; nothing changes there.
    refused = run_bot_command(data_dir, "restore", str(target))
    assert refused.returncode == 2 and "The bot is running" in refused.stderr and "bot.lock" in refused.stderr
    assert rows(data_dir / "tastemaker.db") == after
    not_a_backup = run_bot_command(tmp_path_factory.mktemp("empty"), "restore", str(data_dir / "images"))
    assert not_a_backup.returncode == 2 and "is not a tastemaker backup" in not_a_backup.stderr

    # 4. Restored into a new data dir: everything the bot had when the backup began, and only what it had.
    new_dir = tmp_path_factory.mktemp("restored")
    restored_run = run_bot_command(new_dir, "restore", str(target))
    assert restored_run.returncode == 0, restored_run.stderr
    restored = rows(new_dir / "tastemaker.db")
    for kind in restored:
        assert before[kind] <= restored[kind] <= after[kind], kind
    assert restored["votes"] and restored["likes"] and restored["codes"] and restored["images"]
    for _, path in restored["images"] | restored["pool"]:
        assert (new_dir / path).read_bytes() == (data_dir / path).read_bytes(), path
    for job_id in {Path(path).parts[1] for _, path in restored["images"]}:  # and what each job posted (its grid)
        posted = sorted(p.name for p in (data_dir / "images" / job_id).iterdir())
        assert sorted(p.name for p in (new_dir / "images" / job_id).iterdir()) == posted and "post.jpg" in posted
    check = sqlite3.connect(new_dir / "tastemaker.db")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()

    # 5. A second backup to the same folder copies only what is new.
    again = run_bot_command(data_dir, "backup", str(target))
    assert again.returncode == 0 and " 0 removed" in again.stdout
    assert rows(target / "tastemaker.db") == rows(data_dir / "tastemaker.db")
