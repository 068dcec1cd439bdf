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

Waiting (push, not poll). The contract, the event follower and the log line
per state change live in engine/queue_contract.py. SQLite has no way to tell
another process that a row changed, so each SQLiteQueue binds a Unix datagram
socket in a folder named after the database (in the temp dir, where paths stay
short), and after each commit that others may wait on (a job queued, an event
written) it sends one byte to every other socket there and wakes its own
waiters. Waiting workers and followers return on that byte, and fall back to a
read every IDLE_S (1 s) for a wake-up that got lost. Chosen over polling
`PRAGMA data_version` every few milliseconds: nothing runs while nothing
happens, the wake-up costs one syscall per peer, and it needs nothing but the
standard library. Without Unix sockets (Windows) the queue still works on the
slow fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from engine.db import transaction
from engine.jobs import EventType, Job, JobEvent, JobResult, JobState
from engine.queue_contract import (
    IDLE_S,
    RESULT_TTL_S,
    WORKER_TTL_S,
    Change,
    Followed,
    JobQueue,
    WorkerStatus,
    guild_key,
)

__all__ = [
    "IDLE_S", "RESULT_TTL_S", "Change", "Followed", "JobQueue", "SQLiteQueue", "WorkerStatus", "guild_key", "open_queue",
]

log = logging.getLogger("engine.queue")


