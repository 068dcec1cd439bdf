"""Worker fault tolerance, for real: worker processes killed with SIGKILL or
stopped with SIGTERM mid-job, and redis-server restarting under a live worker.

The workers are real `python -m engine.worker` subprocesses (or an in-process
`Worker`) running the tiny preset on the CPU against a real queue: an SQLite
file or a real redis-server (tests/redis_server.py). Leases are 2 s, so a
killed worker's job is requeued quickly. Nothing is faked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from engine.jobs import EventType, GenerateSpec, Job, JobEvent, JobKind, JobState
from engine.queue import JobQueue, open_queue
from engine.worker import Worker

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 2.0
READY_S = 90.0  # a cold worker imports torch and diffusers: seconds on a busy 2-core box
JOB_S = 60.0  # bound on any wait for jobs to move


# -- real worker processes --------------------------------------------------------------------


class WorkerProcess:
    """`python -m engine.worker` on the tiny preset, logging to a file."""

    def __init__(self, name: str, queue_url: str, data_dir: Path, log_dir: Path, drain_s: float | None = None):
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        args = [
            sys.executable, "-m", "engine.worker",
            "--queue", queue_url, "--preset", "tiny", "--device", "cpu",
            "--data-dir", str(data_dir), "--id", name, "--lease", str(LEASE_S),
        ]  # fmt: skip
        if drain_s is not None:
            args += ["--drain", str(drain_s)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        return f"worker {self.name} ready" in self.log()

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    async def wait_exit(self, timeout: float) -> int:
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.name} still running after {timeout}s:\n{self.log()[-3000:]}") from None


@pytest.fixture
def spawn(tiny_models: Path, tmp_path: Path):
    """Start worker processes; whatever is still running at the end is killed (by pid)."""
    started: list[WorkerProcess] = []

    def start(name: str, queue_url: str, drain_s: float | None = None) -> WorkerProcess:
        worker = WorkerProcess(name, queue_url, tiny_models, tmp_path, drain_s)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def logs(*workers: WorkerProcess) -> str:
    return "\n".join(f"--- worker {w.name} ---\n{w.log()[-2500:]}" for w in workers)


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str, *workers: WorkerProcess
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok = check()
        if not isinstance(ok, bool):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{logs(*workers)}")
        await asyncio.sleep(0.05)


async def wait_ready(*workers: WorkerProcess) -> None:
    await wait_until(lambda: all(w.ready() for w in workers), READY_S, "workers ready", *workers)


# -- jobs and their events ---------------------------------------------------------------------


def imagine(seed: int, size: int = 256, quality: float = 1.0, user: int = 1) -> Job:
    """A real tiny imagine job; 256x256 takes a second or more on one CPU thread,
    so a signal sent when it starts lands mid-job."""
    spec = GenerateSpec(prompt=f"a lighthouse, take {seed}", width=size, height=size, seed=seed, quality=quality)
    return Job(kind=JobKind.IMAGINE, user_id=user, guild_id=7, preset="tiny", generate=spec)


async def events_of(queue: JobQueue, jobs: list[Job]) -> dict[str, list[JobEvent]]:
    found: dict[str, list[JobEvent]] = {job.id: [] for job in jobs}
    for event in await queue.read_events({job.id: "" for job in jobs}):
        found[event.job_id].append(event)
    return found


def of_type(events: list[JobEvent], kind: EventType) -> list[JobEvent]:
    return [event for event in events if event.type is kind]


async def all_ended(queue: JobQueue, jobs: list[Job]) -> bool:
    for job in jobs:
        state = await queue.state(job.id)
        if state is None or not state.terminal:
            return False
    return True


async def first_started(queue: JobQueue, jobs: list[Job]) -> JobEvent | None:
    for events in (await events_of(queue, jobs)).values():
        started = of_type(events, EventType.STARTED)
        if started:
            return started[0]
    return None


async def sqlite_url(path: Path) -> str:
    """A queue in a new bot database: the bot creates it (engine.db.connect), workers only open it."""
    from engine.db import connect

    await (await connect(path)).close()
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def queue_url(request, tmp_path: Path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return await sqlite_url(tmp_path / "queue.db")


@pytest.fixture
async def queue(queue_url: str):
    """The bot's handle on the queue."""
    handle = await open_queue(queue_url)
    yield handle
    await handle.close()


