"""The content filter through SimCord: /admin nsfw, and what members see under
each policy. The real classifier scores the real images the tiny preset makes;
the paths are reached through the policy and the threshold only."""

from __future__ import annotations

from pathlib import Path

import discord

from tests.bot.conftest import acknowledge_user_errors, run_until


def results(channel, fragment: str) -> list[discord.Message]:
    """Finished job messages about a prompt, oldest first (a finished one shows its seed)."""
    return [m for m in channel.history() if fragment in m.content and " · seed " in m.content]


def buttons(message) -> list[str]:
    return [child.label or str(child.emoji) for row in message.components for child in row.children]


async def stored_images(bot, job_number: int = 0) -> tuple[str, list[tuple[int, float]]]:
    """The job_number-th job's id and its image rows (idx, nsfw score)."""
    jobs = await bot.db.execute_fetchall("SELECT id FROM jobs ORDER BY created_at")
    job_id = jobs[job_number][0]
    rows = await bot.db.execute_fetchall("SELECT idx, nsfw FROM images WHERE job_id = ? ORDER BY idx", (job_id,))
    return job_id, [(idx, nsfw) for idx, nsfw in rows]


async def test_admin_nsfw_needs_manage_server_and_says_what_it_does(world, mod):
    _, channel, alice, _ = world
    assert "admin" not in alice.available_commands(channel)

    shown = await mod.slash(channel, "admin nsfw")
    assert shown.ephemeral
    assert "Content filter: **block**, images scoring **0.60** or more are flagged." in shown.response.content
    assert "never posted" in shown.response.content

    allowed = await mod.slash(channel, "admin nsfw", policy="allow", threshold=0.35)
    assert "**allow**" in allowed.response.content and "**0.35**" in allowed.response.content
    assert "only in age-restricted channels; everywhere else they are blocked" in allowed.response.content


