"""Faults as a member sees them, through SimCord: the bot restarting while a job
runs, Discord failing the final edit, ❌ Cancel and the per-user job limit.

The bot runs with TASTEMAKER_WORKERS=0 and the test starts a real worker on
the bot's SQLite queue when it wants jobs to run: an InlineWorker (the tiny
engine in a thread), or a `python -m engine.worker` process that the test can
freeze (SIGSTOP) mid-job. The worker runs in real time and the bot's job pump
hears its events as they come; the pump's ticks (edit retries, throttled
progress edits) follow virtual time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.delivery import POLL_S, RETRY_S
from engine.db import jobs as db_jobs
from engine.jobs import JobState
from engine.worker import InlineWorker
from tests.bot.conftest import acknowledge_user_errors, custom_id, run_until

NO_LOCAL_WORKERS = {"TASTEMAKER_WORKERS": "0"}


@pytest.fixture
def start_worker(settings):
    """Start a real tiny-preset worker on the bot's queue; stopped at the end."""
    started: list[InlineWorker] = []

    async def start() -> InlineWorker:
        worker = InlineWorker(settings.queue_url, settings.model, settings.device, settings.data_dir, lease_s=5.0)
        started.append(worker.start())
        assert await asyncio.to_thread(worker.wait_ready, 60), "the inline worker did not start"
        assert worker.error is None, worker.error
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def worker_process(settings, tmp_path: Path):
    """A real worker process on the bot's queue, ready to claim; killed (by pid) at the end."""
    log_path = tmp_path / "worker.log"
    args = [
        sys.executable, "-m", "engine.worker", "--queue", settings.queue_url, "--preset", settings.model,
        "--device", "cpu", "--data-dir", str(settings.data_dir), "--id", "gpu-1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[2], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async def ready() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            return "worker gpu-1 ready" in log_path.read_text(errors="replace")

        await real_wait(ready, 90, "the worker process started")
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)


