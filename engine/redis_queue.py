"""Redis Streams backend of JobQueue, for GPU workers on other machines.

Remote workers need no database and no shared disk: jobs, events and results
all live in Redis. One Redis server (or a Sentinel-managed primary), not a
Redis Cluster: the Lua scripts touch keys they compute.

Keys (prefix `tm:q:` by default):

    seq              counter: arrival order
    round            the highest round claimed so far (fair order, engine/queue.py)
    job:<id>         hash: job (Job JSON), u (member), g (guild key), seq, round,
                     turn, okey (its member of `order`), state, tries, max_tries,
                     worker, entry (work stream id while running), prog (newest
                     progress event id), submitted / queued_at / started /
                     finished (ms, Redis clock), lease_ms
    ev:<id>          stream: the job's events, field `e` = JobEvent JSON; the entry
                     id is the cursor. Only the newest PROGRESS entry is kept; the
                     DONE entry carries the result.
    order            sorted set, all scores 0: queued jobs as "round:turn:seq:id"
                     (zero-padded), so ZRANGE 0 0 is the next job and ZRANK + 1
                     its position
    mq:<member>      sorted set: the member's queued job ids by round
    gq:<guild>       sorted set: the guild's queued job ids by round (for turns)
    work             stream + consumer group `workers`: one entry per running try
    wake             list: a token per job queued (submitted or requeued), at most
                     16; idle workers BLPOP it instead of polling
    worker:<id>      string: the worker's WorkerStatus JSON, expiring a day after
                     its last report
    workers          sorted set: worker ids by last report (ms, Redis clock)

Waiting: a worker with nothing to claim blocks on `wake` (BLPOP, up to 1 s so
that expired leases are still reaped); followers block on their jobs' event
streams (XREAD BLOCK over all of them, 100 ms at a time so that a job added to
the follower is read soon).

Claim is one Lua script: it pops the next job in the fair order (see
engine/queue.py; the same order as the SQLite backend), then XADDs an entry to
`work` and reads it with XREADGROUP as the worker's consumer, so the job sits
in the group's pending list (PEL) for as long as it runs. XACK + XDEL end it.

Leases are the PEL's idle clock (the Redis server's clock, so workers' clocks
do not matter). Each claim and heartbeat sets the entry's idle time to
LEASE_BASE_MS - lease_ms with XCLAIM ... IDLE ... JUSTID, so an entry becomes
`LEASE_BASE_MS` idle exactly when its own lease runs out, and
`XAUTOCLAIM work workers tm-reaper LEASE_BASE_MS` returns exactly the expired
tries, whatever lease each worker asked for. (XPENDING therefore shows running
entries as idle for about ten days; that is this offset, not a stall.)

Finished jobs' hashes and event streams expire (PEXPIRE) after `result_ttl_s` (24 h) in
case the bot never calls forget().

Reconnects: the client retries every command on connection errors, timeouts
and "LOADING" replies with exponential backoff and jitter (redis-py `Retry`,
20 tries over about 30 s by default), health-checks idle connections with a
PING and uses TCP keepalive, so a `redis-server` restart is survived. Scripts
are re-loaded after a restart (EVALSHA → NOSCRIPT → SCRIPT LOAD, by redis-py),
and the consumer group is re-created by the claim script if it is missing.
Run Redis with `appendonly yes` to keep queued jobs across its restarts. A
command retried after its reply was lost may have run twice: submit() is
idempotent for the same job, and a claim whose reply was lost is requeued when
its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, ResponseError, TimeoutError

from engine.jobs import EventType, Job, JobEvent, JobResult, JobState
from engine.queue_contract import RESULT_TTL_S, WORKER_TTL_S, Change, Followed, JobQueue, WorkerStatus, guild_key

log = logging.getLogger("engine.queue")

LEASE_BASE_MS = 10 * 24 * 3600 * 1000  # leases longer than ten days are cut to ten days
GROUP = "workers"
REAPER = "tm-reaper"
PICKUP_S = 0.1  # a follower blocks this long at most, so that a job added to it is read soon

# Helpers shared by every script. ARGV[1] is always the key prefix.
_PRELUDE = r"""
local P = ARGV[1]
local BASE = __LEASE_BASE_MS__
local GROUP = '__GROUP__'
local WORK = P .. 'work'
local ORDER = P .. 'order'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function jkey(id) return P .. 'job:' .. id end
local function ekey(id) return P .. 'ev:' .. id end

