"""Discord's limits, put back into SimCord for the tests (SimCord enforces none of them).

- **Rate limits** (Discord's buckets, on SimCord's virtual clock, which the bot's timers follow):
  message writes (create, edit, delete) per channel, 5 per 5 s; an interaction's webhook (its
  followups and edits while its 15-minute token lives) per interaction token, 5 per 5 s; 50
  requests per second across the bot, interaction routes exempt. A request over a budget is a
  **429**: it is recorded, and the request waits out `retry_after` and goes again, as discord.py
  does (so the bot feels the wait inside the awaited call, as on real Discord).
- **Upload limits**: a request whose files pass the server's limit (10 MiB without boosts,
  50 MiB at boost level 2, 100 MiB at 3; 10 MiB in DMs) is refused with HTTP 413, error 40005.
  Interactions carry the limit as Discord sends it (`attachment_size_limit`), and guilds their
  boost level, so `interaction.filesize_limit` and `guild.filesize_limit` are what they would be.
- **The first answer within 3 s of real time**: an interaction answered later (wall clock, not
  SimCord's virtual one) is refused as Discord refuses it (10062, Unknown interaction) and recorded.

Every test that drives the bot through SimCord runs under these (tests/conftest.py), and fails
if it broke one. `bench/community_load.py` measures a busy server under them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import simcord.interactions as sim_interactions
from simcord.backend import serializers as sim_serializers
from simcord.http import client as sim_client

CHANNEL_WRITES = (5, 5.0)  # message create/edit/delete, per channel
INTERACTION_WEBHOOK = (5, 5.0)  # followups and edits through one interaction's token
GLOBAL = (50, 1.0)  # every request but interaction routes
UPLOAD_LIMITS = {0: 10 * 2**20, 1: 10 * 2**20, 2: 50 * 2**20, 3: 100 * 2**20}  # by boost level
FIRST_ANSWER_S = 3.0
TRIES = 5  # discord.py's tries of a rate-limited request

_INTERACTION_CALLBACK = re.compile(r"^/interactions/(\d+)/([^/]+)/callback$")
_WEBHOOK = re.compile(r"^/webhooks/(\d+)/([^/]+)")
_CHANNEL_MESSAGE = re.compile(r"^/channels/(\d+)/messages(?:/(\d+))?$")


@dataclass(frozen=True)
class Violation:
    kind: str  # "429", "413" or "late answer"
    route: str  # "PATCH /channels/{id}/messages/{id}" (ids and tokens left out)
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} on {self.route}: {self.detail}"


@dataclass(frozen=True)
class Write:
    """One request as Discord saw it, for benches and tests to read."""

    at: float  # SimCord's virtual clock
    wall: float  # time.time()
    method: str
    route: str
    bucket: str | None  # "channel:ID" or "interaction:ID"; None: no per-route bucket modelled
    channel_id: int | None
    message_id: int | None
    upload: int  # bytes of files


@dataclass
class _Bucket:
    """Discord's bucket: `limit` requests, then none until `per` seconds after the first."""

    limit: int
    per: float
    remaining: int = 0
    reset_at: float = float("-inf")

    def take(self, now: float) -> float:
        """0 when the request may go now (and counts it), else how long until it may."""
        if now >= self.reset_at:
            self.remaining, self.reset_at = self.limit, now + self.per
        if self.remaining <= 0:
            return self.reset_at - now
        self.remaining -= 1
        return 0.0


