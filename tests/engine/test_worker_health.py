"""Worker health: a real Worker on the tiny preset reports its preset, jobs done
and heartbeat through the queue (both backends); a worker whose jobs keep
failing is flagged there and in the log, and a job refused for its own bad
input doesn't count against the worker."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.jobs import GenerateSpec, Job, JobError, JobKind, JobState
from engine.queue_contract import FAILING_AFTER
from engine.worker import Worker


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def queue(request, tmp_path):
    from engine.db import connect
    from engine.queue import open_queue

    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    else:
        await (await connect(tmp_path / "tastemaker.db")).close()
        url = f"sqlite:///{tmp_path / 'tastemaker.db'}"
    q = await open_queue(url)
    yield q
    await q.close()


def tiny_job(prompt: str = "a lighthouse", **spec) -> Job:
    return Job(kind=JobKind.IMAGINE, user_id=1, guild_id=5, preset="tiny", max_tries=1,
               generate=GenerateSpec(prompt=prompt, width=128, height=128, count=1, **spec))


async def until(predicate, timeout: float = 60.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_working_worker_reports_its_preset_and_jobs_done(queue, engine):
    stop = asyncio.Event()
    worker = Worker(queue, engine, worker_id="gpu-7", poll_s=0.05, status_every_s=0.1)
    task = asyncio.create_task(worker.run_forever(stop))
    job = tiny_job(seed=1)
    await queue.submit(job)

    async def done() -> bool:
        seen = await queue.workers()
        return bool(seen) and seen[0].jobs_done == 1 and seen[0].state == "idle"

    await until(done)
    assert await queue.state(job.id) == JobState.DONE
    (status,) = await queue.workers()
    assert (status.worker_id, status.preset, status.device) == ("gpu-7", "tiny", "cpu")
    assert status.failed_in_row == 0 and not status.failing and status.gpu_memory_used is None  # the CPU
    stop.set()
    await task
    assert (await queue.workers())[0].state == "stopped"


class Crashing:
    """A runner whose GPU is broken: every job raises (as a real CUDA fault would)."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, job, report, should_stop):
        if job.generate.prompt == "bad input":
            raise JobError("init_image: not an image", retryable=False)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


async def test_a_worker_that_keeps_failing_is_flagged_and_logged(queue, engine, caplog):
    caplog.set_level(logging.WARNING, logger="engine.worker")
    stop = asyncio.Event()
    worker = Worker(queue, Crashing(engine), worker_id="gpu-bad", poll_s=0.05, status_every_s=0.1)
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        # Bad input first: it fails the job but says nothing about the worker.
        await queue.submit(tiny_job(prompt="bad input"))
        await until(lambda: _status(queue, lambda s: s.jobs_failed == 1))
        assert (await queue.workers())[0].failed_in_row == 0
        for i in range(FAILING_AFTER):
            await queue.submit(tiny_job(seed=i))
        await until(lambda: _status(queue, lambda s: s.failed_in_row == FAILING_AFTER))
        (status,) = await queue.workers()
        assert status.failing and status.jobs_failed == FAILING_AFTER + 1 and "illegal memory access" in status.last_error
        assert f"worker gpu-bad has failed {FAILING_AFTER} jobs in a row" in caplog.text
    finally:
        stop.set()
        await task


async def _status(queue, check) -> bool:
    seen = await queue.workers()
    return bool(seen) and check(seen[0])
