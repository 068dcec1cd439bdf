"""Job messages' writes, per Discord rate-limit bucket, by priority, within the budget.

Discord, not the GPU, sets the pace of a busy channel: about 5 message writes per 5 s per channel,
50 requests per second per bot, and a 429 makes discord.py sleep inside the awaited call. So every
write to a job's message goes through here:

- **The cheapest route that works.** A job's message is posted by an interaction; while that
  interaction's token lives (15 minutes, less a margin) the message is edited through its webhook,
  a bucket of its own that the global limit leaves out. After that, through the channel: one
  bucket for every message in it, and the bot's global budget.
- **One drain per bucket.** Buckets never wait on each other, so a busy or rate-limited channel never
  delays another's results.
- **Within a bucket: results and errors first, then progress, then queue positions.** A message has
  at most one write waiting (a newer one replaces it, and what it shows is built when it is sent), and
  progress and positions leave RESERVE of the budget to results.

The budgets are counted here, before Discord would refuse anything, as sliding windows a little
wider than Discord's (network jitter). What isn't a job message's edit but shares a bucket (a job's
message being posted as a followup) spends from the same budget (`spend`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from bot.app import Tastemaker

log = logging.getLogger("bot.outbox")

MESSAGE_WRITES = (5, 5.25)  # per channel, and per interaction token: 5 per 5 s, and a margin for jitter
GLOBAL_WRITES = (40, 1.0)  # of Discord's 50 per second: the rest is left to everything else the bot does
RESERVE = 2  # of a bucket's budget, kept for results: progress and positions use the rest
TOKEN_LIFE_S = 15 * 60  # an interaction's token (its webhook) works this long after the interaction
TOKEN_MARGIN_S = 60  # stop using it this much earlier: a write may wait its turn in the bucket
SWEEP_AT = 512  # buckets kept before idle ones are forgotten


class Priority(enum.IntEnum):
    RESULT = 0  # a finished job's message: its images, or why it failed
    PROGRESS = 1  # percent and a preview
    POSITION = 2  # "position N in queue"


@dataclass
class Target:
    """Where a job's message is, and the interaction that posted it while its token lives."""

    channel_id: int
    message_id: int
    interaction: discord.Interaction | None = None
    original: bool = False  # the interaction's own response (edited as @original), not a followup
    token_until: float = 0.0  # time.monotonic() after which the interaction's webhook isn't used

    @classmethod
    def posted_by(cls, interaction: discord.Interaction, message_id: int, *, original: bool) -> Target:
        return cls(
            channel_id=interaction.channel_id, message_id=message_id, interaction=interaction, original=original,
            token_until=time.monotonic() + TOKEN_LIFE_S - TOKEN_MARGIN_S,
        )

    def bucket(self, now: float) -> str:
        if self.interaction is not None and now < self.token_until:
            return interaction_bucket(self.interaction)
        return f"channel:{self.channel_id}"

    async def edit(self, bot: Tastemaker, now: float, **changes: Any) -> None:
        if self.interaction is not None and now < self.token_until:
            if self.original:
                await self.interaction.edit_original_response(**changes)
            else:
                await self.interaction.followup.edit_message(self.message_id, **changes)
            return
        await bot.get_partial_messageable(self.channel_id).get_partial_message(self.message_id).edit(**changes)


def interaction_bucket(interaction: discord.Interaction) -> str:
    return f"interaction:{interaction.id}"


Build = Callable[[], Awaitable[dict[str, Any] | None]]  # the edit's fields, when it is sent; None: nothing to send


@dataclass
class Write:
    priority: Priority
    build: Build
    sent: Callable[[], Awaitable[None]] | None = None
    # What to do when Discord refused it: seconds until it is tried again, or None to drop it.
    failed: Callable[[BaseException], Awaitable[float | None]] | None = None
    not_before: float = 0.0
    queued_at: float = field(default_factory=time.monotonic)


class Budget:
    """At most `limit` requests in any `per` seconds (a sliding window)."""

    def __init__(self, limit: int, per: float):
        self.limit, self.per = limit, per
        self.sent: deque[float] = deque()

    def wait(self, now: float, keep: int = 0) -> float:
        """Seconds until a request may go and still leave `keep` of the budget (0: now)."""
        while self.sent and self.sent[0] <= now - self.per:
            self.sent.popleft()
        allowed = self.limit - keep
        if len(self.sent) < allowed:
            return 0.0
        return self.sent[len(self.sent) - allowed] + self.per - now

    def spend(self, now: float) -> None:
        self.sent.append(now)

    def idle(self, now: float) -> bool:
        return not self.sent or self.sent[-1] <= now - self.per


class _Bucket:
    def __init__(self, name: str):
        self.name = name
        self.budget = Budget(*MESSAGE_WRITES)
        self.counts_globally = name.startswith("channel:")
        self.pending: dict[str, Write] = {}  # message key -> its one waiting write
        # While the drain waits for budget: a write of a priority better than this wakes it.
        self.napping: int | None = None
        self.woken = False
        self.task: asyncio.Task | None = None