async def open_queue(url: str) -> JobQueue:
    """`sqlite:///path/to/tastemaker.db` or `redis://host:6379/0`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from engine.redis_queue import RedisQueue

        return await RedisQueue.open(url)
    if url.startswith("sqlite:///"):
        return await SQLiteQueue.open(url.removeprefix("sqlite:///"))
    raise ValueError(f"unknown queue URL {url!r}: use sqlite:///PATH or redis://HOST:PORT/DB")


def _since(start: float | None, end: float) -> float | None:
    return None if start is None else max(0.0, end - start)


class Doorbell:
    """Wake-ups between the queue handles (processes, threads) on one SQLite file:
    a Unix datagram socket each, in one folder per database. See the module doc."""

    def __init__(self, db_path: Path):
        digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
        self.folder = Path(tempfile.gettempdir()) / f"tastemaker-{os.getuid()}-{digest}"
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}-{id(self):x}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(str(self.path))
        self.rung = 0  # wake-ups heard so far, ours included
        self._listeners: set[asyncio.Event] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_datagram)

    def _on_datagram(self) -> None:
        with contextlib.suppress(OSError):
            while self.sock.recv(64):
                pass
        self._heard()

    def _heard(self) -> None:
        self.rung += 1
        for event in self._listeners:
            event.set()

    def ring(self) -> None:
        """After a commit: wake our own waiters and every other handle's."""
        self._heard()
        for peer in os.scandir(self.folder):
            if peer.path == str(self.path):
                continue
            try:
                self.sock.sendto(b"!", peer.path)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except (ConnectionRefusedError, FileNotFoundError):
                Path(peer.path).unlink(missing_ok=True)  # a handle that died without closing
            except OSError as error:
                log.debug("wake-up to %s failed: %s", peer.path, error)

    async def wait(self, since: int, event: asyncio.Event, timeout: float) -> None:
        """Until a wake-up after the count `since`, `event`, or `timeout`."""
        if self.rung != since:
            return
        self._listeners.add(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._listeners.discard(event)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.path.unlink(missing_ok=True)


class SQLiteQueue(JobQueue):
    """SQLite backend: tables queue_jobs / queue_events (data/migrations/0002_queue.sql)
    in the bot's database, WAL mode, its own connection per process.

    Every write runs in engine.db.transaction (BEGIN IMMEDIATE), so a claim is
    atomic across the bot and any number of local worker processes. Leases are
    wall-clock deadlines (time.time()). Finished jobs that were never forgotten
    are dropped after `result_ttl_s`, as the Redis backend expires them.
    """

    def __init__(self, db, path: Path, *, result_ttl_s: float = RESULT_TTL_S):
        self.db = db
        self.path = path
        self.result_ttl_s = result_ttl_s
        self._purged_at = 0.0
        self._purge_every_s = min(60.0, result_ttl_s)
        self._claimed_at_ring = 0  # the doorbell count when claim() last looked
        try:
            self._bell: Doorbell | None = Doorbell(path)
        except (OSError, AttributeError) as error:  # no Unix sockets here: the slow fallback only
            log.warning("queue wake-ups unavailable (%s); waiting in %.1fs steps", error, IDLE_S)
            self._bell = None

    @classmethod
    async def open(cls, path: str | Path, *, result_ttl_s: float = RESULT_TTL_S) -> SQLiteQueue:
        """Open the queue in an existing database. The bot creates the database
        (engine.db.connect); a worker pointed at a missing file is refused
        rather than left waiting on a new, empty one."""
        from engine.db import connect

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no queue database at {path}: start the bot first (it creates it), or fix --queue")
        return cls(await connect(path), path, result_ttl_s=result_ttl_s)

    @property
    def where(self) -> str:
        return f"sqlite:///{self.path}"

    async def close(self) -> None:
        if self._bell is not None:
            self._bell.close()
        await self.db.close()

    def _ring(self) -> None:
        if self._bell is not None:
            self._bell.ring()

    async def _wait(self, since: int, event: asyncio.Event, timeout: float) -> None:
        if self._bell is not None:
            await self._bell.wait(since, event, timeout)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    @property
    def _rung(self) -> int:
        return self._bell.rung if self._bell is not None else 0

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
        self._ring()
        self._changed(Change(job.id, JobState.QUEUED, reason=f"{job.kind} for user {job.user_id} in {group}, round {round_}"))

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
        self._ring()
        old = JobState(row["state"])
        if old is JobState.RUNNING:
            self._changed(Change(job_id, JobState.CANCELLED, old, ran=_since(row["started_at"], now)))
        else:
            self._changed(Change(job_id, JobState.CANCELLED, old, waited=_since(row["queued_at"], now)))
        return True

    async def state(self, job_id: str) -> JobState | None:
        async with transaction(self.db, write=False):
            rows = await self.db.execute_fetchall("SELECT state FROM queue_jobs WHERE id = ?", (job_id,))
        return JobState(rows[0][0]) if rows else None

    async def read_events(self, cursors: Mapping[str, str]) -> list[JobEvent]:
        events: list[JobEvent] = []
        async with transaction(self.db, write=False):  # never an event of a transaction that may roll back
            for job_id, cursor in list(cursors.items()):  # a snapshot: jobs are followed while this awaits
                rows = await self.db.execute_fetchall(
                    "SELECT id, event FROM queue_events WHERE job_id = ? AND id > ? ORDER BY id",
                    (job_id, int(cursor) if cursor else 0),
                )
                events.extend(JobEvent.from_json(row[1]).model_copy(update={"cursor": str(row[0])}) for row in rows)
        return events

    async def _next_events(self, followed: Followed, timeout: float) -> list[JobEvent]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            since = self._rung
            followed.changed.clear()
            events = await self.read_events(followed.cursors)
            left = deadline - asyncio.get_running_loop().time()
            if events or left <= 0:
                return events
            await self._wait(since, followed.changed, left)

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
        self._claimed_at_ring = self._rung
        async with transaction(self.db, write=False):  # idle workers look often: the write lock only when there is work
            ((work,),) = await self.db.execute_fetchall(
                "SELECT EXISTS (SELECT 1 FROM queue_jobs WHERE state = 'queued')"
                " OR EXISTS (SELECT 1 FROM queue_jobs WHERE state = 'running' AND lease_until < ?)",
                (time.time(),),
            )
        if not work:
            return None
        async with transaction(self.db):
            now = time.time()
            changes = await self._requeue_expired(now)
            rows = await self.db.execute_fetchall(
                "UPDATE queue_jobs SET state = 'running', worker = ?, lease_until = ?, tries = tries + 1,"
                " started_at = ? WHERE id = (SELECT id FROM queue_jobs WHERE state = 'queued'"
                " ORDER BY round, turn, seq LIMIT 1)"
                " RETURNING id, job, tries, max_tries, queued_at, round",
                (worker_id, now + lease_s, now),
            )
            if rows:
                (row,) = rows
                await self.db.execute("UPDATE queue_clock SET round = MAX(round, ?)", (row["round"],))
                await self._event(
                    JobEvent(job_id=row["id"], type=EventType.STARTED, at=now, worker=worker_id, try_number=row["tries"])
                )
        if changes or rows:
            self._ring()
        for change in changes:
            self._changed(change)
        if not rows:
            return None
        self._changed(
            Change(row["id"], JobState.RUNNING, JobState.QUEUED, worker_id, row["tries"], row["max_tries"],
                   waited=_since(row["queued_at"], now))
        )
        return Job.from_json(row["job"])

    async def wait_for_work(self, timeout: float) -> None:
        await self._wait(self._claimed_at_ring, asyncio.Event(), timeout)

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
        self._ring()

    async def _held(self, job_id: str, worker_id: str):
        """The job's row when `worker_id` holds it (running), else None."""
        rows = await self.db.execute_fetchall(
            "SELECT id, state, worker, tries, max_tries, queued_at, started_at, submitted_at FROM queue_jobs"
            " WHERE id = ?",
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
        self._ring()
        self._changed(
            Change(job_id, JobState.DONE, JobState.RUNNING, worker_id, row["tries"], row["max_tries"],
                   waited=_since(row["queued_at"], row["started_at"]), ran=_since(row["started_at"], now),
                   total=_since(row["submitted_at"], now))
        )
        return True

    async def fail(self, job_id: str, worker_id: str, error: str, retryable: bool = True) -> JobState:
        async with transaction(self.db):
            now = time.time()
            row = await self._held(job_id, worker_id)
            if row is None:
                current = await self.db.execute_fetchall("SELECT state FROM queue_jobs WHERE id = ?", (job_id,))
                return JobState(current[0][0]) if current else JobState.CANCELLED
            change = await self._end_try(row, now, error, retry=retryable)
        self._ring()
        self._changed(change)
        return change.new

    async def _end_try(self, row, now: float, error: str, retry: bool) -> Change:
        """A running try ended badly: queue the job again while tries remain, else fail it."""
        job_id, worker_id = row["id"], row["worker"]
        event = JobEvent(job_id=job_id, type=EventType.FAILED, at=now, error=error, worker=worker_id,
                         try_number=row["tries"])
        if retry and row["tries"] < row["max_tries"]:
            await self.db.execute(
                "UPDATE queue_jobs SET state = 'queued', worker = NULL, lease_until = NULL, queued_at = ?"
                " WHERE id = ?",
                (now, job_id),
            )
            await self._event(event.model_copy(update={"type": EventType.RETRYING}))
            state = JobState.QUEUED
        else:
            await self.db.execute(
                "UPDATE queue_jobs SET state = 'failed', finished_at = ?, lease_until = NULL WHERE id = ?",
                (now, job_id),
            )
            await self._event(event)
            state = JobState.FAILED
        return Change(job_id, state, JobState.RUNNING, worker_id, row["tries"], row["max_tries"], reason=error,
                      ran=_since(row["started_at"], now))

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
            changes = await self._requeue_expired(now)
            if purge:  # outcomes nobody forgot (the bot crashed or never asked), as Redis expires them
                old = now - self.result_ttl_s
                await self.db.execute(
                    "DELETE FROM queue_events WHERE job_id IN (SELECT id FROM queue_jobs WHERE finished_at < ?)",
                    (old,),
                )
                await self.db.execute("DELETE FROM queue_jobs WHERE finished_at < ?", (old,))
                self._purged_at = now
        return self._report(changes)

    async def _requeue_expired(self, now: float) -> list[Change]:
        rows = await self.db.execute_fetchall(
            "SELECT id, worker, tries, max_tries, queued_at, started_at, submitted_at FROM queue_jobs"
            " WHERE state = 'running' AND lease_until < ?",
            (now,),
        )
        return [
            await self._end_try(row, now, f"the lease of worker {row['worker']} expired (it stopped responding)", True)
            for row in rows
        ]

    async def release(self, worker_id: str) -> int:
        async with transaction(self.db):
            now = time.time()
            rows = await self.db.execute_fetchall(
                "SELECT id, worker, tries, max_tries, queued_at, started_at, submitted_at FROM queue_jobs"
                " WHERE state = 'running' AND worker = ?",
                (worker_id,),
            )
            changes = [await self._end_try(row, now, f"worker {worker_id} restarted", True) for row in rows]
        return self._report(changes)

    def _report(self, changes: list[Change]) -> int:
        if changes:
            self._ring()
        for change in changes:
            self._changed(change)
        return len(changes)

    # -- worker health (queue_workers, data/migrations/0006_models_workers.sql) ---------

    async def report_worker(self, status: WorkerStatus) -> None:
        async with transaction(self.db):
            now = time.time()
            stored = status.model_copy(update={"last_seen": now})
            await self.db.execute(
                "INSERT INTO queue_workers (id, status, last_seen) VALUES (?, ?, ?) ON CONFLICT (id)"
                " DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen",
                (status.worker_id, stored.model_dump_json(), now),
            )
            await self.db.execute("DELETE FROM queue_workers WHERE last_seen < ?", (now - WORKER_TTL_S,))

    async def workers(self) -> list[WorkerStatus]:
        async with transaction(self.db, write=False):
            rows = await self.db.execute_fetchall(
                "SELECT status FROM queue_workers WHERE last_seen >= ? ORDER BY last_seen DESC, id",
                (time.time() - WORKER_TTL_S,),
            )
        return [WorkerStatus.model_validate_json(row[0]) for row in rows]
