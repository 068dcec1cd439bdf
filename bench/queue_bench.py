"""Queue throughput, latency and fairness: SQLite and Redis side by side.

    .venv/bin/python bench/queue_bench.py            # full run (~15 s)
    .venv/bin/python bench/queue_bench.py --quick    # smoke run (< 20 s)
    .venv/bin/python bench/queue_bench.py --redis-url redis://host:6379/15   # an existing Redis (FLUSHDB!)

Real queue backends and the real worker loop (engine.worker.Worker, each worker
with its own queue connection, as separate processes would have); the only
fake is the generator, which sleeps 5-20 ms and returns a tiny result. Without
--redis-url a throwaway redis-server is started on a free port (Redis is
skipped when redis-server is not installed).

Three runs per backend:
  throughput  a backlog of jobs from 12 members, W workers: jobs/s until drained,
              and as a share of the ideal W / mean generator time.
  latency     jobs arrive one by one at about half the capacity (Poisson):
              submit -> claim (STARTED event) p50 / p99. With idle workers this
              is mostly the worker's poll interval (--poll, 50 ms).
  fairness    one heavy member queues 50 jobs, then 5 light members queue 5 each.
              Jain's index J = (sum x)^2 / (n sum x^2) of jobs finished per member
              over the first 30 completions (1.0: each member got 5; plain FIFO
              gives 1/6), and the mean completion rank of the light members' jobs
              (round robin 16; FIFO 63).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from redis_server import RedisServer  # noqa: E402

from engine.db import connect  # noqa: E402
from engine.jobs import EventType, GenerateSpec, ImageOut, Job, JobKind, JobResult  # noqa: E402
from engine.queue import JobQueue, open_queue  # noqa: E402
from engine.worker import Worker  # noqa: E402

HEAVY_JOBS, LIGHT_MEMBERS, LIGHT_JOBS, FAIR_WINDOW = 50, 5, 5, 30


class FakeGenerator:
    """The benchmark's only fake: 5-20 ms of "GPU" and a tiny result."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.done: list[tuple[str, int, float]] = []  # job id, member, finish time

    def run(self, job: Job, report, should_stop) -> JobResult:
        with self.lock:
            seconds = self.rng.uniform(0.005, 0.020)
        report(50.0, None)
        time.sleep(seconds)
        with self.lock:
            self.done.append((job.id, job.user_id, time.time()))
        return JobResult(
            images=[ImageOut(png=b"\x89PNG tiny", embedding=[0.0] * 8, seed=job.generate.seed, width=8, height=8)],
            timings={"gpu": seconds},
        )


def make_job(user: int, guild: int = 1) -> Job:
    return Job(kind=JobKind.IMAGINE, user_id=user, guild_id=guild, preset="tiny", generate=GenerateSpec(prompt="x"))


@dataclass
class Pool:
    """W workers, each with its own queue connection, running Worker.run_forever."""

    url: str
    count: int
    poll_s: float
    generator: FakeGenerator = field(default_factory=FakeGenerator)
    queues: list[JobQueue] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> float:
        """Connect every worker, then start them all; returns the start time."""
        for _ in range(self.count):
            self.queues.append(await open_queue(self.url))
        started = time.time()
        for i, queue in enumerate(self.queues):
            worker = Worker(queue, self.generator, worker_id=f"bench-{i}", lease_s=30.0, poll_s=self.poll_s)
            self.tasks.append(asyncio.create_task(worker.run_forever(self.stop)))
        return started

    async def wait_done(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.generator.done) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.generator.done)}/{n} jobs done in {timeout}s")
            await asyncio.sleep(0.002)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for queue in self.queues:
            await queue.close()


async def bench_throughput(url: str, workers: int, jobs: int, poll_s: float) -> dict:
    queue = await open_queue(url)
    for i in range(jobs):
        await queue.submit(make_job(user=i % 12, guild=i % 3))
    pool = Pool(url, workers, poll_s)
    t0 = await pool.start()
    await pool.wait_done(jobs)
    elapsed = max(t for _, _, t in pool.generator.done) - t0
    await pool.close()
    await queue.close()
    rate = jobs / elapsed
    return {"jobs/s": rate, "of ideal": rate / (workers / 0.0125)}


async def bench_latency(url: str, workers: int, jobs: int, rate: float, poll_s: float) -> dict:
    queue = await open_queue(url)
    pool = Pool(url, workers, poll_s)
    await pool.start()
    rng = random.Random(1)
    submitted: dict[str, float] = {}
    for i in range(jobs):
        await asyncio.sleep(rng.expovariate(rate))
        job = make_job(user=i % 12, guild=i % 3)
        submitted[job.id] = time.time()
        await queue.submit(job)
    await pool.wait_done(jobs)
    await pool.close()
    events = await queue.read_events({job_id: "" for job_id in submitted})
    waits = sorted(e.at - submitted[e.job_id] for e in events if e.type == EventType.STARTED)
    await queue.close()
    return {"p50 ms": 1000 * percentile(waits, 50), "p99 ms": 1000 * percentile(waits, 99)}