async def real_wait(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait in real time (the worker's clock) without moving the bot's virtual clock."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.to_thread(time.sleep, 0.02)


def freeze(process: subprocess.Popen, settings) -> None:
    """SIGSTOP the worker at a moment it holds no write lock on the queue's database: a worker frozen
    inside a write (its start-up report, a progress event) would block every write of the bot's."""
    for _ in range(200):
        os.kill(process.pid, signal.SIGSTOP)
        probe = sqlite3.connect(settings.data_dir / "tastemaker.db", timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # "database is locked": let it finish that write
            os.kill(process.pid, signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the worker never let go of the database's write lock")


def current(channel, message_id: int):
    """The message as Discord shows it now."""
    [message] = [m for m in channel.history() if m.id == message_id]
    return message


def grid_posted(channel, message_id: int) -> bool:
    message = current(channel, message_id)
    return bool(message.attachments) and "U1" in [child.label for row in message.components for child in row.children]


async def only_job(bot) -> db_jobs.JobRecord:
    async with bot.db.execute("SELECT id FROM jobs") as cur:
        [(job_id,)] = await cur.fetchall()
    return await db_jobs.get_job(bot.db, job_id)


def patches_of(env, channel, message_id: int) -> int:
    """Edits of a message, through its channel or through the webhook of the interaction that posted it."""
    paths = {f"/channels/{channel.id}/messages/{message_id}"}
    for record in env.backend.interactions.values():
        webhook = f"/webhooks/{env.backend.application_id}/{record.token}/messages"
        paths.add(f"{webhook}/{message_id}")
        if record.message_id == message_id:
            paths.add(f"{webhook}/@original")
    return sum(1 for entry in env.http_requests if entry.method == "PATCH" and entry.path in paths)


# -- 4. the bot restarts while a job runs ------------------------------------------------------


@pytest.mark.parametrize("bot_overrides", [NO_LOCAL_WORKERS])
async def test_a_grid_reaches_the_original_message_after_a_bot_restart(
    simcord_env, world, simcord_bot, restart_bot, worker_process, settings
):
    _, channel, alice, _ = world
    freeze(worker_process, settings)  # held while the member reads the waiting message
    await alice.slash(channel, "imagine", prompt="a windmill at dusk --q 2 --seed 5")
    original = channel.last_message
    assert "(Waiting to start)" in original.content
    record = await only_job(simcord_bot)
    assert record.message_id == original.id
    os.kill(worker_process.pid, signal.SIGCONT)

    # The worker claims the job and the bot hears of it; freeze the worker mid-job, so the
    # job is surely running across the restart.
    await real_wait(lambda: _running_in_bot(simcord_bot, record.id), 60, "the bot saw the job start")
    freeze(worker_process, settings)
    assert await simcord_bot.queue.state(record.id) == JobState.RUNNING
    await simcord_env.advance_time(POLL_S)  # the old bot shows it running ...
    assert "%)" in current(channel, original.id).content

    bot = await restart_bot()  # ... and restarts
    os.kill(worker_process.pid, signal.SIGCONT)

    await run_until(simcord_env, lambda: grid_posted(channel, original.id), timeout=60)
    # The grid is on the message the member has been watching, and nowhere else.
    assert [m.id for m in channel.history()] == [original.id]
    shown = current(channel, original.id)
    assert shown.content.startswith("**a windmill at dusk") and alice.mention in shown.content
    assert "seed 5" in shown.content
    assert len(shown.attachments) == 1
    after = await db_jobs.get_job(bot.db, record.id)
    assert after.state == "done" and after.delivered_at is not None
    assert len(await db_jobs.images_of(bot.db, record.id)) == 4
    # Nothing left to deliver: more pump rounds change nothing.
    edits = patches_of(simcord_env, channel, original.id)
    await simcord_env.advance_time(5 * POLL_S)
    assert patches_of(simcord_env, channel, original.id) == edits
    assert len(channel.history()) == 1
    assert worker_process.poll() is None  # the worker carried on


async def _running_in_bot(bot, job_id: str) -> bool:
    """A worker claimed the job, and the bot's pump has applied that."""
    return (await db_jobs.get_job(bot.db, job_id)).state == JobState.RUNNING


async def _stored_in_bot(bot, job_id: str) -> bool:
    """The job finished, and the bot's pump has stored its result."""
    return (await db_jobs.get_job(bot.db, job_id)).state == JobState.DONE


# -- 5. Discord fails the final edit -----------------------------------------------------------


@pytest.mark.parametrize("bot_overrides", [NO_LOCAL_WORKERS])
async def test_a_failed_final_edit_is_retried_and_the_grid_shown_once(
    simcord_env, world, simcord_bot, settings, start_worker
):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a paper boat on a pond --seed 9")
    message = channel.last_message
    record = await only_job(simcord_bot)

    # Discord answers 500 to the next two edits of the message: the first one the job
    # brings (its start, or at once its end), then the final one, retried once its
    # backoff (virtual time) is due ...
    simcord_env.inject_error("PATCH", "/webhooks/*/messages/*", status=500, times=2)
    # ... while the job runs to its end and the bot stores the result (in real time).
    await start_worker()

    async def stored_and_edit_tried() -> bool:  # the pump stores the result, then edits: wait for both
        return await _stored_in_bot(simcord_bot, record.id) and patches_of(simcord_env, channel, message.id) == 1

    await real_wait(stored_and_edit_tried, 60, "the bot stored the result and tried an edit")
    await simcord_env.advance_time(POLL_S)

    # The result is safe on disk and in the database although the member can't see it yet.
    folder = settings.data_dir / "images" / record.id
    assert sorted(p.name for p in folder.iterdir()) == ["1.png", "2.png", "3.png", "4.png", "post.jpg"]
    images = await db_jobs.images_of(simcord_bot.db, record.id)
    assert [image.idx for image in images] == [1, 2, 3, 4]
    assert all((settings.data_dir / image.path).is_file() for image in images)
    stored = await db_jobs.get_job(simcord_bot.db, record.id)
    assert stored.state == "done" and stored.delivered_at is None
    assert "(Waiting to start)" in current(channel, message.id).content
    assert not current(channel, message.id).attachments
    assert patches_of(simcord_env, channel, message.id) == 1

    # Still failing at the first retry, RETRY_S[0] later; nothing is retried before it is due.
    await simcord_env.advance_time(RETRY_S[0] - 2 * POLL_S)
    assert patches_of(simcord_env, channel, message.id) == 1
    await simcord_env.advance_time(2 * POLL_S)
    assert patches_of(simcord_env, channel, message.id) == 2
    assert not grid_posted(channel, message.id)

    # The second retry, RETRY_S[1] later, gets through.
    await simcord_env.advance_time(RETRY_S[1])
    assert patches_of(simcord_env, channel, message.id) == 3
    assert grid_posted(channel, message.id)
    assert [m.id for m in channel.history()] == [message.id]  # the original message, once
    assert len(current(channel, message.id).attachments) == 1
    assert len(await db_jobs.images_of(simcord_bot.db, record.id)) == 4  # stored once, not per retry
    assert (await db_jobs.get_job(simcord_bot.db, record.id)).delivered_at is not None
    await simcord_env.advance_time(RETRY_S[2] + POLL_S)
    assert patches_of(simcord_env, channel, message.id) == 3  # delivered: never edited again
    assert simcord_env.errors == []  # the failed edits were handled, not raised


# -- 6. ❌ Cancel and the per-user job limit -----------------------------------------------------


@pytest.mark.parametrize("bot_overrides", [{**NO_LOCAL_WORKERS, "TASTEMAKER_MAX_JOBS_PER_USER": "1"}])
async def test_cancel_a_queued_job_and_queue_again(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a glass whale --seed 1")
    message = channel.last_message
    record = await only_job(simcord_bot)
    cancel = custom_id(message, "❌")

    # Someone else's ❌ is refused, privately, and the job stays queued.
    refused = await bob.click(message, custom_id=cancel)
    assert refused.ephemeral
    assert f"Only {alice.mention}" in refused.response.content
    acknowledge_user_errors(simcord_env)  # only member mistakes, if SimCord recorded any
    assert await simcord_bot.queue.state(record.id) == JobState.QUEUED

    # The member's own ❌ cancels it.
    clicked = await alice.click(message, custom_id=cancel)
    assert clicked.ephemeral and "Cancelled" in clicked.response.content
    shown = current(channel, message.id)
    assert "(cancelled)" in shown.content
    assert not shown.components  # no buttons left on a cancelled job
    after = await db_jobs.get_job(simcord_bot.db, record.id)
    assert after.state == "cancelled" and after.delivered_at is not None
    # The queue ended it (and, once shown, forgot it): no worker can claim it.
    assert await simcord_bot.queue.state(record.id) in (JobState.CANCELLED, None)
    assert await simcord_bot.queue.claim("probe", 1.0) is None

    # With a limit of one job, the member can queue again: the cancelled job no longer counts.
    result = await alice.slash(channel, "imagine", prompt="a glass whale, second try")
    assert not result.ephemeral
    assert "(Waiting to start) · position 1 in queue" in channel.last_message.content


@pytest.mark.parametrize("bot_overrides", [{**NO_LOCAL_WORKERS, "TASTEMAKER_MAX_JOBS_PER_USER": "2"}])
async def test_a_job_over_the_per_user_limit_is_refused_and_not_queued(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    for n in (1, 2):
        result = await alice.slash(channel, "imagine", prompt=f"a lantern, number {n}")
        assert not result.ephemeral

    third = await alice.slash(channel, "imagine", prompt="a lantern, number 3")
    assert third.ephemeral
    assert "You already have 2 jobs queued or running, and the limit is 2" in third.response.content
    assert acknowledge_user_errors(simcord_env) == [third.response.content]
    assert len(channel.history()) == 2
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM jobs") as cur:
        assert (await cur.fetchone())[0] == 2
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM queue_jobs WHERE state = 'queued'") as cur:
        assert (await cur.fetchone())[0] == 2

    # The limit is per member: bob still can.
    result = await bob.slash(channel, "imagine", prompt="a lantern for bob")
    assert not result.ephemeral
    assert "position 2 in queue" in channel.last_message.content  # fair order: ahead of alice's second
