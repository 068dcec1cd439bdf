"""Server owner rules: channels, banned words, per-member and per-server limits."""

from __future__ import annotations

import pytest

from tests.bot.conftest import acknowledge_user_errors

NO_WORKER = {"TASTEMAKER_WORKERS": "0"}


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_server_limit_caps_the_whole_server(simcord_env, world, mod):
    _, channel, alice, bob = world
    result = await mod.slash(channel, "admin server_limit", jobs=1)
    assert result.ephemeral and "1 jobs at once" in result.response.content

    await alice.slash(channel, "imagine", prompt="a red kite")
    refused = await bob.slash(channel, "imagine", prompt="a blue kite")
    assert refused.ephemeral and "This server already has 1 jobs" in refused.response.content
    assert "blue kite" not in channel.last_message.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_banned_words_and_allowed_channels(simcord_env, world, mod):
    guild, channel, alice, _ = world
    other = guild.create_text_channel("chat")
    await mod.slash(channel, "admin banned_word", word="Gore", banned=True)
    refused = await alice.slash(channel, "imagine", prompt="a gore fest")
    assert refused.ephemeral and "`gore`" in refused.response.content

    await mod.slash(channel, "admin channel", channel=channel, allowed=True)
    elsewhere = await alice.slash(other, "imagine", prompt="a kite")
    assert elsewhere.ephemeral and f"<#{channel.id}>" in elsewhere.response.content
    assert other.last_message is None
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_members_cannot_use_admin_commands(world):
    _, channel, alice, _ = world
    assert "admin" not in alice.available_commands(channel)
