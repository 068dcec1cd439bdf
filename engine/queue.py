"""JobQueue: jobs down to workers, events up to the bot.

One interface, two backends: SQLite (the default, a table in the bot's
database) and Redis Streams (engine/redis_queue.py, for workers on other
machines). Both pass tests/engine/test_queue_contract.py.

Job states: queued -> running -> done | failed | cancelled. A running job
holds a lease that its worker renews with heartbeat(); an expired lease puts
the job back in the queue (or fails it after max_tries).

Order is fair: round-robin across members, and across guilds within a round,
not global FIFO (start-time fair queuing with one unit per job). Both backends
use the same order, so position() means the same thing. Each job gets a key
(round, turn, seq) when it is queued:

    round = 1 + max(R, the member's highest queued round), where R is the
            highest round claimed so far: a member's jobs take consecutive
            rounds, and a member with nothing queued joins the next open round
            (idle time banks no credit);
    turn  = 1 + the guild's queued jobs already in that round, so guilds
            alternate within a round (a job outside a guild counts as the
            member's own guild);
    seq   = arrival.

claim() takes the smallest key. One heavy member with 50 jobs therefore gets
one job per round like everyone else, whether jobs finish in between or not.
Keys do not change when jobs are claimed or finish, so position() is exactly
the claim order until a job arrives (only into rounds above R), is cancelled
(the member's later jobs move up one round) or is retried (it keeps its key,
so it goes back to the front).

Clocks: SQLite leases use the wall clock (time.time(), shared by processes on
one machine); Redis leases use the Redis server's clock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping

from engine.db import transaction
from engine.jobs import EventType, Job, JobEvent, JobResult, JobState

log = logging.getLogger("engine.queue")

RESULT_TTL_S = 24 * 3600.0  # finished jobs nobody forgot are dropped after this


class JobQueue(ABC):
    # -- bot side -------------------------------------------------------------

    @abstractmethod
    async def submit(self, job: Job) -> None:
        """Queue a job. Its id must be new."""

    @abstractmethod
    async def position(self, job_id: str) -> int | None:
        """1 when the job is next to be claimed; None once it is no longer queued."""

    @abstractmethod
    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job. A running job's worker learns it at its
        next heartbeat. False when the job had already ended."""

    @abstractmethod
    async def state(self, job_id: str) -> JobState | None:
        """None for an unknown (or forgotten) job."""

    @abstractmethod
    async def read_events(self, cursors: Mapping[str, str]) -> list[JobEvent]:
        """New events of each job after its cursor ("" means from the start),
        in order per job. Never blocks."""

    @abstractmethod
    async def forget(self, job_id: str) -> None:
        """The bot has stored the outcome: drop the job's events and result.
        Forgetting a job that has not ended drops it too (its worker's next
        heartbeat returns False)."""

    # -- worker side ----------------------------------------------------------

    @abstractmethod
    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        """Atomically take the next job in fair order, or None. Counts a try,
        writes a STARTED event and requeues expired leases first."""

    @abstractmethod
    async def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Renew the lease. False when the worker must stop: it lost the lease
        or the job was cancelled."""

    @abstractmethod
    async def progress(self, job_id: str, worker_id: str, percent: float, preview: bytes | None = None) -> None:
        """A PROGRESS event; only the newest one of a job is kept. Ignored when
        this worker no longer holds the job."""

    @abstractmethod
    async def complete(self, job_id: str, worker_id: str, result: JobResult) -> bool:
        """Store the result. False (and nothing stored) when this worker no
        longer holds the job, so a member sees exactly one result."""

    @abstractmethod
    async def fail(self, job_id: str, worker_id: str, error: str, retryable: bool = True) -> JobState:
        """Queued again (RETRYING event) while tries remain and retryable, else
        failed (FAILED event). When this worker no longer holds the job nothing
        changes and the job's current state is returned (CANCELLED once forgotten)."""

    @abstractmethod
    async def requeue_expired(self) -> int:
        """Requeue (or fail, past max_tries) running jobs whose lease expired."""

    async def close(self) -> None:
        return None


