"""The JobQueue contract, shared by both backends (engine/queue.py: SQLite,
engine/redis_queue.py: Redis), and the parts they have in common: the one
event follower and the one log line per state change.

Backends report facts (a `Change`: job, old and new state, worker, try,
timings) to `JobQueue._changed`, which writes the log line, so both backends
log alike and neither imports the other.

`follow()` is how everything that waits on jobs waits on them (the bot's
delivery pump, the rank-pool build): it yields each batch of new events as
soon as the backend has them, and an empty batch after `idle_s` without news,
so the caller can do time-based work (retries, throttled edits) between
events. Backends say how they block: `_next_events` (events of the followed
jobs) and `wait_for_work` (a worker with nothing to claim).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.jobs import Job, JobEvent, JobResult, JobState

log = logging.getLogger("engine.queue")

RESULT_TTL_S = 24 * 3600.0  # finished jobs nobody forgot are dropped after this
IDLE_S = 1.0  # the longest a waiter sleeps without news: covers a missed wake-up and expired leases
WORKER_TTL_S = 24 * 3600.0  # a worker not heard from for this long is no longer listed
FAILING_AFTER = 3  # failed tries in a row that flag a worker (/admin workers and the log)


def guild_key(job: Job) -> str:
    """The fairness group of a job: its guild, or the member alone outside guilds."""
    return str(job.guild_id) if job.guild_id is not None else f"dm:{job.user_id}"


@dataclass(frozen=True)
class Change:
    """One state change of a job, as a backend reports it. Timings in seconds."""

    job_id: str
    new: JobState
    old: JobState | None = None  # None: the job was just submitted
    worker: str | None = None
    try_number: int | None = None
    max_tries: int | None = None
    reason: str = ""  # why a try ended badly; for a submit, what was queued
    waited: float | None = None  # in the queue before this try started
    ran: float | None = None  # this try, up to the change
    total: float | None = None  # from submit to the end

    def describe(self) -> str:
        tries = f"try {self.try_number}/{self.max_tries}" if self.try_number is not None else ""
        if self.old is None:
            text = f"queued: {self.reason}"
        elif self.new is JobState.RUNNING:
            text = f"running on {self.worker}, {tries}"
        elif self.new is JobState.DONE:
            text = f"done on {self.worker}"
        elif self.new is JobState.CANCELLED:
            text = f"cancelled while {self.old}"
        elif self.new is JobState.QUEUED:
            text = f"retrying after {tries} on {self.worker}: {self.reason}"
        else:
            text = f"failed after {tries} on {self.worker}: {self.reason}"
        timings = [
            f"{name} {value:.2f}s"
            for name, value in (("waited", self.waited), ("ran", self.ran), ("total", self.total))
            if value is not None
        ]
        return f"job {self.job_id} {text}" + (f" ({', '.join(timings)})" if timings else "")


class WorkerStatus(BaseModel):
    """A worker's health, as it reports it (report_worker) and the bot reads it (workers()).

    `failed_in_row` counts tries that ended badly on this worker's side (a crash,
    out of memory, a preset that won't load) since its last success; a job
    refused for bad input doesn't count. `last_seen` is set by the backend, on
    its own clock, when the report is stored."""

    model_config = ConfigDict(extra="forbid")

    worker_id: str
    state: Literal["starting", "idle", "busy", "stopped"] = "starting"
    preset: str = ""
    device: str = ""
    jobs_done: int = 0
    jobs_failed: int = 0
    failed_in_row: int = 0
    last_error: str = ""
    gpu_memory_used: int | None = None  # bytes this worker's process holds on its GPU
    gpu_memory_total: int | None = None
    started_at: float | None = None  # the worker's clock
    last_seen: float = 0.0  # the backend's clock (seconds)

    @property
    def failing(self) -> bool:
        return self.failed_in_row >= FAILING_AFTER


class Followed:
    """The jobs a follower watches and its cursor in each one's events ("" from
    the start). Jobs may be added while it is followed; a job leaves after its
    terminal event. `open_ended` followers (the delivery pump) keep waiting
    when no job is left; the others end."""

    def __init__(self, cursors: Mapping[str, str] | None = None, *, open_ended: bool = False):
        self.cursors: dict[str, str] = dict(cursors or {})
        self.open_ended = open_ended
        self.changed = asyncio.Event()  # set by add(): a blocked follower reads at once

    def add(self, job_id: str, cursor: str = "") -> None:
        if job_id not in self.cursors:
            self.cursors[job_id] = cursor
            self.changed.set()

    def advance(self, events: list[JobEvent]) -> list[JobEvent]:
        """The events of followed jobs among `events`; moves their cursors past
        them and drops the jobs that ended."""
        mine = [event for event in events if event.job_id in self.cursors]
        for event in mine:
            if event.type.terminal:
                self.cursors.pop(event.job_id, None)
            elif event.job_id in self.cursors:
                self.cursors[event.job_id] = event.cursor
        return mine


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
        in order per job. Never blocks; follow() is the way to wait for them."""

    @abstractmethod
    async def forget(self, job_id: str) -> None:
        """The bot has stored the outcome: drop the job's events and result.
        Forgetting a job that has not ended drops it too (its worker's next
        heartbeat returns False)."""

    async def follow(self, followed: Followed, *, idle_s: float = IDLE_S) -> AsyncIterator[list[JobEvent]]:
        """Batches of new events of the followed jobs, in order per job, each as
        soon as the backend has it; an empty batch after `idle_s` without news.
        Cursors advance as batches are yielded; a job is dropped after its
        terminal event. Ends when no job is left, unless `followed.open_ended`."""
        while followed.cursors or followed.open_ended:
            yield followed.advance(await self._next_events(followed, idle_s))

    @abstractmethod
    async def _next_events(self, followed: Followed, timeout: float) -> list[JobEvent]:
        """New events of the followed jobs; when there are none yet, wait up to
        `timeout` for some (or for `followed.changed`)."""

    # -- worker side ----------------------------------------------------------

    @abstractmethod
    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        """Atomically take the next job in fair order, or None. Counts a try,
        writes a STARTED event and requeues expired leases first."""

    @abstractmethod
    async def wait_for_work(self, timeout: float) -> None:
        """After claim() found nothing: return when a job may have been queued
        (submitted or requeued) since, or after `timeout`."""

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

    @abstractmethod
    async def release(self, worker_id: str) -> int:
        """A worker (re)starts: the tries still running under its id were cut
        short (it crashed and came back), so requeue them now rather than when
        their leases expire. Worker ids must be unique among live workers."""

    @abstractmethod
    async def report_worker(self, status: WorkerStatus) -> None:
        """Store a worker's health; `last_seen` becomes the backend's now. Kept
        WORKER_TTL_S after its last report."""

    # -- both -----------------------------------------------------------------

    @abstractmethod
    async def workers(self) -> list[WorkerStatus]:
        """The workers heard from in the last WORKER_TTL_S, most recently seen first."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The queue's address for logs, without any password."""

    async def close(self) -> None:
        return None

    def _changed(self, change: Change) -> None:
        """The one place a state change is logged."""
        log.info("%s", change.describe())
