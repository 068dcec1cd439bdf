"""bot/flows.py through SimCord: what a click on a forged or stale button gets.

A custom_id is whatever the client sends. Whatever it points at (an id past
SQLite's integers, a row that is gone, a job of another kind, a shape no
button has), the member gets one clear private answer, never our internal-error
apology and never silence.
"""

from __future__ import annotations

import uuid

import discord
import numpy as np
import pytest

from bot.flows import STALE_BUTTON
from engine import profiles
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import JobKind, JobState
from tests.bot.conftest import acknowledge_user_errors

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}
SQLITE_MAX = 2**63 - 1


async def post_buttons(bot, channel, custom_ids: list[str]) -> discord.Message:
    """A bot message carrying buttons with these custom_ids, as a forger would
    send them: nothing but the persistent handlers (bot/app.py DYNAMIC_ITEMS)
    answers a click."""
    view = discord.ui.View(timeout=None)
    for n, custom_id in enumerate(custom_ids):
        view.add_item(discord.ui.Button(label=str(n), custom_id=custom_id, row=n // 5))
    message = await bot.get_channel(channel.id).send("forged", view=view)
    view.stop()  # no live view: only the persistent handlers remain
    return message


async def assert_stale(env, member, message, custom_ids: list[str]) -> None:
    for custom_id in custom_ids:
        result = await member.click(message, custom_id=custom_id)
        assert result.ephemeral, custom_id
        assert result.response.content == STALE_BUTTON, (custom_id, result.response.content)
    acknowledge_user_errors(env)  # fails on any error that is not a member's


async def finished_job(bot, kind: str, user_id: int, channel_id: int, images: int = 0) -> tuple[str, list[int]]:
    """A finished job row (and image rows) as delivery leaves them, without a worker."""
    job_id = uuid.uuid4().hex
    await members.ensure_user(bot.db, user_id)
    await db_jobs.insert_job(bot.db, id=job_id, kind=kind, user_id=user_id, guild_id=None, channel_id=channel_id,
                             prompt="a kite", request={"text": "a kite"})
    await db_jobs.update_job(bot.db, job_id, state=JobState.DONE)
    ids = [await db_jobs.add_image(bot.db, job_id=job_id, idx=i, user_id=user_id, path=f"images/{job_id}/{i}.png",
                                   width=64, height=64, seed=i, embedding=None) for i in range(1, images + 1)]
    return job_id, ids


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_out_of_range_ids_get_this_button_no_longer_works(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    forged = [
        f"tm:image:like:{2**64}", f"tm:image:vary_strong:{SQLITE_MAX + 1}", f"tm:image:upscale:{10**30}",
        f"tm:rank:left:{10**29}", f"tm:rank:skip:{SQLITE_MAX + 1}",
        f"tm:settings:remix:{2**64}", "tm:image:like:0", "tm:image:like:-1", "tm:image:like:007",
    ]
    message = await post_buttons(simcord_bot, channel, forged[:5])
    await assert_stale(simcord_env, alice, message, forged[:5])
    message = await post_buttons(simcord_bot, channel, forged[5:])
    await assert_stale(simcord_env, alice, message, forged[5:])


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_rows_that_are_gone_or_of_another_kind_get_the_same_answer(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    moodboard, _ = await finished_job(simcord_bot, "moodboard", alice.id, channel.id)
    upscaled, [upscaled_image] = await finished_job(simcord_bot, JobKind.UPSCALE, alice.id, channel.id, images=1)
    gone = uuid.uuid4().hex
    custom_ids = [
        f"tm:grid:u1:{gone}", f"tm:grid:reroll:{gone}", f"tm:job:cancel:{gone}",  # no such job
        "tm:image:like:424242", "tm:rank:right:424242",  # no such image, no such pair
        f"tm:grid:v2:{moodboard}", f"tm:grid:u1:{upscaled}",  # jobs without a grid
        f"tm:image:upscale:{upscaled_image}",  # an upscale has no Upscale button
    ]
    message = await post_buttons(simcord_bot, channel, custom_ids)
    await assert_stale(simcord_env, alice, message, custom_ids)


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_someone_elses_rank_pair_is_as_good_as_a_forged_one(simcord_env, world, simcord_bot):
    """/rank pairs are private (ephemeral), so another member can only forge their ids."""
    _, channel, alice, bob = world
    pair = await profiles.next_pair(simcord_bot.db, alice.id, np.random.default_rng(0))
    vote = f"tm:rank:left:{pair.id}"
    message = await post_buttons(simcord_bot, channel, [vote])
    await assert_stale(simcord_env, bob, message, [vote])
    answered = await alice.click(message, custom_id=vote)  # the owner's vote still counts
    assert answered.acknowledged and answered.response.content != STALE_BUTTON


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_custom_ids_no_button_has_get_an_answer_not_silence(simcord_env, world, simcord_bot):
    """Shapes no template accepts (forged, or from an older version of the bot)."""
    _, channel, alice, _ = world
    job = "ab" * 16
    custom_ids = [
        "tm:image:like:abc", f"tm:grid:u9:{job}", "tm:grid:u1:XYZ", "tm:rank:up:1",
        "tm:settings:bogus:1", "tm:job:cancel:short", "tm:grid:u1", "tm:old-format:1", "tm:",
    ]
    message = await post_buttons(simcord_bot, channel, custom_ids)
    await assert_stale(simcord_env, alice, message, custom_ids)