class Outbox:
    def __init__(self, bot: Tastemaker):
        self.bot = bot
        self.targets: dict[str, Target] = {}
        self._buckets: dict[str, _Bucket] = {}  # kept while their budget remembers a write
        self._where: dict[str, _Bucket] = {}  # message key -> the bucket its waiting write is in
        self._global = Budget(*GLOBAL_WRITES)

    # -- what the job pump calls -----------------------------------------------------------

    def put(self, key: str, write: Write) -> None:
        """Queue a write to message `key` (whose target is known), replacing a waiting one of the
        same or a lower priority (a waiting result is never replaced by progress). Either way the
        write that stays waits out the other's backoff: Discord refused the message's last edit."""
        target = self.targets[key]
        bucket = self._bucket(target.bucket(time.monotonic()))
        if (old_bucket := self._where.get(key)) is not None:
            old = old_bucket.pending[key]
            if old.priority < write.priority:
                old.not_before = max(old.not_before, write.not_before)
                return
            write.not_before = max(write.not_before, old.not_before)
            del old_bucket.pending[key]
        bucket.pending[key] = write
        self._where[key] = bucket
        if bucket.napping is not None and write.priority < bucket.napping and not bucket.woken:
            bucket.woken = True  # it may go sooner than what the drain waits for
            bucket.task.cancel()
        if bucket.task is None or bucket.task.done():
            bucket.task = asyncio.create_task(self._drain(bucket), name=f"outbox-{bucket.name}")

    def waiting(self, key: str) -> Priority | None:
        bucket = self._where.get(key)
        return bucket.pending[key].priority if bucket is not None else None

    def forget(self, key: str) -> None:
        self.targets.pop(key, None)
        if (bucket := self._where.pop(key, None)) is not None:
            del bucket.pending[key]

    async def spend(self, interaction: discord.Interaction) -> None:
        """Wait for room in an interaction's bucket and take it, for a write made elsewhere (a
        followup posting a job's message: a batch's jobs share their interaction's bucket)."""
        bucket = self._bucket(interaction_bucket(interaction))
        while (wait := self._wait(bucket, Priority.RESULT, time.monotonic())) > 0:
            await asyncio.sleep(wait)
        self._spend(bucket, time.monotonic())

    def stop(self) -> None:
        for bucket in self._buckets.values():
            if bucket.task is not None:
                bucket.woken = False  # a cancel that is not a wake-up: the drain ends
                bucket.task.cancel()

    # -- the drains ----------------------------------------------------------------------------

    def _bucket(self, name: str) -> _Bucket:
        if name not in self._buckets:
            if len(self._buckets) >= SWEEP_AT:
                self._sweep()
            self._buckets[name] = _Bucket(name)
        return self._buckets[name]

    def _sweep(self) -> None:
        """Forget buckets with nothing waiting whose budget remembers no write (an expired token's, a quiet channel's)."""
        now = time.monotonic()
        for name, bucket in list(self._buckets.items()):
            if not bucket.pending and (bucket.task is None or bucket.task.done()) and bucket.budget.idle(now):
                del self._buckets[name]

    def _wait(self, bucket: _Bucket, priority: Priority, now: float) -> float:
        keep = 0 if priority is Priority.RESULT else RESERVE
        wait = bucket.budget.wait(now, keep)
        if bucket.counts_globally:
            wait = max(wait, self._global.wait(now, keep))
        return wait

    def _spend(self, bucket: _Bucket, now: float) -> None:
        bucket.budget.spend(now)
        if bucket.counts_globally:
            self._global.spend(now)

    async def _drain(self, bucket: _Bucket) -> None:
        """Send the bucket's writes, best first, as its budget allows; ends when none is left."""
        while bucket.pending:
            now = time.monotonic()
            ready = [(w.priority, w.queued_at, key) for key, w in bucket.pending.items() if w.not_before <= now]
            if not ready:
                await self._nap(bucket, min(w.not_before for w in bucket.pending.values()) - now, len(Priority))
                continue
            priority, _, key = min(ready)
            if (wait := self._wait(bucket, priority, now)) > 0:
                await self._nap(bucket, wait, priority)
                continue
            write = bucket.pending.pop(key)
            del self._where[key]
            target = self.targets.get(key)
            if target is None:
                continue
            if target.bucket(now) != bucket.name:  # its token ran out while it waited: the channel now
                self.put(key, write)
                continue
            await self._send(bucket, key, target, write, now)

    async def _send(self, bucket: _Bucket, key: str, target: Target, write: Write, now: float) -> None:
        try:
            changes = await write.build()
            if changes is None:  # it says that already: nothing spent
                return
            self._spend(bucket, now)
            await target.edit(self.bot, now, **changes)
        except Exception as error:
            delay = await write.failed(error) if write.failed is not None else None
            if delay is not None and key in self.targets:  # again once the backoff is over (or a newer write)
                write.not_before = time.monotonic() + delay
                self.put(key, write)
            elif not isinstance(error, discord.HTTPException):
                log.error("message %s: a write failed and was dropped", key, exc_info=error)
            return
        if write.sent is not None:
            await write.sent()

    @staticmethod
    async def _nap(bucket: _Bucket, seconds: float, priority: int) -> None:
        """Wait until the best write may go, unless a better one comes in first (put wakes the drain)."""
        bucket.napping = priority
        try:
            await asyncio.sleep(max(seconds, 0.001))
        except asyncio.CancelledError:
            if not bucket.woken:
                raise
            asyncio.current_task().uncancel()
        finally:
            bucket.napping, bucket.woken = None, False