-- A job may be claimable: wake one idle worker (BLPOP). A few tokens at most.
local function ring()
  redis.call('RPUSH', P .. 'wake', 1)
  redis.call('LTRIM', P .. 'wake', -16, -1)
end

local function add_event(id, ev)
  return redis.call('XADD', ekey(id), '*', 'e', cjson.encode(ev))
end

local function load(id)
  local v = redis.call('HMGET', jkey(id), 'state', 'u', 'g', 'seq', 'tries', 'max_tries', 'worker', 'entry',
                       'queued_at', 'started', 'submitted', 'round', 'okey')
  if not v[1] then return nil end
  return {state = v[1], u = v[2], g = v[3], seq = tonumber(v[4]), tries = tonumber(v[5]),
          max_tries = tonumber(v[6]), worker = v[7] or '', entry = v[8] or '',
          queued_at = tonumber(v[9]), started = tonumber(v[10] or '0'), submitted = tonumber(v[11]),
          round = tonumber(v[12]), okey = v[13]}
end

-- The fair-order key as a string that sorts like (round, turn, seq).
local function order_key(round, turn, seq, id)
  return string.format('%015d:%015d:%015d:', round, turn, seq) .. id
end

local function enqueue(id, j)
  redis.call('ZADD', ORDER, 0, j.okey)
  redis.call('ZADD', P .. 'mq:' .. j.u, j.round, id)
  redis.call('ZADD', P .. 'gq:' .. j.g, j.round, id)
end

local function dequeue(id, j)
  redis.call('ZREM', ORDER, j.okey)
  redis.call('ZREM', P .. 'mq:' .. j.u, id)
  redis.call('ZREM', P .. 'gq:' .. j.g, id)
end

-- A queued job left out of turn: the member's later jobs move up a round.
local function close_gap(j)
  local later = redis.call('ZRANGEBYSCORE', P .. 'mq:' .. j.u, '(' .. j.round, '+inf')
  for _, id in ipairs(later) do
    local k = load(id)
    dequeue(id, k)
    k.round = k.round - 1
    k.okey = order_key(k.round, tonumber(redis.call('HGET', jkey(id), 'turn')), k.seq, id)
    redis.call('HSET', jkey(id), 'round', k.round, 'okey', k.okey)
    enqueue(id, k)
  end
end

-- Put a running try in the group's PEL under `worker`, its lease `lease_ms` from now.
local function dispatch(id, worker, lease_ms)
  redis.pcall('XGROUP', 'CREATE', WORK, GROUP, '$', 'MKSTREAM')
  local entry = redis.call('XADD', WORK, '*', 'job', id)
  local got = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', 100, 'STREAMS', WORK, '>')
  for _, e in ipairs(got[1][2]) do
    if e[1] ~= entry then  -- a stray entry nobody dispatched: drop it
      redis.call('XACK', WORK, GROUP, e[1]); redis.call('XDEL', WORK, e[1])
    end
  end
  redis.call('XCLAIM', WORK, GROUP, worker, 0, entry, 'IDLE', BASE - lease_ms, 'JUSTID')
  return entry
end