# -- 1. kill -9 in the middle of a job ---------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_mid_job_every_job_is_done_exactly_once(queue: JobQueue, queue_url: str, spawn):
    a, b = spawn("A", queue_url), spawn("B", queue_url)
    await wait_ready(a, b)
    assert f"worker A ready on {queue.where}" in a.log()  # the queue it attached to (never a password)
    jobs = [imagine(1, quality=2), imagine(2, quality=2), imagine(3, size=128)]  # A and B claim the first two
    for job in jobs:
        await queue.submit(job)

    # The first worker seen running a job is the victim: SIGKILL it mid-job.
    started: list[JobEvent] = []

    async def one_started() -> bool:
        event = await first_started(queue, jobs)
        if event is not None:
            started.append(event)
        return event is not None

    await wait_until(one_started, JOB_S, "a job started", a, b)
    killed_job, victim_name = started[0].job_id, started[0].worker
    victim, survivor = (a, b) if victim_name == a.name else (b, a)
    assert await queue.state(killed_job) == JobState.RUNNING
    victim.signal(signal.SIGKILL)
    assert await victim.wait_exit(10) == -signal.SIGKILL
    assert not of_type((await events_of(queue, jobs))[killed_job], EventType.DONE), "the kill landed after the job"

    await wait_until(lambda: all_ended(queue, jobs), JOB_S, "all jobs ended", a, b)

    events = await events_of(queue, jobs)
    for job in jobs:
        done = of_type(events[job.id], EventType.DONE)
        assert len(done) == 1, f"job {job.id}: {[e.type for e in events[job.id]]}"
        assert not of_type(events[job.id], EventType.FAILED)
        assert await queue.state(job.id) == JobState.DONE
        assert done[0].result.worker == done[0].worker
        assert len(done[0].result.images) == 4
    # The killed try: its lease ran out, the job went back in the queue, and the survivor finished it.
    mine = events[killed_job]
    [retrying] = of_type(mine, EventType.RETRYING)
    assert retrying.worker == victim.name and "lease" in retrying.error
    assert [e.worker for e in of_type(mine, EventType.STARTED)] == [victim.name, survivor.name]
    assert of_type(mine, EventType.DONE)[0].worker == survivor.name
    # No job was finished by the dead worker, and the survivor is still serving.
    assert not [e for job in jobs for e in of_type(events[job.id], EventType.DONE) if e.worker == victim.name]
    assert survivor.proc.poll() is None


# -- 2. graceful SIGTERM -----------------------------------------------------------------------


@pytest.mark.slow
async def test_sigterm_finishes_the_job_in_hand_or_requeues_it_after_the_drain(tmp_path: Path, spawn, engine):
    """Two workers, each mid-job, get SIGTERM together. A (the default --drain of
    60 s) finishes its job and exits 0; C (--drain 0.1) gives its job back and
    exits 0, and another worker finishes that one. Neither takes a new job."""
    url = await sqlite_url(tmp_path / "queue.db")
    queue = await open_queue(url)
    try:
        a, c = spawn("A", url), spawn("C", url, drain_s=0.1)
        await wait_ready(a, c)
        jobs = [imagine(seed, quality=3) for seed in (1, 2)]
        for job in jobs:
            await queue.submit(job)
        running: dict[str, str] = {}  # worker -> the job it is running

        async def both_running() -> bool:
            running.clear()
            for job_id, events in (await events_of(queue, jobs)).items():
                if events and events[-1].type in (EventType.STARTED, EventType.PROGRESS):
                    running[events[-1].worker] = job_id
            return set(running) == {"A", "C"}

        await wait_until(both_running, JOB_S, "both workers running a job", a, c)
        a.signal(signal.SIGTERM)
        c.signal(signal.SIGTERM)
        assert await c.wait_exit(JOB_S) == 0, logs(c)
        assert await a.wait_exit(JOB_S) == 0, logs(a)
        assert "worker A stopped" in a.log() and "worker C stopped" in c.log()

        events = await events_of(queue, jobs)
        # A drained: its job is done, by A, on the first try.
        finished = events[running["A"]]
        assert [e.worker for e in of_type(finished, EventType.DONE)] == ["A"], [e.type for e in finished]
        assert not of_type(finished, EventType.RETRYING)
        assert await queue.state(running["A"]) == JobState.DONE
        # C's drain ran out: its job went back to the queue, and nobody took it since.
        requeued = events[running["C"]]
        assert not of_type(requeued, EventType.DONE), "C's job ended within its 0.1 s drain: make it longer"
        [retrying] = of_type(requeued, EventType.RETRYING)
        assert retrying.worker == "C" and "shut down" in retrying.error
        assert [e.worker for e in of_type(requeued, EventType.STARTED)] == ["C"]
        assert await queue.state(running["C"]) == JobState.QUEUED
        assert await queue.position(running["C"]) == 1

        # Another worker (here in this process, on the same tiny engine) finishes it.
        other = Worker(queue, engine, worker_id="B", lease_s=LEASE_S, poll_s=0.1)
        assert await other.run_once()
        requeued = (await events_of(queue, jobs))[running["C"]]
        assert [e.worker for e in of_type(requeued, EventType.STARTED)] == ["C", "B"]
        assert [e.worker for e in of_type(requeued, EventType.DONE)] == ["B"]
        assert await queue.state(running["C"]) == JobState.DONE
    finally:
        await queue.close()


# -- 3. redis-server restarts under a running worker -------------------------------------------


