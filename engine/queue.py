"""JobQueue: jobs down to workers, events up to the bot.

One interface, two backends: SQLite (the default, a table in the bot's
database) and Redis Streams (engine/redis_queue.py, for workers on other
machines). Both pass tests/engine/test_queue_contract.py.

Job states: queued -> running -> done | failed | cancelled. A running job
holds a lease that its worker renews with heartbeat(); an expired lease puts
the job back in the queue (or fails it after max_tries).

Order is fair: round-robin across members (and guilds), not global FIFO.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from engine.jobs import Job, JobEvent, JobResult, JobState


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
        """The bot has stored the outcome: drop the job's events and result."""

    # -- worker side ----------------------------------------------------------

    @abstractmethod
    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        """Atomically take the next job in fair order, or None."""

    @abstractmethod
    async def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Renew the lease. False when the worker must stop: it lost the lease
        or the job was cancelled."""

    @abstractmethod
    async def progress(self, job_id: str, worker_id: str, percent: float, preview: bytes | None = None) -> None:
        ...

    @abstractmethod
    async def complete(self, job_id: str, worker_id: str, result: JobResult) -> bool:
        """Store the result. False (and nothing stored) when this worker no
        longer holds the job, so a member sees exactly one result."""

    @abstractmethod
    async def fail(self, job_id: str, worker_id: str, error: str, retryable: bool = True) -> JobState:
        """Queued again while tries remain and retryable, else failed."""

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


class SQLiteQueue(JobQueue):
    """SQLite backend: tables queue_jobs / queue_events (data/migrations/0002_queue.sql),
    WAL mode, atomic claim with BEGIN IMMEDIATE, leases in wall-clock seconds."""

    @classmethod
    async def open(cls, path: str) -> SQLiteQueue:
        raise NotImplementedError
