"""Signals from use: U, V and 🔄 on a member's own grid teach their main profile,
and count toward unlocking it. Driven as a member would, through SimCord."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from engine.db import members
from tests.bot.conftest import acknowledge_user_errors, custom_id, run_until
from tests.bot.test_flows import finished_job
from tests.bot.test_imagine import buttons, finished, job_message
from tests.bot.test_prefer import job_rows, text_input_id

NO_WORKERS = {"TASTEMAKER_WORKERS": "0"}


def info_field(result, name: str) -> str:
    [embed] = result.response.embeds
    return next(f.value for f in embed.fields if f.name == name)


async def from_use(member, channel) -> str:
    return info_field(await member.slash(channel, "info"), "From use")


async def own_grid(bot, channel, user_id: int):
    """A finished four-image grid of the member's (rows and image files as delivery
    leaves them, no worker), posted with its U/V/🔄 buttons."""
    job_id, _ = await finished_job(bot, "imagine", user_id, channel.id, images=4)
    for i, colour in enumerate(("red", "green", "blue", "white"), 1):
        path = Path(bot.settings.data_dir) / "images" / job_id / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), colour).save(path)
    return await bot.get_channel(channel.id).send(f"**a kite** - <@{user_id}>", view=bot.views.grid(job_id))


async def test_u_v_and_reroll_on_your_own_grid_count_once_each(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a quiet harbor at dawn --seed 5")
    await run_until(simcord_env, lambda: finished(channel, "a quiet harbor at dawn"))
    grid = job_message(channel, "a quiet harbor at dawn")
    assert await from_use(alice, channel) == "none yet (learning from use on)"

    # U2: the image on its own, as always, and one U counted; the same U again isn't counted twice.
    await alice.click(grid, label="U2")
    assert "Image #2" in channel.last_message.content
    assert await from_use(alice, channel) == "1 U (learning from use on)"
    await alice.click(grid, label="U2")
    assert await from_use(alice, channel) == "1 U (learning from use on)"

    # Someone else's grid: the click is refused and nothing counts for the clicker (or the owner).
    refused = await bob.click(grid, label="U1")
    assert refused.ephemeral and f"Only {alice.mention}" in refused.response.content
    acknowledge_user_errors(simcord_env)
    assert await from_use(bob, channel) == "none yet (learning from use on)"

    # V1 and 🔄 count too, each once its job is queued.
    await alice.click(grid, label="V1")
    assert "Variations (Strong)" in channel.last_message.content
    await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    assert "(Waiting to start)" in channel.last_message.content
    info = await alice.slash(channel, "info")
    assert info_field(info, "From use") == "1 U, 1 V, 1 🔄 (learning from use on)"
    assert info_field(info, "Votes") == "0" and info_field(info, "Likes") == "0"  # shown apart
    # Unlocking counts them: a U is half a vote, a V or a 🔄 a quarter (of the default 20).
    assert info_field(info, "Profile").startswith("Locked · 1 of 20 (votes + use) · about 19 more votes (`/rank`)")

    # Learning from use off: nothing is recorded, and /info says how to turn it back on.
    off = await alice.slash(channel, "prefer learn_from_use", value="off")
    assert off.ephemeral
    assert await from_use(alice, channel) == "off (`/prefer learn_from_use on`)"
    await alice.click(grid, label="U3")
    assert "Image #3" in channel.last_message.content
    await alice.slash(channel, "prefer learn_from_use", value="on")
    assert await from_use(alice, channel) == "1 U, 1 V, 1 🔄 (learning from use on)"  # U3 wasn't recorded
    await run_until(simcord_env, lambda: finished(channel, "Variations (Strong)"))


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [{**NO_WORKERS, "TASTEMAKER_UNLOCK_VOTES": "2"}])
async def test_a_member_who_only_imagines_and_clicks_u_unlocks_by_use(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    locked = await alice.slash(channel, "imagine", prompt="a cat --p")
    assert locked.ephemeral and "rank 2 more pairs" in locked.response.content
    acknowledge_user_errors(simcord_env)

    grid = await own_grid(simcord_bot, channel, alice.id)
    expected = {
        "U1": "Locked · 0.5 of 2 (votes + use) · about 2 more votes",
        "U2": "Locked · 1 of 2 (votes + use) · about 1 more vote ",
        "U3": "Locked · 1.5 of 2 (votes + use) · about 1 more vote ",
        "U4": "Unlocked",
    }
    for label, state in expected.items():
        await alice.click(grid, label=label)
        info = await alice.slash(channel, "info")
        assert info_field(info, "Profile").startswith(state), (label, info_field(info, "Profile"))
    assert info_field(info, "From use") == "4 U (learning from use on)"
    assert info_field(info, "Votes") == "0"
    [code] = re.findall(r"`([a-z2-7]{7})`", info_field(info, "Current code"))

    # --p works now, without a single /rank vote: the message shows the code it stood for.
    await alice.slash(channel, "imagine", prompt="a cat --p")
    assert channel.last_message.content.startswith(f"**a cat --p {code}** - {alice.mention}")


@pytest.mark.parametrize("bot_overrides", [NO_WORKERS])
async def test_a_remixed_reroll_counts_when_its_job_is_queued(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    await members.update_settings(simcord_bot.db, alice.id, remix=True)

    # The modal alone records nothing; its submit queues the job, and the 🔄 counts then.
    grid = await own_grid(simcord_bot, channel, alice.id)
    shown = await alice.click(grid, custom_id=custom_id(grid, "🔄"))
    assert shown.modal is not None
    assert await from_use(alice, channel) == "none yet (learning from use on)"
    await alice.submit_modal(shown, {text_input_id(shown.modal): "a kite at dusk"})
    assert channel.last_message.content.startswith("**a kite at dusk** - ")
    assert await from_use(alice, channel) == "1 🔄 (learning from use on)"

    # An edit that makes several jobs asks first: only the Yes records it (once, for the first job).
    other = await own_grid(simcord_bot, channel, alice.id)
    shown = await alice.click(other, custom_id=custom_id(other, "🔄"))
    asked = await alice.submit_modal(shown, {text_input_id(shown.modal): "a {red, blue} kite"})
    assert asked.ephemeral and buttons(asked.response.message) == ["Yes", "No"]
    assert await from_use(alice, channel) == "1 🔄 (learning from use on)"
    confirmed = await alice.click(asked.response.message, label="Yes")
    assert "Queued 2 jobs" in confirmed.response.message.content
    assert await from_use(alice, channel) == "2 🔄 (learning from use on)"
    queued = [prompt for _, prompt, request in await job_rows(simcord_bot) if "seed" in request]  # not the grids above
    assert sorted(queued) == ["a blue kite", "a kite at dusk", "a red kite"]
