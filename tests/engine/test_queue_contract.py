"""One contract for every JobQueue backend: SQLite (a file in tmp_path) and
Redis (a real redis-server, see tests/redis_server.py)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from engine.jobs import EventType, GenerateSpec, ImageOut, Job, JobKind, JobResult, JobState
from engine.queue import Followed, JobQueue, open_queue

LEASE = 0.2  # seconds; expiry tests sleep a little longer than this


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def queue_url(request, tmp_path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    from engine.db import connect

    await (await connect(tmp_path / "tastemaker.db")).close()  # the bot creates the database; queues open it
    return f"sqlite:///{tmp_path / 'tastemaker.db'}"


class Handles:
    """Opens extra handles on the same queue (other processes, other machines)."""

    def __init__(self, url: str):
        self.url = url
        self.opened: list[JobQueue] = []

    async def open(self, **options) -> JobQueue:
        if options:  # backend options (result_ttl_s)
            from engine.queue import SQLiteQueue
            from engine.redis_queue import RedisQueue

            if self.url.startswith("sqlite:///"):
                queue = await SQLiteQueue.open(self.url.removeprefix("sqlite:///"), **options)
            else:
                queue = await RedisQueue.open(self.url, **options)
        else:
            queue = await open_queue(self.url)
        self.opened.append(queue)
        return queue

    async def close(self) -> None:
        for queue in self.opened:
            await queue.close()


@pytest.fixture
async def handles(queue_url):
    opened = Handles(queue_url)
    yield opened
    await opened.close()


@pytest.fixture
async def queue(handles) -> JobQueue:
    return await handles.open()


def make_job(user: int = 1, guild: int | None = 100, max_tries: int = 3, prompt: str = "a cat", **spec) -> Job:
    return Job(
        kind=JobKind.IMAGINE,
        user_id=user,
        guild_id=guild,
        preset="tiny",
        generate=GenerateSpec(prompt=prompt, **spec),
        max_tries=max_tries,
    )


def make_result(tag: str = "ok", png: bytes = b"\x89PNG fake") -> JobResult:
    return JobResult(
        images=[ImageOut(png=png, embedding=[0.5, -1.0], seed=7, width=64, height=64, label=tag)],
        timings={"gpu": 0.01},
    )


async def events_of(queue: JobQueue, job_id: str) -> list:
    return await queue.read_events({job_id: ""})


async def drain(queue: JobQueue, worker: str = "w") -> list[str]:
    order = []
    while (job := await queue.claim(worker, 30)) is not None:
        order.append(job.id)
    return order


# -- the round trip -------------------------------------------------------------


async def test_submit_claim_complete_round_trip(queue):
    job = make_job()
    await queue.submit(job)
    assert await queue.state(job.id) == JobState.QUEUED
    assert await queue.position(job.id) == 1

    claimed = await queue.claim("w1", 30)
    assert claimed == job
    assert await queue.state(job.id) == JobState.RUNNING
    assert await queue.position(job.id) is None
    assert await queue.claim("w2", 30) is None

    await queue.progress(job.id, "w1", 25.0, b"jpeg-1")
    await queue.progress(job.id, "w1", 75.0, b"jpeg-2")
    assert await queue.heartbeat(job.id, "w1", 30)
    result = make_result()
    assert await queue.complete(job.id, "w1", result)
    assert await queue.state(job.id) == JobState.DONE

    events = await events_of(queue, job.id)
    assert [e.type for e in events] == [EventType.STARTED, EventType.PROGRESS, EventType.DONE]
    started, progress, done = events
    assert started.worker == "w1" and started.try_number == 1
    assert (progress.percent, progress.preview) == (75.0, b"jpeg-2")  # only the newest progress is kept
    assert done.result == result and done.worker == "w1"
    assert all(e.job_id == job.id and e.cursor for e in events)
    assert len({e.cursor for e in events}) == 3
    # A finished job cannot be finished again.
    assert not await queue.complete(job.id, "w1", result)
    assert not await queue.cancel(job.id)
    assert [e.type for e in await events_of(queue, job.id)].count(EventType.DONE) == 1


async def test_unknown_jobs(queue):
    assert await queue.claim("w", 30) is None
    assert await queue.state("nope") is None
    assert await queue.position("nope") is None
    assert not await queue.cancel("nope")
    assert not await queue.heartbeat("nope", "w", 30)
    assert not await queue.complete("nope", "w", make_result())
    await queue.progress("nope", "w", 10.0)
    assert await queue.read_events({"nope": ""}) == []
    assert await queue.read_events({}) == []
    await queue.forget("nope")
    assert await queue.requeue_expired() == 0


async def test_submit_twice_is_refused(queue):
    job = make_job()
    await queue.submit(job)
    with pytest.raises(ValueError):
        await queue.submit(job.model_copy(update={"max_tries": 9}))
    assert await drain(queue) == [job.id]


async def test_big_payloads_round_trip(queue):
    blob = random.Random(1).randbytes(2 * 1024 * 1024)
    job = make_job(init_image=blob, strength=0.5, conditioning=[0.1] * 1024)
    await queue.submit(job)
    claimed = await queue.claim("w", 30)
    assert claimed == job and claimed.generate.init_image == blob
    result = make_result(png=blob[::-1])
    assert await queue.complete(job.id, "w", result)
    (done,) = [e for e in await events_of(queue, job.id) if e.type == EventType.DONE]
    assert done.result.images[0].png == blob[::-1]


# -- atomic claim -----------------------------------------------------------------


async def test_claim_is_atomic_under_concurrency(handles):
    queue = await handles.open()
    jobs = [make_job(user=i % 7, guild=i % 3) for i in range(40)]
    for job in jobs:
        await queue.submit(job)
    workers = [await handles.open() for _ in range(8)]  # separate connections, like separate processes

    async def claimer(index: int, q: JobQueue) -> list[str]:
        got = []
        while (job := await q.claim(f"w{index}", 30)) is not None:
            got.append(job.id)
            await asyncio.sleep(0)
        return got

    claimed = [job_id for got in await asyncio.gather(*(claimer(i, q) for i, q in enumerate(workers))) for job_id in got]
    assert Counter(claimed) == Counter(job.id for job in jobs)  # every job exactly once
    for job in jobs:
        started = [e for e in await events_of(queue, job.id) if e.type == EventType.STARTED]
        assert len(started) == 1


# -- leases -------------------------------------------------------------------------


async def test_expired_lease_goes_to_another_worker_and_one_result_wins(handles):
    first, second = await handles.open(), await handles.open()
    job = make_job()
    await first.submit(job)
    assert (await first.claim("w1", LEASE)).id == job.id
    await asyncio.sleep(LEASE + 0.1)
    # No explicit requeue_expired(): claim() requeues expired leases itself.
    again = await second.claim("w2", 30)
    assert again is not None and again.id == job.id
    assert await second.state(job.id) == JobState.RUNNING

    assert not await first.heartbeat(job.id, "w1", 30)  # w1 lost it
    await first.progress(job.id, "w1", 50.0)  # ignored
    assert not await first.complete(job.id, "w1", make_result("w1"))
    assert await second.complete(job.id, "w2", make_result("w2"))
    assert not await first.complete(job.id, "w1", make_result("w1"))

    events = await events_of(first, job.id)
    assert [e.type for e in events] == [EventType.STARTED, EventType.RETRYING, EventType.STARTED, EventType.DONE]
    assert [e.try_number for e in events if e.type == EventType.STARTED] == [1, 2]
    assert events[1].error and "w1" in events[1].error
    assert events[-1].result.images[0].label == "w2"


async def test_heartbeat_keeps_the_lease(queue):
    job = make_job()
    await queue.submit(job)
    await queue.claim("w1", LEASE)
    for _ in range(4):
        await asyncio.sleep(LEASE / 2)
        assert await queue.heartbeat(job.id, "w1", LEASE)
    assert await queue.requeue_expired() == 0
    assert await queue.state(job.id) == JobState.RUNNING
    assert not await queue.heartbeat(job.id, "someone-else", LEASE)
    await asyncio.sleep(LEASE + 0.1)
    assert await queue.requeue_expired() == 1
    assert await queue.state(job.id) == JobState.QUEUED
    assert not await queue.heartbeat(job.id, "w1", LEASE)


async def test_each_worker_has_its_own_lease(queue):
    short, long = make_job(user=1), make_job(user=2)
    await queue.submit(short)
    await queue.submit(long)
    assert (await queue.claim("fast", LEASE)).id == short.id
    assert (await queue.claim("slow", 30)).id == long.id
    await asyncio.sleep(LEASE + 0.1)
    assert await queue.requeue_expired() == 1
    assert await queue.state(short.id) == JobState.QUEUED
    assert await queue.state(long.id) == JobState.RUNNING
    assert await queue.heartbeat(long.id, "slow", 30)


async def test_expired_past_max_tries_fails(queue):
    job = make_job(max_tries=1)
    await queue.submit(job)
    await queue.claim("w1", LEASE)
    await asyncio.sleep(LEASE + 0.1)
    assert await queue.requeue_expired() == 1
    assert await queue.state(job.id) == JobState.FAILED
    assert await queue.claim("w2", 30) is None
    events = await events_of(queue, job.id)
    assert [e.type for e in events] == [EventType.STARTED, EventType.FAILED]
    assert "expired" in events[-1].error


# -- failures -------------------------------------------------------------------------


async def test_retry_until_max_tries_then_failed(queue):
    job = make_job(max_tries=3)
    await queue.submit(job)
    for attempt in (1, 2, 3):
        claimed = await queue.claim(f"w{attempt}", 30)
        assert claimed is not None and claimed.id == job.id
        state = await queue.fail(job.id, f"w{attempt}", f"CUDA out of memory #{attempt}")
        assert state == (JobState.QUEUED if attempt < 3 else JobState.FAILED)
        assert await queue.state(job.id) == state
    assert await queue.claim("w4", 30) is None
    events = await events_of(queue, job.id)
    assert [e.type for e in events] == [
        EventType.STARTED, EventType.RETRYING,
        EventType.STARTED, EventType.RETRYING,
        EventType.STARTED, EventType.FAILED,
    ]  # fmt: skip
    assert [e.try_number for e in events] == [1, 1, 2, 2, 3, 3]
    assert events[-1].error == "CUDA out of memory #3"


async def test_fail_not_retryable_fails_at_once(queue):
    job = make_job(max_tries=5)
    await queue.submit(job)
    await queue.claim("w", 30)
    assert await queue.fail(job.id, "w", "prompt is banned", retryable=False) == JobState.FAILED
    assert await queue.claim("w", 30) is None
    events = await events_of(queue, job.id)
    assert [e.type for e in events] == [EventType.STARTED, EventType.FAILED]
    assert events[-1].error == "prompt is banned"


async def test_fail_by_a_worker_that_lost_the_job_changes_nothing(queue):
    job = make_job()
    await queue.submit(job)
    await queue.claim("w1", 30)
    assert await queue.fail(job.id, "w2", "not mine") == JobState.RUNNING
    assert await queue.state(job.id) == JobState.RUNNING
    assert await queue.complete(job.id, "w1", make_result())
    assert await queue.fail(job.id, "w1", "too late") == JobState.DONE


# -- cancel ---------------------------------------------------------------------------------


async def test_cancel_queued(queue):
    job, other = make_job(user=1), make_job(user=2)
    await queue.submit(job)
    await queue.submit(other)
    assert await queue.position(other.id) == 2
    assert await queue.cancel(job.id)
    assert await queue.state(job.id) == JobState.CANCELLED
    assert await queue.position(job.id) is None
    assert await queue.position(other.id) == 1
    assert not await queue.cancel(job.id)
    assert await drain(queue) == [other.id]
    assert [e.type for e in await events_of(queue, job.id)] == [EventType.CANCELLED]


async def test_cancel_running(queue):
    job = make_job()
    await queue.submit(job)
    await queue.claim("w", 30)
    assert await queue.cancel(job.id)
    assert await queue.state(job.id) == JobState.CANCELLED
    assert not await queue.heartbeat(job.id, "w", 30)
    await queue.progress(job.id, "w", 90.0)
    assert not await queue.complete(job.id, "w", make_result())
    assert await queue.fail(job.id, "w", "stopped") == JobState.CANCELLED
    assert await queue.requeue_expired() == 0
    assert await queue.claim("w", 30) is None
    assert [e.type for e in await events_of(queue, job.id)] == [EventType.STARTED, EventType.CANCELLED]


# -- fair order ------------------------------------------------------------------------------


async def test_light_members_are_not_starved_by_a_heavy_one(queue):
    heavy = [make_job(user=1) for _ in range(20)]
    light = [make_job(user=u) for u in (2, 3, 4)]
    for job in heavy + light:
        await queue.submit(job)
    order = await drain(queue)
    light_ids = {job.id for job in light}
    assert light_ids <= set(order[:4])
    assert [job_id for job_id in order if job_id not in light_ids] == [job.id for job in heavy]  # FIFO per member


async def test_one_worker_finishing_jobs_still_takes_turns(queue):
    """The default setup: one local worker; each job finishes before the next claim."""
    heavy = [make_job(user=1) for _ in range(10)]
    light = [make_job(user=u) for u in (2, 3, 4) for _ in range(2)]
    for job in heavy + light:
        await queue.submit(job)
    users = []
    while (job := await queue.claim("only", 30)) is not None:
        users.append(job.user_id)
        assert await queue.complete(job.id, "only", make_result())
    assert users == [1, 2, 3, 4, 1, 2, 3, 4] + [1] * 8


async def test_a_late_member_joins_the_next_round(queue):
    heavy = [make_job(user=1) for _ in range(10)]
    for job in heavy:
        await queue.submit(job)
    for _ in range(3):
        job = await queue.claim("w", 30)
        await queue.complete(job.id, "w", make_result())
    late = [make_job(user=2) for _ in range(2)]
    for job in late:
        await queue.submit(job)
    assert [await queue.position(job.id) for job in late] == [2, 4]  # not behind the 7 heavy jobs left
    # A member who was idle banks no credit: after the heavy member's 10 rounds
    # the next jobs of both alternate.
    await drain(queue)
    again = [make_job(user=2), make_job(user=2), make_job(user=1), make_job(user=1)]
    for job in again:
        await queue.submit(job)
    assert [job.user_id for job in [await queue.claim("w", 30) for _ in range(4)]] == [2, 1, 2, 1]


async def test_cancelling_queued_jobs_moves_the_members_later_jobs_up(queue):
    heavy = [make_job(user=1) for _ in range(5)]
    light = [make_job(user=2) for _ in range(5)]
    for job in heavy + light:
        await queue.submit(job)
    for job in heavy[1:4]:
        assert await queue.cancel(job.id)
    await queue.forget(light[1].id)
    assert await queue.position(heavy[4].id) == 3
    assert await drain(queue) == [heavy[0].id, light[0].id, heavy[4].id, light[2].id, light[3].id, light[4].id]


async def test_guilds_take_turns(queue):
    busy = [make_job(user=u, guild=100) for u in (1, 2, 3) for _ in range(5)]
    quiet = [make_job(user=9, guild=200) for _ in range(2)]
    dm = [make_job(user=8, guild=None)]
    for job in busy + quiet + dm:
        await queue.submit(job)
    order = await drain(queue)
    # Each round (one job per member) alternates guilds: the quiet guild and the
    # DM member are served second and third, not after the busy guild's members.
    assert order[1] == quiet[0].id and order[2] == dm[0].id
    assert order.index(quiet[1].id) == 6  # round 2: busy member 1, then the quiet guild
    assert Counter(order) == Counter(job.id for job in busy + quiet + dm)


class FairModel:
    """The fair order documented in engine/queue.py, written out plainly."""

    def __init__(self):
        self.claimed_round = 0
        self.seq = 0
        self.queued: dict[str, list] = {}  # id -> [round, turn, seq, user, group]
        self.keys: dict[str, list] = {}

    @staticmethod
    def group(job: Job) -> str:
        return str(job.guild_id) if job.guild_id is not None else f"dm:{job.user_id}"

    def submit(self, job: Job) -> None:
        mine = [k[0] for k in self.queued.values() if k[3] == job.user_id]
        round_ = max([self.claimed_round, *mine]) + 1
        turn = 1 + sum(1 for k in self.queued.values() if k[4] == self.group(job) and k[0] == round_)
        self.seq += 1
        self.queued[job.id] = self.keys[job.id] = [round_, turn, self.seq, job.user_id, self.group(job)]

    def order(self) -> list[str]:
        return sorted(self.queued, key=lambda job_id: self.queued[job_id][:3])

    def claim(self) -> str | None:
        if not self.queued:
            return None
        job_id = self.order()[0]
        self.claimed_round = max(self.claimed_round, self.queued.pop(job_id)[0])
        return job_id

    def requeue(self, job_id: str) -> None:
        self.queued[job_id] = self.keys[job_id]

    def drop_queued(self, job_id: str) -> None:
        gone = self.queued.pop(job_id)
        for key in self.queued.values():
            if key[3] == gone[3] and key[0] > gone[0]:
                key[0] -= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_position_and_claims_follow_the_documented_order(queue, seed):
    """Random submits, claims, completions, retries and cancels; after each step
    every position() and every claim matches FairModel."""
    rng = random.Random(seed)
    guild_of = {u: rng.choice([100, 200, 300, None]) for u in range(1, 8)}
    model, running, tries = FairModel(), [], Counter()
    for step in range(90):
        op = rng.random()
        if op < 0.45:
            user = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 7])  # user 1 is heavy
            job = make_job(user=user, guild=guild_of[user], max_tries=2)
            await queue.submit(job)
            model.submit(job)
        elif op < 0.7:
            claimed = await queue.claim("w", 30)
            expected = model.claim()
            assert (claimed and claimed.id) == expected, f"step {step}"
            if claimed:
                running.append(claimed.id)
                tries[claimed.id] += 1
        elif op < 0.8 and running:
            job_id = running.pop(rng.randrange(len(running)))
            assert await queue.complete(job_id, "w", make_result())
        elif op < 0.9 and running:
            job_id = running.pop(rng.randrange(len(running)))
            state = await queue.fail(job_id, "w", "flaky")
            if tries[job_id] < 2:
                assert state == JobState.QUEUED
                model.requeue(job_id)
            else:
                assert state == JobState.FAILED
        elif model.queued:
            job_id = rng.choice(list(model.queued))
            if rng.random() < 0.7:
                assert await queue.cancel(job_id)
            else:
                await queue.forget(job_id)
            model.drop_queued(job_id)
        expected_order = model.order()
        positions = [await queue.position(job_id) for job_id in expected_order]
        assert positions == list(range(1, len(expected_order) + 1)), f"step {step}"
    assert await drain(queue) == model.order()


# -- events ----------------------------------------------------------------------------------


async def test_read_events_resumes_from_cursors(handles):
    queue, worker = await handles.open(), await handles.open()
    a, b = make_job(user=1), make_job(user=2)
    await queue.submit(a)
    await queue.submit(b)
    assert await queue.read_events({a.id: "", b.id: ""}) == []
    await worker.claim("w", 30)
    await worker.claim("w", 30)
    await worker.progress(a.id, "w", 10.0)

    seen: list = []
    cursors = {a.id: "", b.id: ""}

    async def poll() -> list:
        new = await queue.read_events(cursors)
        for event in new:
            cursors[event.job_id] = event.cursor
        seen.extend(new)
        return new

    first = await poll()
    assert Counter(e.type for e in first) == Counter({EventType.STARTED: 2, EventType.PROGRESS: 1})
    assert await poll() == []  # nothing new: nothing repeated
    await worker.progress(a.id, "w", 60.0, b"preview")
    await worker.complete(b.id, "w", make_result("b"))
    second = await poll()
    assert [(e.job_id, e.type, e.percent) for e in second if e.job_id == a.id] == [(a.id, EventType.PROGRESS, 60.0)]
    assert [(e.job_id, e.type) for e in second if e.job_id == b.id] == [(b.id, EventType.DONE)]
    await worker.complete(a.id, "w", make_result("a"))
    third = await poll()
    assert [(e.job_id, e.type) for e in third] == [(a.id, EventType.DONE)]
    assert await poll() == []

    # Per job, in order, and no event twice.
    assert len({(e.job_id, e.cursor) for e in seen}) == len(seen)
    for job_id in (a.id, b.id):
        mine = [e for e in seen if e.job_id == job_id]
        assert mine[0].type == EventType.STARTED and mine[-1].type == EventType.DONE
        assert [e.at for e in mine] == sorted(e.at for e in mine)
    # A cursor in the middle resumes after it (the older progress row is gone).
    a_events = await events_of(queue, a.id)
    assert [e.type for e in a_events] == [EventType.STARTED, EventType.PROGRESS, EventType.DONE]
    assert await queue.read_events({a.id: a_events[0].cursor}) == a_events[1:]


async def test_read_events_while_more_jobs_are_followed(queue, monkeypatch):
    """The job pump adds a job to its cursors whenever one is posted, even while a read awaits."""
    jobs = [make_job(user=n) for n in range(8)]
    for job in jobs:
        await queue.submit(job)
    followed = Followed({job.id: "" for job in jobs[:4]}, open_ended=True)
    late = iter(jobs[4:])
    db = getattr(queue, "db", None)  # SQLite reads job by job, awaiting each: a job is posted during each
    if db is not None:
        read = db.execute_fetchall

        async def and_a_job_is_posted(*args):
            if (job := next(late, None)) is not None:
                followed.add(job.id)
            return await read(*args)

        monkeypatch.setattr(db, "execute_fetchall", and_a_job_is_posted)
    assert await queue.read_events(followed.cursors) == []
    for job in late:
        followed.add(job.id)
    assert set(followed.cursors) == {job.id for job in jobs}


async def test_forget(queue):
    done, waiting, running = make_job(user=1), make_job(user=2), make_job(user=3)
    await queue.submit(done)
    await queue.claim("w", 30)
    await queue.complete(done.id, "w", make_result())
    await queue.submit(running)
    await queue.claim("w", 30)
    await queue.submit(waiting)

    for job in (done, waiting, running):
        await queue.forget(job.id)
        assert await queue.state(job.id) is None
        assert await events_of(queue, job.id) == []
    assert await queue.position(waiting.id) is None
    assert await queue.claim("w", 30) is None
    assert not await queue.heartbeat(running.id, "w", 30)
    assert not await queue.complete(running.id, "w", make_result())
    # Forgotten ids are unknown again and the queue still works.
    fresh = make_job(user=3)
    await queue.submit(fresh)
    assert await drain(queue) == [fresh.id]


async def test_finished_jobs_expire_if_never_forgotten(handles):
    queue = await handles.open(result_ttl_s=0.2)
    job, live = make_job(user=1), make_job(user=2)
    await queue.submit(job)
    await queue.claim("w", 30)
    await queue.complete(job.id, "w", make_result())
    await queue.submit(live)
    await asyncio.sleep(0.35)
    await queue.requeue_expired()
    assert await queue.state(job.id) is None
    assert await events_of(queue, job.id) == []
    assert await queue.state(live.id) == JobState.QUEUED  # only finished jobs expire


# -- Redis only ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_survives_a_server_restart(tmp_path):
    from redis_server import RedisServer

    from engine.redis_queue import RedisQueue

    with RedisServer(tmp_path / "redis", appendonly=True) as server:
        queue = await RedisQueue.open(server.url())
        try:
            running, waiting = make_job(user=1), make_job(user=2)
            await queue.submit(running)
            await queue.submit(waiting)
            assert (await queue.claim("w", 30)).id == running.id
            await queue.progress(running.id, "w", 40.0)

            server.restart()  # the client's pooled connection is now dead

            assert await queue.heartbeat(running.id, "w", 30)
            assert await queue.position(waiting.id) == 1
            assert (await queue.claim("w2", 30)).id == waiting.id
            assert await queue.complete(running.id, "w", make_result())
            assert await queue.complete(waiting.id, "w2", make_result())
            types = [e.type for e in await events_of(queue, running.id)]
            assert types == [EventType.STARTED, EventType.PROGRESS, EventType.DONE]

            server.stop()  # down for a moment: commands wait and retry
            later = make_job(user=3)
            restart = asyncio.get_running_loop().run_in_executor(None, _start_after, server, 0.3)
            await queue.submit(later)
            await restart
            assert (await queue.claim("w", 30)).id == later.id
        finally:
            await queue.close()


def _start_after(server, delay: float) -> None:
    import time

    time.sleep(delay)
    server.start()


@pytest.mark.redis
async def test_redis_keeps_nothing_behind(redis_url):
    """Finished tries leave no pending entries, consumers or counters behind."""
    from engine.redis_queue import RedisQueue

    queue = await RedisQueue.open(redis_url, result_ttl_s=60)
    try:
        jobs = [make_job(user=u % 3) for u in range(6)]
        for job in jobs:
            await queue.submit(job)
        await queue.claim("a", 30)
        await queue.claim("b", LEASE)
        await queue.claim("c", 30)
        await queue.claim("d", 30)
        await queue.complete(jobs[0].id, "a", make_result())
        await queue.fail(jobs[2].id, "c", "no", retryable=False)
        await queue.cancel(jobs[3].id)
        await asyncio.sleep(LEASE + 0.1)
        assert await queue.requeue_expired() == 1
        await queue.cancel(jobs[4].id)
        await queue.forget(jobs[5].id)
        while (job := await queue.claim("e", 30)) is not None:
            await queue.complete(job.id, "e", make_result())
        r, p = queue.r, queue.prefix
        assert (await r.xpending(f"{p}work", "workers"))["pending"] == 0
        assert await r.xlen(f"{p}work") == 0
        assert await r.xinfo_consumers(f"{p}work", "workers") == []
        assert [key async for key in r.scan_iter(f"{p}[mg]q:*")] == [] and not await r.exists(f"{p}order")
        assert 0 < await r.pttl(f"{p}job:{jobs[0].id}") <= 60_000
        assert 0 < await r.pttl(f"{p}ev:{jobs[0].id}") <= 60_000
    finally:
        await queue.close()


# -- following and waking ----------------------------------------------------------------------


async def collect(queue: JobQueue, followed: Followed, until, idle_s: float = 0.05) -> list:
    seen = []
    async for batch in queue.follow(followed, idle_s=idle_s):
        seen.extend(batch)
        if until(seen):
            break
    return seen


async def test_follow_yields_each_jobs_events_once_and_ends_after_the_terminal_ones(handles):
    queue, worker = await handles.open(), await handles.open()
    a, b = make_job(user=1), make_job(user=2)
    await queue.submit(a)
    await queue.submit(b)
    followed = Followed({a.id: "", b.id: ""})
    batches: list[list] = []

    async def follow() -> None:
        async for batch in queue.follow(followed, idle_s=0.05):
            batches.append(batch)

    following = asyncio.create_task(follow())
    await worker.claim("w", 30)
    await worker.progress(a.id, "w", 50.0)
    await worker.claim("w", 30)
    await worker.complete(b.id, "w", make_result("b"))
    await worker.complete(a.id, "w", make_result("a"))
    await asyncio.wait_for(following, 5)  # both ended: the follower ends by itself
    seen = [e for batch in batches for e in batch]
    assert [e.type for e in seen if e.job_id == a.id] in (
        [EventType.STARTED, EventType.PROGRESS, EventType.DONE],
        [EventType.STARTED, EventType.DONE],  # progress replaced before it was read: only the newest is kept
    )
    assert [e.type for e in seen if e.job_id == b.id] == [EventType.STARTED, EventType.DONE]
    assert followed.cursors == {}
    assert [] in batches or len(batches) >= 2  # idle batches come between events


async def test_follow_picks_up_added_jobs_and_idles_with_empty_batches(handles):
    queue, worker = await handles.open(), await handles.open()
    followed = Followed(open_ended=True)
    batches: list[list] = []

    async def follow() -> None:
        async for batch in queue.follow(followed, idle_s=0.05):
            batches.append(batch)

    following = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.2)
        assert batches and all(batch == [] for batch in batches)  # open-ended: idle ticks, no end
        job = make_job()
        await queue.submit(job)
        followed.add(job.id)
        await worker.claim("w", 30)
        await worker.complete(job.id, "w", make_result())
        for _ in range(100):
            if any(e.type == EventType.DONE for batch in batches for e in batch):
                break
            await asyncio.sleep(0.02)
        assert [e.type for batch in batches for e in batch] == [EventType.STARTED, EventType.DONE]
        assert not following.done() and followed.cursors == {}
    finally:
        following.cancel()


async def test_a_follower_and_an_idle_worker_are_woken_not_polled(handles):
    """Another handle's writes reach a blocked follower and an idle worker at once:
    both wait far longer (10 s) than the test allows."""
    bot, worker = await handles.open(), await handles.open()
    job = make_job()
    followed = Followed({job.id: ""})

    async def first_batch() -> list:
        async for batch in bot.follow(followed, idle_s=10):
            return batch
        return []

    assert await worker.claim("w", 30) is None
    waiting = asyncio.create_task(worker.wait_for_work(10))
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.submit(job)
    await asyncio.wait_for(waiting, 2)
    assert loop.time() - started < 1.0
    following = asyncio.create_task(first_batch())
    await asyncio.sleep(0.1)
    started = loop.time()
    assert (await worker.claim("w", 30)).id == job.id
    batch = await asyncio.wait_for(following, 2)
    assert loop.time() - started < 1.0
    assert [e.type for e in batch] == [EventType.STARTED]


async def test_a_restarted_worker_releases_its_unfinished_try_at_once(queue):
    job, other = make_job(user=1), make_job(user=2)
    await queue.submit(job)
    await queue.submit(other)
    assert (await queue.claim("local-0", 30)).id == job.id
    assert (await queue.claim("local-1", 30)).id == other.id
    assert await queue.release("local-0") == 1  # local-0 came back: its try was cut short
    assert await queue.state(job.id) == JobState.QUEUED
    assert await queue.state(other.id) == JobState.RUNNING  # another worker's job is left alone
    assert not await queue.heartbeat(job.id, "local-0", 30)
    assert (await queue.claim("local-0", 30)).id == job.id
    assert await queue.complete(job.id, "local-0", make_result())
    events = await events_of(queue, job.id)
    assert [e.type for e in events] == [EventType.STARTED, EventType.RETRYING, EventType.STARTED, EventType.DONE]
    assert "restarted" in events[1].error
    assert await queue.release("local-0") == 0
    assert await queue.release("never-seen") == 0


async def test_a_missing_sqlite_database_is_refused(tmp_path):
    missing = tmp_path / "nope" / "tastemaker.db"
    with pytest.raises(ValueError, match="no queue database at"):
        await open_queue(f"sqlite:///{missing}")
    assert not missing.exists() and not missing.parent.exists()


async def test_where_names_the_queue_without_a_password(queue, queue_url):
    assert queue.where.split("://")[0] == queue_url.split("://")[0]
    import redis.asyncio as aioredis

    from engine.redis_queue import RedisQueue

    url = "redis://:s3cret@gpu-host:6380/2"
    hidden = RedisQueue(aioredis.Redis.from_url(url), url=url)  # never connects
    assert "s3cret" not in hidden.where and "gpu-host:6380/2" in hidden.where
    await hidden.close()


# -- worker health ------------------------------------------------------------------


async def test_worker_reports_are_stored_updated_and_listed_newest_first(handles):
    from engine.queue_contract import FAILING_AFTER, WorkerStatus

    bot, gpu1, gpu2 = await handles.open(), await handles.open(), await handles.open()
    assert await bot.workers() == []
    await gpu1.report_worker(WorkerStatus(worker_id="gpu-1", state="idle", preset="sdxl-lightning",
                                          gpu_memory_used=9 << 30, gpu_memory_total=80 << 30, started_at=1.0))
    await asyncio.sleep(0.01)
    await gpu2.report_worker(WorkerStatus(worker_id="gpu-2", state="busy", preset="fast", jobs_done=3))
    seen = await bot.workers()
    assert [w.worker_id for w in seen] == ["gpu-2", "gpu-1"]
    assert seen[1].preset == "sdxl-lightning" and seen[1].gpu_memory_used == 9 << 30 and seen[0].jobs_done == 3
    assert seen[0].last_seen >= seen[1].last_seen > 0 and not seen[0].failing
    # A new report replaces the worker's old one (no second row); failures in a row flag it.
    await asyncio.sleep(0.01)
    await gpu1.report_worker(WorkerStatus(worker_id="gpu-1", state="idle", preset="sdxl-lightning", jobs_failed=FAILING_AFTER,
                                          failed_in_row=FAILING_AFTER, last_error="out of GPU memory"))
    seen = await bot.workers()
    assert [w.worker_id for w in seen] == ["gpu-1", "gpu-2"]
    assert seen[0].failing and seen[0].last_error == "out of GPU memory" and seen[0].gpu_memory_used is None


async def test_workers_not_heard_from_for_a_day_are_dropped(handles, monkeypatch):
    from engine import queue_contract, queue as sqlite_queue, redis_queue
    from engine.queue_contract import WorkerStatus

    queue = await handles.open()
    # A TTL of 0.2 s stands in for a day, in both backends.
    monkeypatch.setattr(sqlite_queue, "WORKER_TTL_S", 0.2)
    monkeypatch.setattr(redis_queue, "WORKER_TTL_S", 0.2)
    monkeypatch.setattr(queue_contract, "WORKER_TTL_S", 0.2)
    await queue.report_worker(WorkerStatus(worker_id="gone"))
    assert [w.worker_id for w in await queue.workers()] == ["gone"]
    await asyncio.sleep(0.4)
    await queue.report_worker(WorkerStatus(worker_id="here"))
    assert [w.worker_id for w in await queue.workers()] == ["here"]
