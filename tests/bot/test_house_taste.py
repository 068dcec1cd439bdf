"""/admin house_taste: a server-wide taste mixed into every prompt; `--p server`,
the community's own taste. Driven as members and a moderator would, through SimCord."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import job_message
from tests.bot.test_prefer import job_rows, vote
from tests.bot.test_use_signals import info_field

UNLOCK = {"TASTEMAKER_UNLOCK_VOTES": "3"}


async def code_of(bot, member, channel) -> str:
    await vote(bot, member.id, 3)
    [code] = re.findall(r"`([a-z2-7]{7})`", info_field(await member.slash(channel, "info"), "Current code"))
    return code


async def drawn(env, channel, prompt: str) -> str:
    """The finished message of a prompt a member just sent (its grid and seed: "at 50%" is no progress)."""

    def done() -> bool:
        message = job_message(channel, f"**{prompt}** - ")
        return message is not None and bool(message.attachments) and " · seed " in message.content

    await run_until(env, done)
    return job_message(channel, f"**{prompt}** - ").content


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [UNLOCK])
async def test_a_house_taste_steers_every_prompt_until_it_is_off(simcord_env, world, simcord_bot, mod):
    _, channel, alice, bob = world
    code = await code_of(simcord_bot, alice, channel)

    made = await mod.slash(channel, "admin house_taste", code=code.upper(), weight=0.5)
    assert made.ephemeral
    assert f"This server's house taste is `{code}` (set by {mod.mention}) at **50%**" in made.response.content
    shown = await mod.slash(channel, "admin house_taste")
    assert shown.response.content == made.response.content
    bob_info = await bob.slash(channel, "info")
    assert info_field(bob_info, "This server's house taste").startswith(f"`{code}` · 50% of every prompt's taste here")

    # A plain prompt: the house taste alone steers it, and the message says so.
    await bob.slash(channel, "imagine", prompt="a kite over a field")
    plain = await drawn(simcord_env, channel, "a kite over a field")
    assert f"house taste `{code}`" in plain and "--p" not in plain
    # With --p: the member's mix and the house's half.
    await bob.slash(channel, "imagine", prompt=f"a boat --p {code}::2")
    mixed = await drawn(simcord_env, channel, f"a boat --p {code}::2")
    assert f"`--p {code}::2 --s 100`" in mixed and f"house taste `{code}` at 50%" in mixed
    # The community's taste doesn't exist yet with one member's votes: a clear, private refusal.
    early = await bob.slash(channel, "imagine", prompt="a boat --p server")
    assert early.ephemeral and "`server` is the community's own taste, and there is none yet" in early.response.content
    acknowledge_user_errors(simcord_env)
    # Not with --style raw.
    await bob.slash(channel, "imagine", prompt="a tree --style raw")
    assert "house taste" not in await drawn(simcord_env, channel, "a tree --style raw")

    # The code went private: the owner's setting never fails a member's prompt; the message says why.
    await alice.slash(channel, "codes", code=code, visibility="private")
    await bob.slash(channel, "imagine", prompt="a lamp")
    failed = await drawn(simcord_env, channel, "a lamp")
    assert f"house taste `{code}` not applied: This server's house taste `{code}` is private" in failed
    assert "seed" in failed and "failed" not in failed

    # Off: prompts are their own again.
    off = await mod.slash(channel, "admin house_taste", code="off")
    assert off.ephemeral and "This server has no house taste" in off.response.content
    await bob.slash(channel, "imagine", prompt="a cup")
    assert "house taste" not in await drawn(simcord_env, channel, "a cup")
    assert "This server's house taste" not in [f.name for f in (await bob.slash(channel, "info")).response.embeds[0].fields]


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{**UNLOCK, "TASTEMAKER_WORKERS": "0"}])
async def test_a_house_taste_is_checked_when_it_is_set(simcord_env, world, simcord_bot, mod):
    _, channel, alice, bob = world

    def refused(result, expected: str) -> None:
        assert result.ephemeral
        assert expected in result.response.content, result.response.content
        assert acknowledge_user_errors(simcord_env)[-1] == result.response.content

    # Members don't get the command at all.
    assert "admin house_taste" in mod.available_commands(channel)
    assert not [name for name in alice.available_commands(channel) if name.startswith("admin")]

    refused(await mod.slash(channel, "admin house_taste", code="zzzzzzz"), "Unknown code `zzzzzzz`")
    refused(await mod.slash(channel, "admin house_taste", code="watercolor"), "`watercolor` is not a code")

    # Another member's private code is refused; the admin's own private code may serve.
    theirs = await code_of(simcord_bot, alice, channel)
    await alice.slash(channel, "codes", code=theirs, visibility="private")
    refused(await mod.slash(channel, "admin house_taste", code=theirs), f"`{theirs}` is another member's private code")
    mine = await code_of(simcord_bot, mod, channel)
    await mod.slash(channel, "admin house_taste", code=mine, weight=0.25)  # public: taken
    await mod.slash(channel, "codes", code=mine, visibility="private")
    kept = await mod.slash(channel, "admin house_taste", code=mine, weight=0.3)
    assert f"house taste is `{mine}` (set by {mod.mention}) at **30%**" in kept.response.content
    await bob.slash(channel, "imagine", prompt="a kite")
    [(_, prompt, request)] = await job_rows(simcord_bot)
    assert prompt == "a kite" and request["note"] == f"house taste `{mine}`" and request["house"] == [mine, 1.0]

    # `server`: the community's taste, once there is one (three members with votes).
    refused(await mod.slash(channel, "admin house_taste", code="server"), "`server` is the community's own taste, and there is none yet")
    bobs = await code_of(simcord_bot, bob, channel)
    made = await mod.slash(channel, "admin house_taste", code="SERVER", weight=0.05)
    assert "house taste is `server` (the community's own taste) at **5%**" in made.response.content

    # `--p server` in a prompt, alone or weighted with a code; bad forms name what is wrong.
    await bob.slash(channel, "imagine", prompt="a cat --p server")
    assert channel.last_message.content.startswith(f"**a cat --p server** - {bob.mention}")
    await bob.slash(channel, "imagine", prompt=f"a dog --p SERVER::2 {bobs}")
    assert channel.last_message.content.startswith(f"**a dog --p server::2 {bobs}** - {bob.mention}")
    [*_, cat, dog] = await job_rows(simcord_bot)
    assert cat[2]["codes"] == [["server", 1.0]] and cat[2]["note"] == "house taste `server` at 5%"
    assert dog[2]["codes"] == [["server", 2.0], [bobs, 1.0]]
    refused(await bob.slash(channel, "imagine", prompt="a cat --p server::0"), "`--p server::0` has a bad weight `0`")
    refused(await bob.slash(channel, "imagine", prompt="a cat --p serve"), "`serve` is not a code")


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{**UNLOCK, "TASTEMAKER_WORKERS": "0"}])
async def test_a_bare_p_is_the_default_mix_and_shows_its_codes(simcord_env, world, simcord_bot):
    import numpy as np

    from engine import profiles
    from engine.db import members

    _, channel, alice, _ = world
    main = await code_of(simcord_bot, alice, channel)
    await profiles.create_profile(simcord_bot.db, alice.id, "portraits")
    rng = np.random.default_rng(7)
    for _ in range(3):
        pair = await profiles.next_pair(simcord_bot.db, alice.id, rng, profile_name="portraits")
        assert await profiles.answer_pair(simcord_bot.db, alice.id, pair.id, "right")
    portraits = await profiles.current_code(simcord_bot.db, alice.id, 3, "portraits")

    # One profile: a bare --p is the main profile's current code, as before.
    await alice.slash(channel, "imagine", prompt="a fox --p")
    assert channel.last_message.content.startswith(f"**a fox --p {main}** - {alice.mention}")

    # A mix (as /prefer personalize sets it): a bare --p, and personalization on by default, is its codes and weights.
    await profiles.set_defaults(simcord_bot.db, alice.id, [("main", 2.0), ("portraits", 1.0)])
    await members.update_settings(simcord_bot.db, alice.id, personalize=True)
    await alice.slash(channel, "imagine", prompt="a hen --p")
    assert channel.last_message.content.startswith(f"**a hen --p {main}::2 {portraits}** - {alice.mention}")
    await alice.slash(channel, "imagine", prompt="an owl --s 250")
    assert channel.last_message.content.startswith(f"**an owl --p {main}::2 {portraits} --s 250** - {alice.mention}")
    [*_, owl] = await job_rows(simcord_bot)
    assert owl[2]["codes"] == [[main, 2.0], [portraits, 1.0]]

    info = await alice.slash(channel, "info")
    assert info_field(info, "Profiles") == f"**main** `{main}` · **portraits** `{portraits}`"
    assert info_field(info, "Default mix (a bare `--p`)") == "main ×2 + portraits ×1"