@dataclass
class DiscordLimits:
    violations: list[Violation] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    boosts: dict[int, int] = field(default_factory=dict)  # guild id -> boost level
    # guild id -> the upload limit Discord enforces where it differs from the one it tells the bot
    # (boosts lost between an interaction and its upload, before the bot hears of it)
    enforced: dict[int, int] = field(default_factory=dict)
    first_answer_s: float = FIRST_ANSWER_S
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _asked: dict[int, float] = field(default_factory=dict)  # interaction id -> perf_counter at creation
    _undo: list[Callable[[], None]] = field(default_factory=list)

    # -- what a test sets and reads ---------------------------------------------------------

    def boost(self, guild: Any, level: int) -> None:
        """Give a SimCord guild a boost level (and so its upload limit); the bot hears of it as on Discord."""
        self.boosts[int(guild.id)] = level
        guild._env.backend.edit_guild(guild.id, {})  # GUILD_UPDATE, with the new premium_tier

    def upload_limit(self, guild_id: int | None) -> int:
        return UPLOAD_LIMITS[self.boosts.get(guild_id, 0)] if guild_id is not None else UPLOAD_LIMITS[0]

    def take_violations(self) -> list[Violation]:
        """The violations so far, cleared: for tests that break a limit on purpose."""
        taken, self.violations = self.violations, []
        return taken

    # -- installing it over SimCord's transports ----------------------------------------------

    def install(self) -> DiscordLimits:
        self._patch(sim_client.FakeHTTPClient, "request", self._wrap_http)
        self._patch(sim_client.FakeWebhookAdapter, "request", self._wrap_webhook)
        self._patch(sim_interactions, "base_payload", self._wrap_payload)
        self._patch(sim_serializers, "guild_create_payload", self._wrap_guild)
        return self

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _patch(self, owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, wrap(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def _wrap_http(self, original):
        limits = self

        async def request(transport, route, *, files=None, form=None, **kwargs):
            await limits.gate(transport.backend, route.method, sim_client._path_of(route.url), files)
            return await original(transport, route, files=files, form=form, **kwargs)

        return request

    def _wrap_webhook(self, original):
        limits = self

        async def request(adapter, route, session, *, files=None, **kwargs):
            await limits.gate(adapter.backend, route.method, sim_client._path_of(route.url), files)
            return await original(adapter, route, session, files=files, **kwargs)

        return request

    def _wrap_payload(self, original):
        limits = self

        def base_payload(backend, **kwargs):
            record, payload = original(backend, **kwargs)
            limits._asked[record.id] = time.perf_counter()
            payload["attachment_size_limit"] = limits.upload_limit(kwargs.get("guild_id"))
            return record, payload

        return base_payload

    def _wrap_guild(self, original):
        limits = self

        def guild_create_payload(backend, guild):
            payload = original(backend, guild)
            payload["premium_tier"] = limits.boosts.get(guild.id, 0)
            return payload

        return guild_create_payload

    # -- the limits ------------------------------------------------------------------------

    async def gate(self, backend: Any, method: str, path: str, files: Any) -> None:
        """Before SimCord handles a request: the 3 s answer, the upload limit, the rate limits."""
        route = f"{method} {_route_shape(path)}"
        bucket, channel_id, message_id, guild_id, exempt = self._classify(backend, method, path)
        upload = sum(_file_size(f) for f in files or ())
        if (callback := _INTERACTION_CALLBACK.match(path)) is not None:
            asked = self._asked.get(int(callback.group(1)))
            took = time.perf_counter() - asked if asked is not None else 0.0
            if took > self.first_answer_s:
                self.violations.append(Violation("late answer", route, f"first answer after {took:.2f} s of real time"))
                _raise(404, 10062, "Unknown interaction")
        if upload > (limit := self.enforced.get(guild_id, self.upload_limit(guild_id))):
            self.violations.append(Violation("413", route, f"{upload:,} bytes of files over the {limit:,}-byte limit"))
            _raise(413, 40005, "Request entity too large")
        for _ in range(TRIES):
            now = backend.clock.elapsed
            wait = max(
                self._bucket(bucket).take(now) if bucket else 0.0,
                0.0 if exempt else self._bucket("global").take(now),
            )
            if wait <= 0:
                break
            self.violations.append(Violation("429", route, f"bucket {bucket or 'global'}: retry_after {wait:.2f} s"))
            await _sleep(wait)  # discord.py waits out retry_after, then tries again
        else:
            _raise(429, 0, "You are being rate limited.")
        self.writes.append(Write(backend.clock.elapsed, time.time(), method, route, bucket, channel_id, message_id, upload))

    def _bucket(self, key: str) -> _Bucket:
        if key not in self._buckets:
            limit, per = GLOBAL if key == "global" else CHANNEL_WRITES if key.startswith("channel:") else INTERACTION_WEBHOOK
            self._buckets[key] = _Bucket(limit, per)
        return self._buckets[key]

    @staticmethod
    def _classify(backend: Any, method: str, path: str) -> tuple[str | None, int | None, int | None, int | None, bool]:
        """(bucket, channel id, message id, guild id, exempt from the global limit)."""
        if (match := _INTERACTION_CALLBACK.match(path)) is not None:
            record = backend.interactions.get(int(match.group(1)))
            return None, getattr(record, "channel_id", None), None, getattr(record, "guild_id", None), True
        if (match := _WEBHOOK.match(path)) is not None and match.group(2) in backend.interaction_tokens:
            record = backend.interactions[backend.interaction_tokens[match.group(2)]]
            message = re.search(r"/messages/(\d+|@original)$", path)
            message_id = None if message is None else record.message_id if message.group(1) == "@original" else int(message.group(1))
            return f"interaction:{record.id}", record.channel_id, message_id, record.guild_id, True
        if (match := _CHANNEL_MESSAGE.match(path)) is not None and method in ("POST", "PATCH", "DELETE"):
            channel_id = int(match.group(1))
            channel = backend.channels.get(channel_id)
            message_id = int(match.group(2)) if match.group(2) else None
            return f"channel:{channel_id}", channel_id, message_id, getattr(channel, "guild_id", None), False
        return None, None, None, None, False


_sleep = asyncio.sleep  # SimCord makes the bot's sleeps virtual


def _route_shape(path: str) -> str:
    return re.sub(r"/\d{5,}|/simcord_interaction_\d+", "/{id}", path)


def _file_size(file: Any) -> int:
    fp = getattr(file, "fp", None)
    if fp is None:
        return len(file) if isinstance(file, bytes | bytearray) else 0
    at = fp.tell()
    size = fp.seek(0, 2)
    fp.seek(at)
    return size


class _Response:
    def __init__(self, status: int):
        self.status = status
        self.reason = {404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests"}.get(status, "Error")
        self.headers: dict[str, str] = {}


def _raise(status: int, code: int, message: str) -> None:
    response = _Response(status)
    data = {"code": code, "message": message}
    if status == 404:
        raise discord.NotFound(response, data)  # type: ignore[arg-type]
    raise discord.HTTPException(response, data)  # type: ignore[arg-type]