@pytest.mark.redis
@pytest.mark.slow
async def test_worker_survives_redis_restarts(tmp_path: Path, engine):
    from redis_server import RedisServer

    with RedisServer(tmp_path / "redis", appendonly=True) as server:
        queue = await open_queue(server.url())
        worker_queue = await open_queue(server.url())  # the worker's own connections
        # a lease long enough to outlast a restart on a busy machine: this test is about reconnecting
        worker = Worker(worker_queue, engine, worker_id="W", lease_s=10.0, poll_s=0.1)
        stop = asyncio.Event()
        serving = asyncio.create_task(worker.run_forever(stop, drain_s=30))
        try:
            # a. Restart while a job runs: heartbeats, progress and the result get through.
            during = imagine(1, quality=3)
            await queue.submit(during)
            await wait_until(lambda: first_started(queue, [during]), JOB_S, "job started")
            assert await queue.state(during.id) == JobState.RUNNING
            await asyncio.to_thread(server.restart)
            await wait_until(lambda: all_ended(queue, [during]), JOB_S, "job ended after the restart")

            # b. Down for a moment while the worker is idle, then a job submitted after the restart.
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(0.5)  # the idle worker's claims fail and retry meanwhile
            await asyncio.to_thread(server.start)
            after = imagine(2, size=128)
            await queue.submit(after)
            await wait_until(lambda: all_ended(queue, [after]), JOB_S, "job submitted after the restart ended")

            assert not serving.done(), "the worker loop ended"
            events = await events_of(queue, [during, after])
            for job in (during, after):
                assert [e.worker for e in of_type(events[job.id], EventType.DONE)] == ["W"], events[job.id]
                assert await queue.state(job.id) == JobState.DONE
            assert not of_type(events[during.id], EventType.RETRYING)  # the lease held across the restart
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)
            await worker_queue.close()
            await queue.close()


async def test_a_worker_started_before_redis_waits_for_it(tmp_path):
    """A GPU machine may boot before the Redis host: the worker waits, then connects."""
    from redis_server import RedisServer, require_redis_server

    from engine.worker import connect_patiently

    require_redis_server()
    server = RedisServer(tmp_path)  # not started yet
    stop = asyncio.Event()
    connecting = asyncio.create_task(connect_patiently(server.url(), stop))
    await asyncio.sleep(1.5)
    assert not connecting.done()
    await asyncio.to_thread(server.start)
    try:
        queue = await asyncio.wait_for(connecting, timeout=15)
        assert await queue.state("nothing") is None
        await queue.close()
    finally:
        server.stop()


# -- 4. a supervised local worker killed mid-job takes its job back when it restarts ------------


@pytest.mark.slow
async def test_a_restarted_local_worker_takes_back_its_job_at_once(tmp_path: Path, tiny_models: Path):
    """LocalWorkers (the bot's supervisor) runs `local-0`; SIGKILL mid-job. The
    supervisor restarts it under the same id, and the new process requeues and
    finishes the job within seconds of starting, not after the 30 s lease."""
    from bot.config import Settings
    from bot.workers import LocalWorkers

    (tmp_path / "models").symlink_to(tiny_models / "models", target_is_directory=True)
    settings = Settings(
        _env_file=None, DISCORD_TOKEN="unused", TASTEMAKER_DATA_DIR=str(tmp_path), TASTEMAKER_MODEL="tiny",
        TASTEMAKER_DEVICE="cpu", TASTEMAKER_WORKERS="1", TASTEMAKER_QUEUE="",
    )
    queue = await open_queue(await sqlite_url(settings.db_path))
    workers = LocalWorkers(settings)
    await workers.start()
    try:
        job = imagine(1, quality=3)
        await queue.submit(job)
        await wait_until(lambda: first_started(queue, [job]), READY_S, "local-0 started the job")
        victim = workers._procs[0]
        victim.send_signal(signal.SIGKILL)
        await wait_until(lambda: workers._procs[0] is not victim, 30, "the supervisor restarted local-0")
        await wait_until(lambda: all_ended(queue, [job]), READY_S + JOB_S, "the job ended")

        events = (await events_of(queue, [job]))[job.id]
        [retrying] = of_type(events, EventType.RETRYING)
        assert retrying.worker == "local-0" and "restarted" in retrying.error  # not "lease ... expired"
        [done] = of_type(events, EventType.DONE)
        assert [e.worker for e in of_type(events, EventType.STARTED)] == ["local-0", "local-0"]
        assert done.at - retrying.at < 5.0, f"done {done.at - retrying.at:.1f}s after the restart"
        assert await queue.state(job.id) == JobState.DONE
    finally:
        await workers.stop(timeout=10)
        await queue.close()


def test_a_worker_pointed_at_a_missing_database_says_so_in_one_line(tmp_path: Path):
    missing = tmp_path / "no-such.db"
    done = subprocess.run(
        [sys.executable, "-m", "engine.worker", "--queue", f"sqlite:///{missing}", "--preset", "tiny"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: no queue database at {missing}: start the bot first (it creates it), or fix --queue"]
    assert not missing.exists()
