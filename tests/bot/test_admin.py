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


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_banned_words_match_whole_words_and_a_star_asks_for_more(simcord_env, world, mod):
    _, channel, alice, _ = world
    done = await mod.slash(channel, "admin banned_word", word="ASS", banned=True)
    assert done.ephemeral and done.response.content.startswith("Banned words: `ass`. Each matches whole words")

    await alice.slash(channel, "imagine", prompt="a class photo of a bass player")  # whole words only
    assert channel.last_message.content.startswith(f"**a class photo of a bass player** - {alice.mention}")
    for prompt in ("an ASS on a hill", "a donkey --no ｂａｄ, a.s.s", "an a s s on a hill", "a kite, ass-shaped"):
        refused = await alice.slash(channel, "imagine", prompt=prompt)  # the folding still holds
        assert refused.ephemeral and "doesn't allow the word `ass`" in refused.response.content, prompt

    await mod.slash(channel, "admin banned_word", word="ass", banned=False)
    await mod.slash(channel, "admin banned_word", word="*ass*", banned=True)
    refused = await alice.slash(channel, "imagine", prompt="a C.L.A.S.S photo")
    assert refused.ephemeral and "doesn't allow the word `*ass*`" in refused.response.content
    await mod.slash(channel, "admin banned_word", word="*ass*", banned=False)
    await mod.slash(channel, "admin banned_word", word="gore*", banned=True)  # a prefix: gore, gorefest, not ungored
    assert (await alice.slash(channel, "imagine", prompt="a gorefest")).ephemeral
    await alice.slash(channel, "imagine", prompt="an ungored bull")
    assert channel.last_message.content.startswith("**an ungored bull**")

    empty = await mod.slash(channel, "admin banned_word", word="**", banned=True)
    assert empty.ephemeral and "`**` has no letters to match" in empty.response.content
    acknowledge_user_errors(simcord_env)