async def bench_fairness(url: str, workers: int, poll_s: float) -> dict:
    queue = await open_queue(url)
    heavy = 1
    light = list(range(2, 2 + LIGHT_MEMBERS))
    for _ in range(HEAVY_JOBS):
        await queue.submit(make_job(user=heavy))
    for user in light:
        for _ in range(LIGHT_JOBS):
            await queue.submit(make_job(user=user))
    total = HEAVY_JOBS + LIGHT_MEMBERS * LIGHT_JOBS
    pool = Pool(url, workers, poll_s)
    await pool.start()
    await pool.wait_done(total)
    await pool.close()
    await queue.close()
    order = [user for _, user, _ in sorted(pool.generator.done, key=lambda d: d[2])]
    served = [order[:FAIR_WINDOW].count(user) for user in [heavy, *light]]
    ranks = [rank for rank, user in enumerate(order, 1) if user != heavy]
    return {"jain": jain(served), "light rank": statistics.fmean(ranks), "heavy share": served[0] / FAIR_WINDOW}


def jain(x: list[float]) -> float:
    return sum(x) ** 2 / (len(x) * sum(v * v for v in x)) if any(x) else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    k = (len(values) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def fresh(kind: str, base: str, n: int) -> str:
    """A clean queue URL for one run."""
    if kind == "sqlite":
        path = Path(base) / f"run{n}" / "tastemaker.db"
        await (await connect(path)).close()  # the bot creates the database; the queue only opens it
        return f"sqlite:///{path}"
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(base)
    await client.flushdb()
    await client.aclose()
    return base


async def main(args: argparse.Namespace) -> None:
    quick = args.quick
    workers = args.workers or (2 if quick else 4)
    backlog = 120 if quick else 600
    arrivals = 60 if quick else 300
    tmp = tempfile.mkdtemp(prefix="queue-bench-")
    backends = {"sqlite": tmp}
    server = None
    if args.redis_url:
        backends["redis"] = args.redis_url
    elif shutil.which("redis-server"):
        server = RedisServer(Path(tmp) / "redis").start()
        backends["redis"] = server.url()
    else:
        print("redis-server not found: Redis column skipped", file=sys.stderr)
    rows: dict[str, dict[str, float]] = {}
    started = time.time()
    try:
        for kind, base in backends.items():
            capacity = workers / 0.0125
            tp = await bench_throughput(await fresh(kind, base, 1), workers, backlog, args.poll)
            lat = await bench_latency(await fresh(kind, base, 2), workers, arrivals, 0.5 * capacity, args.poll)
            fair = await bench_fairness(await fresh(kind, base, 3), workers, args.poll)
            rows[kind] = {
                "throughput, jobs/s": tp["jobs/s"],
                "  share of ideal (W / 12.5 ms)": tp["of ideal"],
                "queue latency p50, ms": lat["p50 ms"],
                "queue latency p99, ms": lat["p99 ms"],
                f"Jain's index, first {FAIR_WINDOW} done (FIFO 0.17)": fair["jain"],
                f"heavy member's share of them (fair {1 / 6:.2f})": fair["heavy share"],
                "mean completion rank, light jobs (FIFO 63)": fair["light rank"],
            }
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    import sqlite3

    import redis

    print(
        f"\nqueue bench: {workers} workers (engine.worker.Worker, poll {args.poll * 1000:.0f} ms), fake generator "
        f"5-20 ms; backlog {backlog}, arrivals {arrivals}, fairness {HEAVY_JOBS}+{LIGHT_MEMBERS}x{LIGHT_JOBS} jobs"
    )
    print(f"SQLite {sqlite3.sqlite_version}, redis-py {redis.__version__}" + (f", {_redis_version()}" if server else ""))
    width = max(len(name) for row in rows.values() for name in row)
    print(f"{'':<{width}}  " + "".join(f"{kind:>10}" for kind in rows))
    for name in next(iter(rows.values())):
        print(f"{name:<{width}}  " + "".join(f"{row[name]:>10.2f}" for row in rows.values()))
    print(f"({time.time() - started:.1f} s)")


def _redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return next((part.replace("v=", "redis-server ") for part in out.split() if part.startswith("v=")), "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 20 s)")
    parser.add_argument("--workers", type=int, default=0, help="workers (default 4, --quick 2)")
    parser.add_argument("--poll", type=float, default=0.05, help="worker poll interval when idle, seconds")
    parser.add_argument("--redis-url", default="", help="use this Redis instead of a throwaway server (it is FLUSHED)")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
