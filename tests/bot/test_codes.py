"""/codes: listing a member's codes and making one private or public."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors
from tests.bot.test_prefer import job_rows, vote

POOLED = {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_UNLOCK_VOTES": "3"}


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [POOLED])
async def test_private_codes_refuse_others_but_not_the_owner(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world

    def refused(result, expected: str) -> None:
        assert result.ephemeral
        assert expected in result.response.content, result.response.content
        assert acknowledge_user_errors(simcord_env)[-1] == result.response.content

    # No codes yet: the member learns how to get one.
    empty = await alice.slash(channel, "codes")
    assert empty.ephemeral and "You have no codes yet: rank 3 more pairs" in empty.response.content

    # Three votes unlock the profile: its code is listed as current and public.
    await vote(simcord_bot, alice.id, 3)
    listed = await alice.slash(channel, "codes")
    assert listed.ephemeral
    [line] = [line for line in listed.response.content.splitlines() if line.startswith("`")]
    code = re.match(r"`([a-z2-7]{7})`", line).group(1)
    assert "v1 · 3 votes" in line and "public" in line and "**current**" in line and "<t:" in line

    # Only the owner can change it; unknown codes are named.
    refused(await bob.slash(channel, "codes", code=code, visibility="private"), f"`{code}` is not one of your codes")
    refused(await alice.slash(channel, "codes", code="zzzzzzz", visibility="private"), "Unknown code `zzzzzzz`")
    refused(await alice.slash(channel, "codes", visibility="private"), "Name the code to make private")

    made = await alice.slash(channel, "codes", code=code.upper(), visibility="private")
    assert made.ephemeral and f"`{code}` is now private" in made.response.content
    assert "🔒 private" in (await alice.slash(channel, "codes")).response.content

    # Others can't use a private code; nothing is queued for them.
    refused(await bob.slash(channel, "imagine", prompt=f"a dog --p {code}"), f"Code `{code}` is private")
    assert await job_rows(simcord_bot) == []
    # The owner still can.
    await alice.slash(channel, "imagine", prompt=f"a cat --p {code}")
    assert channel.last_message.content.startswith(f"**a cat --p {code}** - {alice.mention}")

    # Public again: now bob can use it too.
    await alice.slash(channel, "codes", code=code, visibility="public")
    await bob.slash(channel, "imagine", prompt=f"a dog --p {code}")
    assert channel.last_message.content.startswith(f"**a dog --p {code}** - {bob.mention}")
    assert [prompt for _, prompt, _ in await job_rows(simcord_bot)] == [f"a cat --p {code}", f"a dog --p {code}"]


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_codes_without_a_rank_pool(simcord_env, world):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "codes")
    assert result.ephemeral and "no rank pool yet" in result.response.content