-- The try is over: release its PEL entry (and the worker's consumer once it holds nothing).
local function leave_running(id, j)
  if j.entry ~= '' then
    redis.call('XACK', WORK, GROUP, j.entry); redis.call('XDEL', WORK, j.entry)
  end
  if j.worker ~= '' then
    local left = redis.call('XPENDING', WORK, GROUP, '-', '+', 1, j.worker)
    if #left == 0 then redis.pcall('XGROUP', 'DELCONSUMER', WORK, GROUP, j.worker) end
  end
end

local function finish(id, state, now, ttl)
  redis.call('HSET', jkey(id), 'state', state, 'finished', now, 'entry', '')
  redis.call('PEXPIRE', jkey(id), ttl)
  redis.call('PEXPIRE', ekey(id), ttl)
end

-- A running try ended badly: queue again (same key: back to the front) while
-- tries remain and retry is allowed, else fail.
local function end_try(id, j, now, err, retry, ttl)
  leave_running(id, j)
  local ev = {job_id = id, at = now / 1000, error = err, worker = j.worker, try_number = j.tries}
  if retry and j.tries < j.max_tries then
    redis.call('HSET', jkey(id), 'state', 'queued', 'worker', '', 'entry', '', 'queued_at', now)
    enqueue(id, j)
    ring()
    ev.type = 'retrying'
    add_event(id, ev)
    return 'queued'
  end
  ev.type = 'failed'
  add_event(id, ev)
  finish(id, 'failed', now, ttl)
  return 'failed'
end

local function holds(j, worker)
  return j ~= nil and j.state == 'running' and j.worker == worker
end
""".replace("__LEASE_BASE_MS__", str(LEASE_BASE_MS)).replace("__GROUP__", GROUP)

_SUBMIT = r"""
local id, job, u, g, max_tries = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local existing = redis.call('HGET', jkey(id), 'job')
if existing then
  if existing == job then return 0 end  -- the same submit, retried after a lost reply
  return redis.error_reply('EXISTS job ' .. id .. ' already exists')
end
local claimed = tonumber(redis.call('GET', P .. 'round') or '0')
local last = redis.call('ZRANGE', P .. 'mq:' .. u, -1, -1, 'WITHSCORES')
local round = math.max(claimed, tonumber(last[2] or '0')) + 1
local turn = redis.call('ZCOUNT', P .. 'gq:' .. g, round, round) + 1
local seq = redis.call('INCR', P .. 'seq')
local now = now_ms()
local j = {u = u, g = g, round = round, okey = order_key(round, turn, seq, id)}
redis.call('HSET', jkey(id), 'job', job, 'u', u, 'g', g, 'seq', seq, 'round', round, 'turn', turn,
           'okey', j.okey, 'state', 'queued', 'tries', 0, 'max_tries', max_tries, 'submitted', now, 'queued_at', now)
enqueue(id, j)
ring()
return round
"""

_CLAIM = r"""
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local head = redis.call('ZRANGE', ORDER, 0, 0)[1]
if not head then return false end
local id = string.match(head, '^%d+:%d+:%d+:(.*)$')
local j = load(id)
local now = now_ms()
dequeue(id, j)
if j.round > tonumber(redis.call('GET', P .. 'round') or '0') then redis.call('SET', P .. 'round', j.round) end
local entry = dispatch(id, worker, lease_ms)
local tries = j.tries + 1
redis.call('HSET', jkey(id), 'state', 'running', 'worker', worker, 'entry', entry, 'tries', tries,
           'started', now, 'lease_ms', lease_ms)
add_event(id, {job_id = id, type = 'started', at = now / 1000, worker = worker, try_number = tries})
return {id, redis.call('HGET', jkey(id), 'job'), tries, j.max_tries, now - j.queued_at}
"""

_POSITION = r"""
local j = load(ARGV[2])
if j == nil or j.state ~= 'queued' then return false end
local rank = redis.call('ZRANK', ORDER, j.okey)
if not rank then return false end
return rank + 1
"""

_HEARTBEAT = r"""
local id, worker, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local j = load(id)
if not holds(j, worker) then return 0 end
local kept = redis.call('XCLAIM', WORK, GROUP, worker, 0, j.entry, 'IDLE', BASE - lease_ms, 'JUSTID')
if #kept == 0 then  -- the entry vanished (Redis lost data): track the try again
  redis.call('HSET', jkey(id), 'entry', dispatch(id, worker, lease_ms))
end
redis.call('HSET', jkey(id), 'lease_ms', lease_ms)
return 1
"""

_PROGRESS = r"""
local id, worker, ev = ARGV[2], ARGV[3], ARGV[4]
if not holds(load(id), worker) then return 0 end
local prev = redis.call('HGET', jkey(id), 'prog')
if prev then redis.call('XDEL', ekey(id), prev) end
redis.call('HSET', jkey(id), 'prog', redis.call('XADD', ekey(id), '*', 'e', ev))
return 1
"""

_COMPLETE = r"""
local id, worker, ev, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local j = load(id)
if not holds(j, worker) then return false end
local now = now_ms()
leave_running(id, j)
redis.call('XADD', ekey(id), '*', 'e', ev)
finish(id, 'done', now, ttl)
return {j.submitted, j.queued_at, j.started, now, j.tries, j.max_tries}
"""

_FAIL = r"""
local id, worker, err, retry, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[6])
local j = load(id)
if not holds(j, worker) then return {j and j.state or 'cancelled', 0, 0, 0} end
local now = now_ms()
return {end_try(id, j, now, err, retry, ttl), j.tries, j.max_tries, now - j.started}
"""

_CANCEL = r"""
local id, ttl = ARGV[2], tonumber(ARGV[3])
local j = load(id)
if j == nil or (j.state ~= 'queued' and j.state ~= 'running') then return false end
local now = now_ms()
if j.state == 'queued' then dequeue(id, j); close_gap(j) else leave_running(id, j) end
add_event(id, {job_id = id, type = 'cancelled', at = now / 1000})
finish(id, 'cancelled', now, ttl)
if j.state == 'queued' then return {j.state, now - j.queued_at} end
return {j.state, now - j.started}
"""

_FORGET = r"""
local id = ARGV[2]
local j = load(id)
if j ~= nil then
  if j.state == 'queued' then dequeue(id, j); close_gap(j) elseif j.state == 'running' then leave_running(id, j) end
