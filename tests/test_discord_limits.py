"""The test world's Discord limits (tests/discord_limits.py) refuse what Discord refuses."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import discord
import pytest

import discord_limits
from discord_limits import DiscordLimits


@dataclass
class Backend:
    """What the limits read of SimCord's backend: its clock, interactions and channels."""

    clock: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(elapsed=0.0))
    interactions: dict = field(default_factory=dict)
    interaction_tokens: dict = field(default_factory=dict)
    channels: dict = field(default_factory=dict)

    def interaction(self, id_: int, guild_id: int | None = 10) -> str:
        token = f"simcord_interaction_{id_}"
        self.interactions[id_] = SimpleNamespace(id=id_, token=token, channel_id=20, guild_id=guild_id, message_id=30)
        self.interaction_tokens[token] = id_
        return token


@pytest.fixture
def backend(monkeypatch) -> Backend:
    backend = Backend(channels={20: SimpleNamespace(guild_id=10), 21: SimpleNamespace(guild_id=10)})

    async def virtual_sleep(seconds: float) -> None:  # a 429's wait moves the virtual clock, as SimCord's does
        backend.clock.elapsed += seconds

    monkeypatch.setattr(discord_limits, "_sleep", virtual_sleep)
    return backend


def file_of(size: int) -> discord.File:
    return discord.File(io.BytesIO(b"\0" * size), filename="grid.jpg")


async def test_a_channel_takes_5_message_writes_in_5_s_and_a_sixth_waits_as_a_429(backend):
    limits = DiscordLimits()
    for _ in range(5):
        await limits.gate(backend, "PATCH", "/channels/20/messages/30", None)
    await limits.gate(backend, "POST", "/channels/21/messages", None)  # another channel: a bucket of its own
    assert limits.violations == []
    await limits.gate(backend, "PATCH", "/channels/20/messages/31", None)
    [violation] = limits.take_violations()
    assert violation.kind == "429" and "channel:20" in violation.detail and "retry_after 5.00 s" in violation.detail
    assert backend.clock.elapsed == 5.0  # it went once the bucket reset, as discord.py sends it again
    assert len(limits.writes) == 7


async def test_an_interactions_webhook_is_a_bucket_of_its_own_outside_the_global_limit(backend):
    limits = DiscordLimits()
    first, second = backend.interaction(1), backend.interaction(2)
    for _ in range(5):
        await limits.gate(backend, "PATCH", f"/webhooks/99/{first}/messages/@original", None)
        await limits.gate(backend, "PATCH", f"/webhooks/99/{second}/messages/30", None)
    for n in range(50):  # the bot's 50 a second, on routes without a bucket of their own here
        await limits.gate(backend, "GET", f"/users/{n}", None)
    assert limits.violations == []
    assert {w.message_id for w in limits.writes if w.bucket == "interaction:1"} == {30}  # @original is its message
    await limits.gate(backend, "GET", "/users/51", None)
    assert [v.detail for v in limits.take_violations()] == ["bucket global: retry_after 1.00 s"]
    await limits.gate(backend, "POST", f"/webhooks/99/{first}", None)
    [violation] = limits.take_violations()
    assert "bucket interaction:1" in violation.detail


async def test_uploads_over_the_servers_limit_are_refused_with_40005(backend):
    limits = DiscordLimits()
    await limits.gate(backend, "PATCH", "/channels/20/messages/30", [file_of(10 * 2**20)])
    with pytest.raises(discord.HTTPException) as refused:
        await limits.gate(backend, "PATCH", "/channels/20/messages/30", [file_of(10 * 2**20 + 1)])
    assert (refused.value.status, refused.value.code) == (413, 40005)
    assert [v.kind for v in limits.take_violations()] == ["413"]
    limits.boosts[10] = 2  # boost level 2: 50 MiB
    await limits.gate(backend, "PATCH", "/channels/20/messages/30", [file_of(40 * 2**20)])
    assert limits.violations == []


async def test_a_first_answer_after_3_s_of_real_time_is_refused(backend, monkeypatch):
    limits = DiscordLimits()
    token = backend.interaction(5)
    limits._asked[5] = time.perf_counter() - 3.2
    with pytest.raises(discord.NotFound) as refused:
        await limits.gate(backend, "POST", f"/interactions/5/{token}/callback", None)
    assert refused.value.code == 10062
    [late] = limits.take_violations()
    assert late.kind == "late answer" and "3.2" in late.detail
    limits._asked[6] = time.perf_counter() - 2.5
    backend.interaction(6)
    await limits.gate(backend, "POST", "/interactions/6/simcord_interaction_6/callback", None)
    assert limits.violations == []


def test_the_layer_leaves_simcord_as_it_was():
    from simcord.http import client

    before = client.FakeHTTPClient.request
    limits = DiscordLimits().install()
    assert client.FakeHTTPClient.request is not before
    limits.uninstall()
    assert client.FakeHTTPClient.request is before
