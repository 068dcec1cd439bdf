"""Deleting a job and the retention of deleted and departed members' images, as members and an
owner live them through SimCord: /delete, its message, Explore, likes, buttons, /admin
retention and the sweep that removes the files; a member leaving and coming back."""

from __future__ import annotations

import re

import pytest

from bot.retention import DELETED, UNSCRUBBED
from engine.db import connect
from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_flows import post_buttons
from tests.bot.test_imagine import finished, job_message


def field(embed, name: str) -> str:
    return next(f.value for f in embed.fields if f.name == name)


async def job_of(bot, channel, prompt: str) -> tuple[str, list[str]]:
    """The job id a finished message names, and its images' files."""
    short = re.search(r"job `([0-9a-f]+)`", job_message(channel, prompt).content).group(1)
    [(job_id,)] = await bot.db.execute_fetchall("SELECT id FROM jobs WHERE id LIKE ?", (short + "%",))
    paths = [r[0] for r in await bot.db.execute_fetchall("SELECT path FROM images WHERE job_id = ?", (job_id,))]
    return job_id, paths


async def sweep(bot) -> None:
    """The upkeep cog's pass, now instead of within a minute."""
    await bot.get_cog("Upkeep").every_minute()


async def test_a_member_deletes_a_job_and_its_images_leave_explore_likes_and_then_the_disk(simcord_env, world, mod, simcord_bot):
    guild, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a paper boat --seed 3")
    await run_until(simcord_env, lambda: finished(channel, "a paper boat"))
    job_id, paths = await job_of(simcord_bot, channel, "a paper boat")
    grid = job_message(channel, "a paper boat")
    u2 = next(child.custom_id for row in grid.components for child in row.children if child.label == "U2")
    explore = (await alice.slash(channel, "explore")).response.message
    assert "counts toward your taste" in (await alice.click(explore, label="1")).response.content
    assert field((await alice.slash(channel, "info")).response.embeds[0], "Likes") == "1"

    # 1. Only its maker can delete it.
    refused = await alice.slash(channel, "delete", job=job_id[:8])
    assert refused.ephemeral and f"No job `{job_id[:8]}` of yours on this server" in refused.response.content
    # 2. Bob deletes it: the message shows nothing of it any more, Explore and Alice's likes lose it.
    deleted = await bob.slash(channel, "delete", job=job_id[:8])
    assert deleted.ephemeral and f"Deleted job `{job_id[:8]}`: its 4 images left Explore" in deleted.response.content
    assert "removed after 30 days" in deleted.response.content
    message = next(m for m in channel.history() if m.id == grid.id)
    assert message.content == DELETED and not message.attachments and not message.components
    empty = await alice.slash(channel, "explore")
    assert empty.ephemeral and "no images yet" in empty.response.content
    assert field((await alice.slash(channel, "info")).response.embeds[0], "Likes") == "0"
    # Its old buttons (here as a forger would post them) answer that they no longer work.
    forged = await post_buttons(simcord_bot, channel, [u2])
    stale = await bob.click(forged, custom_id=u2)
    assert stale.ephemeral and "no longer works" in stale.response.content
    again = await bob.slash(channel, "delete", job=job_id[:8])
    assert again.ephemeral and "was deleted" in again.response.content
    # The files stay for the server's retention: 30 days by default.
    await sweep(simcord_bot)
    assert all((simcord_bot.settings.data_dir / path).is_file() for path in paths)

    # 3. The owner keeps them no time at all: the next sweep removes rows and files.
    set_to = await mod.slash(channel, "admin retention", days=0)
    assert set_to.ephemeral and "removed at the next sweep" in set_to.response.content
    await sweep(simcord_bot)
    assert not any((simcord_bot.settings.data_dir / path).exists() for path in paths)
    assert not (simcord_bot.settings.data_dir / "images" / job_id).exists()
    assert await simcord_bot.db.execute_fetchall("SELECT id FROM images WHERE job_id = ?", (job_id,)) == []
    [(prompt, purged)] = await simcord_bot.db.execute_fetchall("SELECT prompt, purged_at FROM jobs WHERE id = ?", (job_id,))
    assert prompt == "" and purged is not None
    shown = await mod.slash(channel, "admin retention")
    assert "removed at the next sweep" in shown.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_MEMBERS_INTENT": "1", "TASTEMAKER_RETENTION_DAYS": "0"}])
async def test_a_departed_members_images_go_once_the_retention_has_passed_and_coming_back_cancels_it(simcord_env, world, simcord_bot):
    guild, channel, alice, bob = world
    carol = guild.add_member(simcord_env.create_user("carol"))
    for member, prompt in ((alice, "a red kite"), (bob, "a blue kite"), (carol, "a green kite")):
        await member.slash(channel, "imagine", prompt=f"{prompt} --seed 2")
        await run_until(simcord_env, lambda p=prompt: finished(channel, p))
    kites = {name: await job_of(simcord_bot, channel, f"a {name} kite") for name in ("red", "blue", "green")}

    shares = "SELECT 1 FROM web_members WHERE user_id = ? AND guild_id = ?"
    assert await simcord_bot.db.execute_fetchall(shares, (bob.id, guild.id))  # recorded as he used the bot here
    # Bob leaves for good; Carol leaves and comes back before the sweep.
    guild.remove_member(bob)
    guild.remove_member(carol)
    await simcord_env.advance_time(1)
    departed = await simcord_bot.db.execute_fetchall("SELECT user_id FROM departures WHERE guild_id = ?", (guild.id,))
    assert {row[0] for row in departed} == {bob.id, carol.id}
    assert await simcord_bot.db.execute_fetchall(shares, (bob.id, guild.id)) == []  # the web shows him none of its images
    guild.add_member(carol.user)
    await simcord_env.advance_time(1)

    await sweep(simcord_bot)
    data_dir = simcord_bot.settings.data_dir
    for name, kept in (("red", True), ("blue", False), ("green", True)):
        job_id, paths = kites[name]
        assert all((data_dir / path).is_file() == kept for path in paths), name
        left = await simcord_bot.db.execute_fetchall("SELECT COUNT(*) FROM images WHERE job_id = ?", (job_id,))
        assert left[0][0] == (4 if kept else 0), name
    assert await simcord_bot.db.execute_fetchall("SELECT * FROM departures") == []
    first = (await alice.slash(channel, "explore")).response.message
    shown = first.content + (await alice.click(first, label="Next")).response.message.content
    assert shown.count("a red kite") == 4 and shown.count("a green kite") == 4 and "a blue kite" not in shown


async def test_the_every_minute_pass_over_deleted_jobs_messages_reads_an_index_not_every_job(tmp_path):
    db = await connect(tmp_path / "tastemaker.db")
    try:
        plan = " ".join(row[3] for row in await db.execute_fetchall("EXPLAIN QUERY PLAN " + UNSCRUBBED))
    finally:
        await db.close()
    assert "USING INDEX jobs_unscrubbed" in plan, plan