end
redis.call('DEL', jkey(id), ekey(id))
return 1
"""

# Tries whose lease ran out are exactly the entries idle for BASE ms (see the module doc).
_REQUEUE_EXPIRED = r"""
local ttl = tonumber(ARGV[2])
local out = {}
local start = '0-0'
local now = now_ms()
repeat
  local r = redis.pcall('XAUTOCLAIM', WORK, GROUP, '__REAPER__', BASE, start, 'COUNT', 100, 'JUSTID')
  if r.err then return out end  -- no group yet: nothing ever ran
  start = r[1]
  for _, entry in ipairs(r[2]) do
    local rows = redis.call('XRANGE', WORK, entry, entry)
    redis.call('XACK', WORK, GROUP, entry); redis.call('XDEL', WORK, entry)
    local id = rows[1] and rows[1][2][2]
    local j = id and load(id)
    if j and j.state == 'running' and j.entry == entry then
      local err = 'the lease of worker ' .. j.worker .. ' expired (it stopped responding)'
      local state = end_try(id, j, now, err, true, ttl)
      table.insert(out, {id, state, j.worker, j.tries, j.max_tries, now - j.started})
    end
  end
until start == '0-0'
redis.pcall('XGROUP', 'DELCONSUMER', WORK, GROUP, '__REAPER__')
return out
""".replace("__REAPER__", REAPER)

# The tries a worker left running when it died and came back under the same id.
_RELEASE = r"""
local worker, ttl = ARGV[2], tonumber(ARGV[3])
local out = {}
local now = now_ms()
local pending = redis.pcall('XPENDING', WORK, GROUP, '-', '+', 1000, worker)
if pending.err then return out end  -- no group yet: nothing ever ran
for _, p in ipairs(pending) do
  local entry = p[1]
  local rows = redis.call('XRANGE', WORK, entry, entry)
  local id = rows[1] and rows[1][2][2]
  local j = id and load(id)
  if j and j.state == 'running' and j.worker == worker and j.entry == entry then
    local state = end_try(id, j, now, 'worker ' .. worker .. ' restarted', true, ttl)
    table.insert(out, {id, state, j.tries, j.max_tries, now - j.started})
  else
    redis.call('XACK', WORK, GROUP, entry); redis.call('XDEL', WORK, entry)
  end
end
return out
"""


# Worker health: the status with its TTL, and the index scored by the Redis clock.
# KEYS: worker:<id>, workers; ARGV: status JSON, worker id, ttl ms.
_REPORT_WORKER = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
return now
"""


