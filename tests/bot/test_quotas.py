"""Daily image quotas: /admin quota per member and per role, refusals before anything is queued, /info."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import finished, job_message
from tests.bot.test_prefer import job_rows

QUEUED_ONLY = {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_MAX_JOBS_PER_USER": "20"}
RESETS = r"the quota resets at 00:00 UTC \(in (\d+ h )?\d+ min\)\."


def refused(env, result, pattern: str, *, command: bool = True) -> str:
    assert result.ephemeral
    assert re.search(pattern, result.response.content), result.response.content
    if command:  # buttons answer member mistakes themselves; commands go through the tree's error handler
        assert acknowledge_user_errors(env)[-1] == result.response.content
    return result.response.content


def images_today(result) -> str | None:
    [embed] = result.response.embeds
    return next((f.value for f in embed.fields if f.name == "Images today"), None)


@pytest.mark.parametrize("bot_overrides", [QUEUED_ONLY])
async def test_member_quota_counts_queued_grids_and_refuses_before_queueing(simcord_env, world, mod, simcord_bot):
    _, channel, alice, bob = world
    assert images_today(await alice.slash(channel, "info")) is None  # no quota: nothing to show

    set_ = await mod.slash(channel, "admin quota", member=10)
    assert set_.ephemeral and "Each member: **10** images a day." in set_.response.content
    assert "queued jobs count" in set_.response.content.lower()

    # Two grids queued (8 images); a third would need 4 of the 2 left.
    await alice.slash(channel, "imagine", prompt="a red kite")
    await alice.slash(channel, "imagine", prompt="a blue kite")
    assert re.fullmatch(r"8 of 10 used · \*\*2 left\*\* · resets at 00:00 UTC \(in (\d+ h )?\d+ min\)",
                        images_today(await alice.slash(channel, "info")))
    before = await job_rows(simcord_bot)
    refused(simcord_env, await alice.slash(channel, "imagine", prompt="a green kite"),
            r"^This needs 4 images, and you have 2 of your 10 images left today; " + RESETS)
    assert await job_rows(simcord_bot) == before  # nothing queued, no row
    assert "green kite" not in channel.last_message.content

    # Bob has his own quota; when it is used up, the message says so.
    await mod.slash(channel, "admin quota", member=4)
    await bob.slash(channel, "imagine", prompt="a yellow kite")
    refused(simcord_env, await bob.slash(channel, "imagine", prompt="a grey kite"),
            r"^You've used 4 of your 4 images today; " + RESETS)
    refused(simcord_env, await alice.slash(channel, "imagine", prompt="a pink kite"),
            r"^You've used 8 of your 4 images today; ")
    assert "0 left" in images_today(await alice.slash(channel, "info"))
    assert len(await job_rows(simcord_bot)) == 3

    # Cancelled jobs give their images back.
    await alice.click(job_message(channel, "a red kite"), custom_id=cancel_id(job_message(channel, "a red kite")))
    await mod.slash(channel, "admin quota", member=0)  # unlimited again, then back to 8
    assert "Each member: no daily quota." in (await mod.slash(channel, "admin quota")).response.content
    await mod.slash(channel, "admin quota", member=8)
    await alice.slash(channel, "imagine", prompt="a white kite")
    assert channel.last_message.content.startswith("**a white kite**")
    assert "8 of 8 used" in images_today(await alice.slash(channel, "info"))


def cancel_id(message) -> str:
    for row in message.components:
        for child in row.children:
            if str(child.emoji) == "❌":
                return child.custom_id
    raise AssertionError(f"no ❌ on {message.content!r}")


@pytest.mark.parametrize("bot_overrides", [QUEUED_ONLY])
async def test_role_quotas_replace_the_member_quota_most_generous_wins(simcord_env, world, mod, simcord_bot):
    guild, channel, alice, _ = world
    patrons = guild.create_role("Patrons")
    newcomers = guild.create_role("Newcomers")
    carol = guild.add_member(simcord_env.create_user("carol"), roles=[patrons, newcomers])
    dave = guild.add_member(simcord_env.create_user("dave"), roles=[newcomers])
    erin = guild.add_member(simcord_env.create_user("erin"), roles=[patrons])

    await mod.slash(channel, "admin quota", member=4)
    shown = (await mod.slash(channel, "admin quota", role=patrons, images=8)).response.content
    assert f"<@&{patrons.id}>: **8** images a day." in shown and "most generous" in shown
    await mod.slash(channel, "admin quota", role=newcomers, images=1)

    # carol: the most generous of her roles (8); dave: only his role's, below the default (1); alice: the default (4).
    for member, allowed in ((carol, 8), (dave, 1), (alice, 4)):
        assert images_today(await member.slash(channel, "info")).startswith(f"0 of {allowed} used")
    await carol.slash(channel, "imagine", prompt="carol one")
    await carol.slash(channel, "imagine", prompt="carol two")
    refused(simcord_env, await carol.slash(channel, "imagine", prompt="carol three"), r"^You've used 8 of your 8 ")
    refused(simcord_env, await dave.slash(channel, "imagine", prompt="dave one"),
            r"^This needs 4 images, and you have 1 of your 1 images left today")
    await alice.slash(channel, "imagine", prompt="alice one")

    # A role can be unlimited (0), and its quota removed (no images).
    await mod.slash(channel, "admin quota", role=patrons, images=0)
    await carol.slash(channel, "imagine", prompt="carol three")
    assert channel.last_message.content.startswith("**carol three**")
    assert images_today(await erin.slash(channel, "info")) is None
    removed = (await mod.slash(channel, "admin quota", role=patrons)).response.content
    assert f"<@&{patrons.id}>" not in removed and f"<@&{newcomers.id}>: **1** images a day." in removed
    refused(simcord_env, await carol.slash(channel, "imagine", prompt="carol four"), r"^You've used 12 of your 1 images")
    assert images_today(await erin.slash(channel, "info")).startswith("0 of 4 used")

    refused(simcord_env, await mod.slash(channel, "admin quota", images=5), r"Name the role")
    assert [prompt for _, prompt, _ in await job_rows(simcord_bot)] == ["carol one", "carol two", "alice one", "carol three"]


@pytest.mark.parametrize("bot_overrides", [QUEUED_ONLY])
async def test_admin_quota_needs_manage_server(world):
    _, channel, alice, _ = world
    assert "admin quota" not in alice.available_commands(channel)


async def test_made_images_count_a_grid_four_and_an_upscale_one(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin quota", member=5)
    await alice.slash(channel, "imagine", prompt="a lighthouse --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse"))
    grid = job_message(channel, "a lighthouse")
    await alice.click(grid, label="U1")
    single = channel.last_message
    await alice.click(single, label="Upscale (Subtle)")  # 1 image: fits in the 1 left
    assert channel.last_message.content.startswith("**a lighthouse --seed 3** - Upscaled (Subtle)")  # queued
    assert images_today(await alice.slash(channel, "info")).startswith("5 of 5 used")
    before = await job_rows(simcord_bot)
    refused(simcord_env, await alice.click(grid, label="V1"), r"^You've used 5 of your 5 images today; " + RESETS,
            command=False)
    assert await job_rows(simcord_bot) == before
