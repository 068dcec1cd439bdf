"""/codes: listing a member's codes and making them private or public; privacy that lasts."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import job_message
from tests.bot.test_moodboard import moodboard_done, png
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


def field(result, name: str) -> str:
    [embed] = result.response.embeds
    return next(f.value for f in embed.fields if f.name == name)


def codes_in(content: str) -> list[str]:
    return re.findall(r"^`([a-z2-7]{7})`", content, flags=re.MULTILINE)


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [POOLED])
async def test_a_private_taste_stays_private_after_new_votes(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, bob = world
    # Here every vote makes a new version, so each step below has a new code to check
    # (codes that change only when predictions move are tested in tests/engine).
    from engine import profiles

    monkeypatch.setattr(profiles, "CODE_MOVE_THRESHOLD", -1.0)

    def refused(result, code: str) -> None:
        assert result.ephemeral
        assert f"Code `{code}` is private: only its owner can use it." in result.response.content
        assert acknowledge_user_errors(simcord_env)[-1] == result.response.content

    await vote(simcord_bot, alice.id, 3)
    info = await alice.slash(channel, "info")
    [old] = re.findall(r"`([a-z2-7]{7})`", field(info, "Current code"))
    assert f"others: `--p {old}`" in field(info, "Current code")

    made = await alice.slash(channel, "codes", code=old, visibility="private")
    assert "Your new taste codes start private too" in made.response.content

    # A vote makes a new version; it is private like the old one, and /info invites nobody.
    await vote(simcord_bot, alice.id, 1)
    info = await alice.slash(channel, "info")
    current = field(info, "Current code")
    [new] = re.findall(r"`([a-z2-7]{7})`", current)
    assert new != old
    assert "🔒 private: only you can use it" in current and "others" not in current
    listed = (await alice.slash(channel, "codes")).response.content
    # A first moodboard would start private too: it follows the main profile (engine/profiles.py privacy).
    assert "New codes start 🔒 private." in listed
    assert codes_in(listed) == [new, old] and listed.count("🔒 private · ") == 2  # both lines

    for code in (new, old):
        refused(await bob.slash(channel, "imagine", prompt=f"a dog --p {code}"), code)
        refused(await bob.slash(channel, "imagine", prompt=f"a dog --sref {code}"), code)
    assert await job_rows(simcord_bot) == []  # nothing queued for bob

    # Sharing one code shares that one; the next version starts private again.
    shared = await alice.slash(channel, "codes", code=new, visibility="public")
    assert "Your new taste codes still start private" in shared.response.content
    await bob.slash(channel, "imagine", prompt=f"a dog --p {new}")
    assert channel.last_message.content.startswith(f"**a dog --p {new}** - {bob.mention}")
    await vote(simcord_bot, alice.id, 1)
    [newest] = re.findall(r"`([a-z2-7]{7})`", field(await alice.slash(channel, "info"), "Current code"))
    refused(await bob.slash(channel, "imagine", prompt=f"a cat --p {newest}"), newest)

    # All at once: public, every version and the next ones; then private again, all of them.
    everyone = await alice.slash(channel, "codes", visibility="public")
    assert everyone.ephemeral and "All your codes are now public" in everyone.response.content
    assert "(2 changed.)" in everyone.response.content  # old and newest; new was already public
    await vote(simcord_bot, alice.id, 1)
    info = await alice.slash(channel, "info")
    [latest] = re.findall(r"`([a-z2-7]{7})`", field(info, "Current code"))
    assert f"others: `--p {latest}`" in field(info, "Current code")
    await bob.slash(channel, "imagine", prompt=f"a cat --p {latest}")
    assert channel.last_message.content.startswith(f"**a cat --p {latest}** - {bob.mention}")

    hidden = await alice.slash(channel, "codes", visibility="private")
    assert "All your codes are now 🔒 private" in hidden.response.content and "(4 changed.)" in hidden.response.content
    for code in (old, new, newest, latest):
        refused(await bob.slash(channel, "imagine", prompt=f"a cow --p {code}"), code)
    assert "New codes start 🔒 private." in (await alice.slash(channel, "codes")).response.content
    assert [prompt for _, prompt, _ in await job_rows(simcord_bot)] == [f"a dog --p {new}", f"a cat --p {latest}"]


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_codes_without_a_rank_pool(simcord_env, world):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "codes")
    assert result.ephemeral and "no rank pool yet" in result.response.content


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_private_members_new_moodboard_is_private(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    hidden = await alice.slash(channel, "codes", visibility="private")  # before she has any code
    assert "All your codes are now 🔒 private" in hidden.response.content and "(0 changed.)" in hidden.response.content

    await alice.slash(channel, "moodboard create", image1=("sun.png", png("orange")), image2=("sea.png", png("navy")))
    await run_until(simcord_env, lambda: moodboard_done(channel))
    done = job_message(channel, "moodboard:").content
    code = re.search(r"moodboard code `([a-z2-7]{7})`", done).group(1)
    assert "🔒 It is private: only you can use it" in done and "Make it private" not in done
    assert f"`{code}` · moodboard v1 · 2 images · 🔒 private" in (await alice.slash(channel, "codes")).response.content

    result = await bob.slash(channel, "imagine", prompt=f"a cat --p {code}")
    assert result.ephemeral and f"Code `{code}` is private: only its owner can use it." in result.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [POOLED])
async def test_a_shared_code_stays_current_until_the_profile_moves(simcord_env, world, simcord_bot, monkeypatch):
    """Codes that don't churn, as members see them: a vote that leaves the profile's predictions as they
    were keeps the code in /codes and in the message of a bare --p; after CODE_EVERY_N new votes a new
    version is made, and the old code still draws for another member."""
    from engine import profiles

    _, channel, alice, bob = world
    monkeypatch.setattr(profiles, "CODE_MOVE_THRESHOLD", 1.0)  # predictions never "move": only the count decides
    monkeypatch.setattr(profiles, "CODE_EVERY_N", 3)

    def current(listed) -> str:
        [line] = [line for line in listed.response.content.splitlines() if "**current**" in line]
        return re.search(r"`([a-z2-7]{7})`", line).group(1)

    await vote(simcord_bot, alice.id, 3)
    first = current(await alice.slash(channel, "codes"))
    await alice.slash(channel, "imagine", prompt="a cat --p")
    assert channel.last_message.content.startswith(f"**a cat --p {first}** - {alice.mention}")

    for _ in range(2):  # two more votes: fewer than CODE_EVERY_N, so the shared code stays current
        await vote(simcord_bot, alice.id, 1)
        assert current(await alice.slash(channel, "codes")) == first
    await alice.slash(channel, "imagine", prompt="a dog --p")
    assert channel.last_message.content.startswith(f"**a dog --p {first}** - {alice.mention}")

    await vote(simcord_bot, alice.id, 1)  # the third: a new version and code
    listed = await alice.slash(channel, "codes")
    second = current(listed)
    assert second != first and f"`{first}`" in listed.response.content
    await bob.slash(channel, "imagine", prompt=f"a bird --p {first}")  # the old code keeps working
    assert channel.last_message.content.startswith(f"**a bird --p {first}** - {bob.mention}")