class RedisQueue(JobQueue):
    """JobQueue over Redis Streams; see the module docstring for the keys."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "tm:q:", result_ttl_s: float = RESULT_TTL_S, url: str = ""
    ):
        self.r = client
        self.url = url
        self.prefix = prefix
        self.result_ttl_s = result_ttl_s
        self._s = {
            name: client.register_script(_PRELUDE + body)
            for name, body in {
                "submit": _SUBMIT,
                "claim": _CLAIM,
                "position": _POSITION,
                "heartbeat": _HEARTBEAT,
                "progress": _PROGRESS,
                "complete": _COMPLETE,
                "fail": _FAIL,
                "cancel": _CANCEL,
                "forget": _FORGET,
                "requeue": _REQUEUE_EXPIRED,
                "release": _RELEASE,
            }.items()
        }
        self._report_worker = client.register_script(_REPORT_WORKER)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "tm:q:",
        result_ttl_s: float = RESULT_TTL_S,
        retries: int = 20,
        backoff_cap_s: float = 2.0,
        health_check_interval_s: float = 15.0,
    ) -> RedisQueue:
        """Connect to `redis://host:port/db` (or rediss://, unix://) and check it answers.

        Commands are retried `retries` times on connection errors, timeouts and
        LOADING with exponential backoff (from 50 ms, doubling, with jitter,
        capped at `backoff_cap_s`), so a Redis restart shorter than about 30 s
        only delays callers; longer outages raise redis.ConnectionError, and the
        worker loop backs off and tries again."""
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=backoff_cap_s), retries),
            retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
            health_check_interval=health_check_interval_s,
            socket_keepalive=True,
            socket_connect_timeout=5,
            socket_timeout=30,
        )
        queue = cls(client, prefix=prefix, result_ttl_s=result_ttl_s, url=url)
        await client.ping()
        return queue

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
        return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))

    async def close(self) -> None:
        await self.r.aclose()

    async def _call(self, name: str, *args):
        return await self._s[name](args=[self.prefix, *args])

    @property
    def _ttl(self) -> int:  # ms, for PEXPIRE
        return max(1, int(self.result_ttl_s * 1000))

    # -- bot side -------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        try:
            round_ = await self._call(
                "submit", job.id, job.to_json(), str(job.user_id), guild_key(job), job.max_tries
            )
        except ResponseError as error:
            if str(error).startswith("EXISTS"):
                raise ValueError(f"job {job.id} already exists") from error
            raise
        if round_:
            self._changed(
                Change(job.id, JobState.QUEUED, reason=f"{job.kind} for user {job.user_id} in {guild_key(job)}, round {round_}")
            )

    async def position(self, job_id: str) -> int | None:
        pos = await self._call("position", job_id)
        return None if pos is None else int(pos)

    async def cancel(self, job_id: str) -> bool:
        out = await self._call("cancel", job_id, self._ttl)
        if out is None:
            return False
        was, ms = JobState(out[0]), int(out[1]) / 1000
        if was is JobState.RUNNING:
            self._changed(Change(job_id, JobState.CANCELLED, was, ran=ms))
        else:
            self._changed(Change(job_id, JobState.CANCELLED, was, waited=ms))
        return True

    async def state(self, job_id: str) -> JobState | None:
        state = await self.r.hget(f"{self.prefix}job:{job_id}", "state")
        return None if state is None else JobState(state)

    async def read_events(self, cursors: Mapping[str, str]) -> list[JobEvent]:
        if not cursors:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for job_id, cursor in list(cursors.items()):  # a snapshot: jobs are followed while this awaits
                pipe.xrange(f"{self.prefix}ev:{job_id}", f"({cursor}" if cursor else "-", "+")
            replies = await pipe.execute()
        events: list[JobEvent] = []
        for entries in replies:
            for entry_id, fields in entries:
                events.append(JobEvent.from_json(fields["e"]).model_copy(update={"cursor": entry_id}))
        return events

    async def _next_events(self, followed: Followed, timeout: float) -> list[JobEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            followed.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return []
            if not followed.cursors:
                try:
                    async with asyncio.timeout(left):
                        await followed.changed.wait()
                except asyncio.TimeoutError:  # the built-in one; TimeoutError here is redis's
                    return []
                continue
            streams = {f"{self.prefix}ev:{job_id}": cursor or "0-0" for job_id, cursor in followed.cursors.items()}
            reply = await self.r.xread(streams, block=max(1, int(min(left, PICKUP_S) * 1000)))
            events = [
                JobEvent.from_json(fields["e"]).model_copy(update={"cursor": entry_id})
                for _, entries in reply or []
                for entry_id, fields in entries
            ]
            if events:
                return events

    async def forget(self, job_id: str) -> None:
        await self._call("forget", job_id)
        log.debug("job %s forgotten", job_id)

    # -- worker side ----------------------------------------------------------

    async def claim(self, worker_id: str, lease_s: float) -> Job | None:
        await self.requeue_expired()
        out = await self._call("claim", worker_id, self._lease_ms(lease_s))
        if out is None:
            return None
        job_id, data, tries, max_tries, waited_ms = out
        self._changed(
            Change(job_id, JobState.RUNNING, JobState.QUEUED, worker_id, int(tries), int(max_tries),
                   waited=int(waited_ms) / 1000)
        )
        return Job.from_json(data)

    async def wait_for_work(self, timeout: float) -> None:
        await self.r.blpop([f"{self.prefix}wake"], timeout=max(0.01, timeout))

    @staticmethod
    def _lease_ms(lease_s: float) -> int:
        return max(1, min(LEASE_BASE_MS, int(lease_s * 1000)))

    async def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        return bool(await self._call("heartbeat", job_id, worker_id, self._lease_ms(lease_s)))

    async def progress(self, job_id: str, worker_id: str, percent: float, preview: bytes | None = None) -> None:
        event = JobEvent(job_id=job_id, type=EventType.PROGRESS, percent=percent, preview=preview, worker=worker_id)
        await self._call("progress", job_id, worker_id, event.to_json())

    async def complete(self, job_id: str, worker_id: str, result: JobResult) -> bool:
        event = JobEvent(job_id=job_id, type=EventType.DONE, result=result, worker=worker_id)
        out = await self._call("complete", job_id, worker_id, event.to_json(), self._ttl)
        if out is None:
            return False
        submitted, queued_at, started, now, tries, max_tries = (int(x) for x in out)
        self._changed(
            Change(job_id, JobState.DONE, JobState.RUNNING, worker_id, tries, max_tries,
                   waited=(started - queued_at) / 1000, ran=(now - started) / 1000, total=(now - submitted) / 1000)
        )
        return True

    async def fail(self, job_id: str, worker_id: str, error: str, retryable: bool = True) -> JobState:
        state, tries, max_tries, ran_ms = await self._call(
            "fail", job_id, worker_id, error, "1" if retryable else "0", self._ttl
        )
        if int(tries):
            self._changed(
                Change(job_id, JobState(state), JobState.RUNNING, worker_id, int(tries), int(max_tries),
                       reason=error, ran=int(ran_ms) / 1000)
            )
        return JobState(state)

    async def requeue_expired(self) -> int:
        out = await self._call("requeue", self._ttl)
        for job_id, state, worker, tries, max_tries, ran_ms in out:
            self._changed(
                Change(job_id, JobState(state), JobState.RUNNING, worker, int(tries), int(max_tries),
                       reason=f"the lease of worker {worker} expired (it stopped responding)", ran=int(ran_ms) / 1000)
            )
        return len(out)

    async def release(self, worker_id: str) -> int:
        out = await self._call("release", worker_id, self._ttl)
        for job_id, state, tries, max_tries, ran_ms in out:
            self._changed(
                Change(job_id, JobState(state), JobState.RUNNING, worker_id, int(tries), int(max_tries),
                       reason=f"worker {worker_id} restarted", ran=int(ran_ms) / 1000)
            )
        return len(out)

    # -- worker health -------------------------------------------------------------

    async def report_worker(self, status: WorkerStatus) -> None:
        ttl_ms = int(WORKER_TTL_S * 1000)
        await self._report_worker(
            keys=[f"{self.prefix}worker:{status.worker_id}", f"{self.prefix}workers"],
            args=[status.model_dump_json(), status.worker_id, ttl_ms],
        )

    async def workers(self) -> list[WorkerStatus]:
        seen = await self.r.zrevrange(f"{self.prefix}workers", 0, -1, withscores=True)
        if not seen:
            return []
        blobs = await self.r.mget([f"{self.prefix}worker:{worker_id}" for worker_id, _ in seen])
        return [
            WorkerStatus.model_validate_json(blob).model_copy(update={"last_seen": score / 1000})
            for (_, score), blob in zip(seen, blobs, strict=True)
            if blob is not None  # expired
        ]
