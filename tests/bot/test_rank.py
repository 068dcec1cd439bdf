"""/rank, /info and --p: the personalization loop as a member lives it."""

from __future__ import annotations

import asyncio

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import buttons, finished, job_message

UNLOCK = {"TASTEMAKER_UNLOCK_VOTES": "6"}


def field(embed, name: str) -> str:
    return next(f.value for f in embed.fields if f.name == name)


async def test_rank_without_a_pool_says_how_the_owner_builds_one(simcord_env, world):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "rank")
    assert result.ephemeral
    assert "python -m engine.rankpool build" in result.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [UNLOCK])
async def test_votes_unlock_a_code_that_another_member_can_use(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world

    # 1. Locked: a bare --p says how many pairs are left.
    locked = await alice.slash(channel, "imagine", prompt="a cat --p")
    assert locked.ephemeral and "rank 6 more pairs" in locked.response.content
    acknowledge_user_errors(simcord_env)

    # 2. Vote until the profile unlocks; each click shows the next pair at once.
    shown = await alice.slash(channel, "rank")
    assert shown.ephemeral
    assert buttons(shown.response.message) == ["◀ Left", "Skip", "Right ▶"]
    assert "0/6 to unlock" in shown.response.content
    assert len(shown.response.attachments) == 1
    message = shown.response.message
    for vote in range(6):
        clicked = await alice.click(message, label="◀ Left" if vote % 2 else "Right ▶")
        message = clicked.response.message
        if vote < 5:
            assert f"{vote + 1}/6 to unlock" in message.content
    assert "unlocked" in message.content
    code = re.search(r"Your code is `([a-z2-7]{7})`", message.content).group(1)

    # 3. /info shows the unlocked profile and that code.
    info = await alice.slash(channel, "info")
    [embed] = info.response.embeds
    assert field(embed, "Votes") == "6"
    assert field(embed, "Profile").startswith("Unlocked")
    assert f"`{code}`" in field(embed, "Current code")

    # 4. A bare --p uses it, and the message names it.
    await alice.slash(channel, "imagine", prompt="a cat --p --seed 5")
    assert f"--p {code}" in channel.last_message.content
    await run_until(simcord_env, lambda: finished(channel, "a cat --seed 5"))
    assert f"`--p {code} --s 100`" in job_message(channel, "a cat --seed 5").content

    # 5. Another member uses the public code, with a strength.
    await bob.slash(channel, "imagine", prompt=f"a dog --p {code} --s 400")
    await run_until(simcord_env, lambda: finished(channel, "a dog"))
    assert f"`--p {code} --s 400`" in job_message(channel, "a dog").content

    # 6. An unknown code is refused clearly and nothing is queued.
    unknown = await bob.slash(channel, "imagine", prompt="a dog --p zzzzzzz")
    assert unknown.ephemeral and "Unknown code `zzzzzzz`" in unknown.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_rank_buttons_work_after_a_restart(simcord_env, world, restart_bot):
    _, channel, alice, _ = world
    shown = await alice.slash(channel, "rank")
    await restart_bot()
    clicked = await alice.click(shown.response.message, label="Right ▶")
    assert "1/20 to unlock" in clicked.response.message.content


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_second_click_on_an_answered_pair_is_ignored_politely(simcord_env, world):
    _, channel, alice, _ = world
    shown = await alice.slash(channel, "rank")
    message = shown.response.message
    # Discord drops the update after the vote is stored, so the member still
    # sees the answered pair and clicks it again.
    simcord_env.inject_error("POST", "/interactions/*/callback", status=500, times=1)
    first = await alice.click(message, label="◀ Left")
    assert "went wrong" in first.response.content or not first.acknowledged
    again = await alice.click(message, label="Right ▶")
    assert again.ephemeral and "already counted" in again.response.content
    info = await alice.slash(channel, "info")
    assert next(f.value for f in info.response.embeds[0].fields if f.name == "Votes") == "1"


@pytest.fixture
def small_pool_files(tmp_path_factory, monkeypatch):
    """Auto-build a 4-prompt pool instead of the full one."""
    from engine import rankpool

    folder = tmp_path_factory.mktemp("pool-files")
    (folder / "prompts.txt").write_text("a red barn\na tall ship\na quiet library\na desert road\n")
    (folder / "styles.txt").write_text("watercolor\nneon palette\npencil sketch\n")
    monkeypatch.setattr(rankpool, "PROMPTS_FILE", folder / "prompts.txt")
    monkeypatch.setattr(rankpool, "STYLES_FILE", folder / "styles.txt")


@pytest.mark.usefixtures("small_pool_files")
@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_AUTO_POOL": "1"}])
async def test_first_start_draws_the_rank_pool_without_the_owner(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    # drawn by the bot's own worker, through the queue (bounded: a dead worker fails the test, not CI)
    await asyncio.wait_for(asyncio.shield(simcord_bot.get_cog("Rank").pool_builder), timeout=120)
    shown = await alice.slash(channel, "rank")
    assert "0/20 to unlock" in shown.response.content
    assert len(shown.response.attachments) == 1


async def test_likes_count_for_others_but_not_on_your_own_images(simcord_env, world):
    _, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a paper boat --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a paper boat"))
    await alice.click(job_message(channel, "a paper boat"), label="U1")
    single = channel.last_message
    assert "Image #1" in single.content

    liked = await bob.click(single, label="Like")
    assert liked.ephemeral and "counts toward your taste profile" in liked.response.content
    again = await bob.click(single, label="Like")
    assert again.ephemeral and "already liked" in again.response.content
    own = await alice.click(single, label="Like")
    assert own.ephemeral and "don't change your taste profile" in own.response.content

    bob_info = (await bob.slash(channel, "info")).response.embeds[0]
    alice_info = (await alice.slash(channel, "info")).response.embeds[0]
    assert field(bob_info, "Likes") == "1"
    assert field(alice_info, "Likes") == "0"
    assert field(alice_info, "Images made") == "4"