async def test_block_withholds_the_images_and_tells_the_member_privately(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    set_up = await mod.slash(channel, "admin nsfw", policy="block", threshold=0.0, keep=True)
    assert "kept in the bot's `quarantine/` folder" in set_up.response.content

    await alice.slash(channel, "imagine", prompt="a red kite over a beach")
    await run_until(simcord_env, lambda: results(channel, "a red kite over a beach"))

    [message] = results(channel, "a red kite over a beach")
    assert message.attachments == [] and buttons(message) == []
    assert "All 4 images were withheld by this server's content filter." in message.content
    notice = alice.user.dm_channel.last_message
    assert "withheld images 1, 2, 3, 4 of your job **a red kite over a beach**" in notice.content
    # Nothing a button, a like or a taste could reach; the owner's review copies only.
    job_id, rows = await stored_images(simcord_bot)
    assert rows == []
    data_dir = Path(simcord_bot.settings.data_dir)
    assert not list((data_dir / "images" / job_id).glob("*.png"))
    assert sorted(p.name for p in (data_dir / "quarantine" / job_id).iterdir()) == ["1.png", "2.png", "3.png", "4.png"]


async def test_spoiler_posts_the_grid_and_the_pick_as_spoilers(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin nsfw", policy="spoiler", threshold=0.0)

    await alice.slash(channel, "imagine", prompt="a lighthouse at dusk")
    await run_until(simcord_env, lambda: results(channel, "a lighthouse at dusk"))

    [message] = results(channel, "a lighthouse at dusk")
    [grid] = message.attachments
    assert grid.is_spoiler()
    assert "Marked as a spoiler by this server's content filter" in message.content
    assert buttons(message)[:4] == ["U1", "U2", "U3", "U4"]
    _, rows = await stored_images(simcord_bot)
    assert len(rows) == 4 and all(score is not None for _, score in rows)

    await alice.click(message, label="U2")
    single = channel.last_message
    assert "Image #2" in single.content and single.attachments[0].is_spoiler()
    assert alice.user.dm_channel.last_message is None  # nothing was withheld


async def test_allow_holds_only_in_age_restricted_channels(simcord_env, world, mod, monkeypatch):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin nsfw", policy="allow", threshold=0.0)

    await alice.slash(channel, "imagine", prompt="a cat on a windowsill")
    await run_until(simcord_env, lambda: results(channel, "a cat on a windowsill"))
    [blocked] = results(channel, "a cat on a windowsill")
    assert blocked.attachments == [] and "withheld by this server's content filter" in blocked.content

    # SimCord can't mark a channel age-restricted, so Discord's flag is set on the bot's side.
    monkeypatch.setattr(discord.TextChannel, "is_nsfw", lambda self: True)
    await alice.slash(channel, "imagine", prompt="a dog on a sofa")
    await run_until(simcord_env, lambda: results(channel, "a dog on a sofa"))
    [shown] = results(channel, "a dog on a sofa")
    [grid] = shown.attachments
    assert not grid.is_spoiler() and "content filter" not in shown.content


async def test_a_grid_with_one_flagged_image_withholds_only_that_one(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    prompt = "a glass of water on a table --seed 21"
    # First with a threshold nothing reaches, to learn the real scores of these four images...
    await mod.slash(channel, "admin nsfw", threshold=1.0)
    await alice.slash(channel, "imagine", prompt=prompt)
    await run_until(simcord_env, lambda: len(results(channel, "a glass of water")) == 1)
    _, rows = await stored_images(simcord_bot)
    ranked = sorted(rows, key=lambda row: -row[1])
    top, second = ranked[0], ranked[1]
    assert top[1] > second[1]
    # ...then the same seed again (the same images) with a threshold between the top two.
    await mod.slash(channel, "admin nsfw", threshold=(top[1] + second[1]) / 2)
    await alice.slash(channel, "imagine", prompt=prompt)
    await run_until(simcord_env, lambda: len(results(channel, "a glass of water")) == 2)

    message = results(channel, "a glass of water")[-1]
    assert f"Image {top[0]} withheld by this server's content filter (grey tile)" in message.content
    assert len(message.attachments) == 1 and not message.attachments[0].is_spoiler()
    _, stored = await stored_images(simcord_bot, 1)
    assert [idx for idx, _ in stored] == [i for i in (1, 2, 3, 4) if i != top[0]]
    assert f"withheld image {top[0]} of your job" in alice.user.dm_channel.last_message.content

    refused = await alice.click(message, label=f"U{top[0]}")
    assert refused.ephemeral and "withheld by this server's content filter" in refused.response.content
    refused = await alice.click(message, label=f"V{top[0]}")
    assert refused.ephemeral and "withheld" in refused.response.content
    acknowledge_user_errors(simcord_env)
    await alice.click(message, label=f"U{second[0]}")
    assert f"Image #{second[0]}" in channel.last_message.content


async def test_explore_never_lists_flagged_images(simcord_env, world, mod, simcord_bot):
    from bot.web import gallery

    guild, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a quiet harbor")
    await run_until(simcord_env, lambda: results(channel, "a quiet harbor"))
    shown, _ = await gallery.page(simcord_bot.db, bob.id, [guild.id], "new", 0, 10)
    assert len(shown) == 4  # under the default threshold: listed

    # Spoilered now: posted behind a spoiler in the channel, but a gallery has no spoilers.
    await mod.slash(channel, "admin nsfw", policy="spoiler", threshold=0.0)
    await alice.slash(channel, "imagine", prompt="a busy market")
    await run_until(simcord_env, lambda: results(channel, "a busy market"))
    shown, _ = await gallery.page(simcord_bot.db, bob.id, [guild.id], "new", 0, 10)
    assert shown == []  # the threshold now flags every image, the older ones too
    await mod.slash(channel, "admin nsfw", threshold=1.0)
    shown, _ = await gallery.page(simcord_bot.db, bob.id, [guild.id], "new", 0, 10)
    assert len(shown) == 8