async def open_queue(url: str) -> JobQueue:
    """`sqlite:///path/to/tastemaker.db` or `redis://host:6379/0`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from engine.redis_queue import RedisQueue

        return await RedisQueue.open(url)
    if url.startswith("sqlite:///"):
        return await SQLiteQueue.open(url.removeprefix("sqlite:///"))
    raise ValueError(f"unknown queue URL {url!r}: use sqlite:///PATH or redis://HOST:PORT/DB")



def guild_key(job: Job) -> str:
    """The fairness group of a job: its guild, or the member alone outside guilds."""
    return str(job.guild_id) if job.guild_id is not None else f"dm:{job.user_id}"


def log_change(job_id: str, change: str, **timings: float | None) -> None:
    """One log line per state change, with its timings in seconds."""
    parts = [f"{name} {value:.2f}s" for name, value in timings.items() if value is not None]
    log.info("job %s %s%s", job_id, change, f" ({', '.join(parts)})" if parts else "")


def _since(start: float | None, end: float) -> float | None:
    return None if start is None else max(0.0, end - start)


class SQLiteQueue(JobQueue):
    """SQLite backend: tables queue_jobs / queue_events (data/migrations/0002_queue.sql)
    in the bot's database, WAL mode, its own connection per process.

    Every write runs in engine.db.transaction (BEGIN IMMEDIATE), so a claim is
    atomic across the bot and any number of local worker processes. Leases are
    wall-clock deadlines (time.time()). Finished jobs that were never forgotten
    are dropped after `result_ttl_s`, as the Redis backend expires them.
    """

    def __init__(self, db, *, result_ttl_s: float = RESULT_TTL_S):
        self.db = db
        self.result_ttl_s = result_ttl_s
        self._purged_at = 0.0
        self._purge_every_s = min(60.0, result_ttl_s)

    @classmethod
    async def open(cls, path: str, *, result_ttl_s: float = RESULT_TTL_S) -> SQLiteQueue:
        from engine.db import connect

        return cls(await connect(path), result_ttl_s=result_ttl_s)

    async def close(self) -> None:
        await self.db.close()

    async def _event(self, event: JobEvent) -> None:
        if event.type == EventType.PROGRESS:
            await self.db.execute(
                "DELETE FROM queue_events WHERE job_id = ? AND type = 'progress'", (event.job_id,)
            )
        await self.db.execute(
            "INSERT INTO queue_events (job_id, type, event) VALUES (?, ?, ?)",
            (event.job_id, event.type.value, event.to_json()),
        )

    # -- bot side -------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        now = time.time()
        group = guild_key(job)
        async with transaction(self.db):
            ((claimed,),) = await self.db.execute_fetchall("SELECT round FROM queue_clock")
            ((last,),) = await self.db.execute_fetchall(
                "SELECT MAX(round) FROM queue_jobs WHERE state = 'queued' AND user_id = ?", (job.user_id,)
            )
            round_ = max(claimed, last or 0) + 1
            ((ahead,),) = await self.db.execute_fetchall(
                "SELECT COUNT(*) FROM queue_jobs WHERE state = 'queued' AND guild_key = ? AND round = ?",
                (group, round_),
            )
            try:
                await self.db.execute(
                    "INSERT INTO queue_jobs (id, user_id, guild_key, round, turn, state, job, max_tries,"
                    " submitted_at, queued_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                    (job.id, job.user_id, group, round_, ahead + 1, job.to_json(), job.max_tries, now, now),
                )
            except sqlite3.IntegrityError as error:
                raise ValueError(f"job {job.id} already exists") from error
        log_change(job.id, f"queued: {job.kind} for user {job.user_id} in {group}, round {round_}")

    async def position(self, job_id: str) -> int | None:
        async with transaction(self.db, write=False):
            rows = await self.db.execute_fetchall(
                "SELECT 1 + (SELECT COUNT(*) FROM queue_jobs AS q WHERE q.state = 'queued'"
                " AND (q.round, q.turn, q.seq) < (t.round, t.turn, t.seq))"
                " FROM queue_jobs AS t WHERE t.id = ? AND t.state = 'queued'",
                (job_id,),
            )
        return int(rows[0][0]) if rows else None

    async def cancel(self, job_id: str) -> bool:
        now = time.time()
        async with transaction(self.db):
            rows = await self.db.execute_fetchall(
                "SELECT state, user_id, round, queued_at, started_at FROM queue_jobs WHERE id = ?", (job_id,)
            )
            row = rows[0] if rows else None
            if row is None or JobState(row["state"]).terminal:
                return False
            if row["state"] == JobState.QUEUED:
                await self._close_gap(row["user_id"], row["round"])
            await self.db.execute(
                "UPDATE queue_jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL WHERE id = ?",
                (now, job_id),
            )
            await self._event(JobEvent(job_id=job_id, type=EventType.CANCELLED, at=now))
        if row["state"] == JobState.RUNNING:
            log_change(job_id, "cancelled while running", ran=_since(row["started_at"], now))
        else:
            log_change(job_id, "cancelled while queued", waited=_since(row["queued_at"], now))
        return True

    async def state(self, job_id: str) -> JobState | None:
        async with transaction(self.db, write=False):
            rows = await self.db.execute_fetchall("SELECT state FROM queue_jobs WHERE id = ?", (job_id,))
        return JobState(rows[0][0]) if rows else None

    async def read_events(self, cursors: Mapping[str, str]) -> list[JobEvent]:
        events: list[JobEvent] = []
        async with transaction(self.db, write=False):  # never an event of a transaction that may roll back
            for job_id, cursor in cursors.items():
                rows = await self.db.execute_fetchall(
                    "SELECT id, event FROM queue_events WHERE job_id = ? AND id > ? ORDER BY id",
                    (job_id, int(cursor) if cursor else 0),
                )
                events.extend(JobEvent.from_json(row[1]).model_copy(update={"cursor": str(row[0])}) for row in rows)
        return events

    async def _close_gap(self, user_id: int, round_: int) -> None:
        """A queued job left out of turn: the member's later jobs move up a round."""
        await self.db.execute(
            "UPDATE queue_jobs SET round = round - 1 WHERE state = 'queued' AND user_id = ? AND round > ?",
            (user_id, round_),
        )

    async def forget(self, job_id: str) -> None:
        async with transaction(self.db):
            rows = await self.db.execute_fetchall("SELECT state, user_id, round FROM queue_jobs WHERE id = ?", (job_id,))
            if rows and rows[0]["state"] == JobState.QUEUED:
                await self._close_gap(rows[0]["user_id"], rows[0]["round"])
            await self.db.execute("DELETE FROM queue_events WHERE job_id = ?", (job_id,))
            await self.db.execute("DELETE FROM queue_jobs WHERE id = ?", (job_id,))
        log.debug("job %s forgotten", job_id)

    # -- worker side ----------------------------------------------------------

    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        async with transaction(self.db, write=False):  # idle workers poll: the write lock only when there is work
            ((work,),) = await self.db.execute_fetchall(
                "SELECT EXISTS (SELECT 1 FROM queue_jobs WHERE state = 'queued')"
                " OR EXISTS (SELECT 1 FROM queue_jobs WHERE state = 'running' AND lease_until < ?)",
                (time.time(),),
            )
        if not work:
            return None
        async with transaction(self.db):
            now = time.time()
            await self._requeue_expired(now)
            rows = await self.db.execute_fetchall(
                "UPDATE queue_jobs SET state = 'running', worker = ?, lease_until = ?, tries = tries + 1,"
                " started_at = ? WHERE id = (SELECT id FROM queue_jobs WHERE state = 'queued'"
                " ORDER BY round, turn, seq LIMIT 1)"
                " RETURNING id, job, tries, max_tries, queued_at, round",
                (worker_id, now + lease_s, now),
            )
            if not rows:
                return None
            (row,) = rows
            await self.db.execute("UPDATE queue_clock SET round = MAX(round, ?)", (row["round"],))
            await self._event(
                JobEvent(job_id=row["id"], type=EventType.STARTED, at=now, worker=worker_id, try_number=row["tries"])
            )
        job = Job.from_json(row["job"])
        log_change(
            job.id, f"running on {worker_id}, try {row['tries']}/{row['max_tries']}", waited=_since(row["queued_at"], now)
        )
        return job

    async def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        async with transaction(self.db):
            async with self.db.execute(
                "UPDATE queue_jobs SET lease_until = ? WHERE id = ? AND state = 'running' AND worker = ?",
                (time.time() + lease_s, job_id, worker_id),
            ) as cur:
                return cur.rowcount == 1

    async def progress(self, job_id: str, worker_id: str, percent: float, preview: bytes | None = None) -> None:
        async with transaction(self.db):
            if await self._held(job_id, worker_id) is None:
                return
            await self._event(
                JobEvent(job_id=job_id, type=EventType.PROGRESS, percent=percent, preview=preview, worker=worker_id)
            )

    async def _held(self, job_id: str, worker_id: str):
        """The job's row when `worker_id` holds it (running), else None."""
        rows = await self.db.execute_fetchall(
            "SELECT state, worker, tries, max_tries, queued_at, started_at, submitted_at FROM queue_jobs WHERE id = ?",
            (job_id,),
        )
        if not rows or rows[0]["state"] != JobState.RUNNING or rows[0]["worker"] != worker_id:
            return None
        return rows[0]

    async def complete(self, job_id: str, worker_id: str, result: JobResult) -> bool:
        async with transaction(self.db):
            now = time.time()
            row = await self._held(job_id, worker_id)
            if row is None:
                return False
            await self.db.execute(
                "UPDATE queue_jobs SET state = 'done', finished_at = ?, lease_until = NULL WHERE id = ?", (now, job_id)
            )
            await self._event(
                JobEvent(
                    job_id=job_id, type=EventType.DONE, at=now, result=result, worker=worker_id, try_number=row["tries"]
                )
            )
        log_change(
            job_id,
            f"done on {worker_id}",
            ran=_since(row["started_at"], now),
            waited=_since(row["queued_at"], row["started_at"]),
            total=_since(row["submitted_at"], now),
        )
        return True

    async def fail(self, job_id: str, worker_id: str, error: str, retryable: bool = True) -> JobState:
        async with transaction(self.db):
            now = time.time()
            row = await self._held(job_id, worker_id)
            if row is None:
                current = await self.db.execute_fetchall("SELECT state FROM queue_jobs WHERE id = ?", (job_id,))
                return JobState(current[0][0]) if current else JobState.CANCELLED
            state = await self._end_try(job_id, row, now, error, worker_id, retry=retryable)
        log_change(job_id, f"{'retrying' if state == JobState.QUEUED else 'failed'} after try {row['tries']}/"
                   f"{row['max_tries']} on {worker_id}: {error}", ran=_since(row["started_at"], now))
        return state

    async def _end_try(self, job_id: str, row, now: float, error: str, worker_id: str, retry: bool) -> JobState:
        """A running try ended badly: queue the job again while tries remain, else fail it."""
        if retry and row["tries"] < row["max_tries"]:
            await self.db.execute(
                "UPDATE queue_jobs SET state = 'queued', worker = NULL, lease_until = NULL, queued_at = ?"
                " WHERE id = ?",
                (now, job_id),
            )
            await self._event(
                JobEvent(job_id=job_id, type=EventType.RETRYING, at=now, error=error, worker=worker_id,
                         try_number=row["tries"])
            )
            return JobState.QUEUED
        await self.db.execute(
            "UPDATE queue_jobs SET state = 'failed', finished_at = ?, lease_until = NULL WHERE id = ?", (now, job_id)
        )
        await self._event(
            JobEvent(job_id=job_id, type=EventType.FAILED, at=now, error=error, worker=worker_id,
                     try_number=row["tries"])
        )
        return JobState.FAILED

    async def requeue_expired(self) -> int:
        now = time.time()
        purge = now - self._purged_at >= self._purge_every_s
        if not purge:  # the common case: a read, no write lock (workers call this before each claim)
            async with transaction(self.db, write=False):
                expired = await self.db.execute_fetchall(
                    "SELECT 1 FROM queue_jobs WHERE state = 'running' AND lease_until < ? LIMIT 1", (now,)
                )
            if not expired:
                return 0
        async with transaction(self.db):
            now = time.time()
            count = await self._requeue_expired(now)
            if purge:  # outcomes nobody forgot (the bot crashed or never asked), as Redis expires them
                old = now - self.result_ttl_s
                await self.db.execute(
                    "DELETE FROM queue_events WHERE job_id IN (SELECT id FROM queue_jobs WHERE finished_at < ?)",
                    (old,),
                )
                await self.db.execute("DELETE FROM queue_jobs WHERE finished_at < ?", (old,))
                self._purged_at = now
        return count

    async def _requeue_expired(self, now: float) -> int:
        rows = await self.db.execute_fetchall(
            "SELECT id, worker, tries, max_tries, queued_at, started_at, submitted_at FROM queue_jobs"
            " WHERE state = 'running' AND lease_until < ?",
            (now,),
        )
        for row in rows:
            error = f"the lease of worker {row['worker']} expired (it stopped responding)"
            state = await self._end_try(row["id"], row, now, error, row["worker"], retry=True)
            log_change(
                row["id"],
                f"{'requeued' if state == JobState.QUEUED else 'failed'}: lease of {row['worker']} expired"
                f" on try {row['tries']}/{row['max_tries']}",
                ran=_since(row["started_at"], now),
            )
        return len(rows)
