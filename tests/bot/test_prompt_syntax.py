"""Prompt syntax through the real bot: {a, b} permutations and --repeat with their
confirm step, the parser's errors, --stop / --style raw, and /show with job ids."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from engine.db import members
from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_flows import post_buttons
from tests.bot.test_imagine import buttons, finished, job_message

NO_WORKER = {"TASTEMAKER_WORKERS": "0"}
GRID_BUTTONS = ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"]


async def job_count(bot) -> int:
    async with bot.db.execute("SELECT COUNT(*) FROM jobs") as cur:
        return (await cur.fetchone())[0]


async def job_prompts(bot) -> list[str]:
    return [row[0] for row in await bot.db.execute_fetchall("SELECT prompt FROM jobs ORDER BY created_at")]


def short_id(message) -> str:
    return re.search(r"job `([0-9a-f]{8})`", message.content)[1]


# -- permutations: ask first, then one grid per prompt --------------------------------------


async def test_permutations_ask_first_then_make_one_grid_each(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    asked = await alice.slash(channel, "imagine", prompt="a {red, blue} bird --ar {1:1, 2:3} --stop 50")

    # 1. A private question listing the four prompts; nothing queued yet.
    assert asked.ephemeral
    question = asked.response.message
    assert "This prompt makes 4 jobs" in question.content
    for prompt in ("a red bird --ar 1:1", "a red bird --ar 2:3", "a blue bird --ar 1:1", "a blue bird --ar 2:3"):
        assert f"`{prompt} --stop 50`" in question.content
    assert buttons(question) == ["Yes", "No"]
    assert await job_count(simcord_bot) == 0 and channel.last_message is None

    # 2. The question is private; a forged copy of its Yes is refused to anyone else, and an
    #    id that was never stored is stale.
    [(pending_id,)] = await simcord_bot.db.execute_fetchall("SELECT id FROM pending_prompts")
    forged = await post_buttons(simcord_bot, channel, [f"tm:confirm:yes:{pending_id}", "tm:confirm:yes:999"])
    refused = await bob.click(forged, custom_id=f"tm:confirm:yes:{pending_id}")
    assert refused.ephemeral and f"Only {alice.mention}" in refused.response.content
    unknown = await alice.click(forged, custom_id="tm:confirm:yes:999")
    assert unknown.ephemeral and "expired or was already answered" in unknown.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_count(simcord_bot) == 0

    # 3. Yes: four jobs (past the member limit of 3: a batch from an idle member may), each its own grid.
    confirmed = await alice.click(question, label="Yes")
    assert "Queued 4 jobs" in confirmed.response.message.content
    assert buttons(confirmed.response.message) == []
    # (each job's prompt is its canonical form: the default --ar 1:1 is left out)
    assert sorted(await job_prompts(simcord_bot)) == sorted(
        f"a {c} bird{ar} --stop 50" for c in ("red", "blue") for ar in ("", " --ar 2:3")
    )
    for colour in ("red", "blue"):
        for ar, size in (("", (256, 256)), (" --ar 2:3", (256, 384))):  # tiny: 128x128 and 128x192 images, 2x2
            fragment = f"a {colour} bird{ar} --stop 50**"
            await run_until(simcord_env, lambda f=fragment: finished(channel, f))
            message = job_message(channel, fragment)
            assert buttons(message) == GRID_BUTTONS
            assert Image.open(io.BytesIO(await message.attachments[0].read())).size == size
            assert re.search(r" · job `[0-9a-f]{8}`$", message.content)

    # 4. The question is used up: its buttons are gone.
    assert buttons(confirmed.response.message) == [] and await job_count(simcord_bot) == 4


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_no_forgets_the_prompt(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    asked = await alice.slash(channel, "imagine", prompt="a {cat, dog}")
    answered = await alice.click(asked.response.message, label="No")
    assert "nothing was queued" in answered.response.message.content
    assert buttons(answered.response.message) == []
    assert await job_count(simcord_bot) == 0
    assert await simcord_bot.db.execute_fetchall("SELECT * FROM pending_prompts") == []


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_a_question_left_too_long_expires(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    asked = await alice.slash(channel, "imagine", prompt="a {cat, dog}")
    await simcord_bot.db.execute("UPDATE pending_prompts SET created_at = created_at - 16 * 60")
    await simcord_bot.db.commit()
    late = await alice.click(asked.response.message, label="Yes")
    assert late.ephemeral and "expired or was already answered: run /imagine again" in late.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_count(simcord_bot) == 0


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_repeat_asks_then_queues_each_without_the_repeat(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    asked = await alice.slash(channel, "imagine", prompt="a paper lantern --r 3")
    assert asked.ephemeral and "This prompt makes 3 jobs" in asked.response.content
    assert "`a paper lantern --r 3` ×3" in asked.response.content
    await alice.click(asked.response.message, label="Yes")
    assert await job_prompts(simcord_bot) == ["a paper lantern"] * 3  # each job's 🔄 makes one grid
    seeds = [row[0] for row in await simcord_bot.db.execute_fetchall("SELECT json_extract(request, '$.seed') FROM jobs")]
    assert len(set(seeds)) == 3
    assert [m.content.count("(Waiting to start)") for m in channel.history()] == [1, 1, 1]


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_a_batch_needs_room_for_all_its_jobs(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a kite")
    refused = await alice.slash(channel, "imagine", prompt="a {red, blue, green} kite")
    assert refused.ephemeral
    assert "This prompt makes 3 jobs; you have 1 queued or running, and the limit is 3" in refused.response.content
    assert acknowledge_user_errors(simcord_env) == [refused.response.content]
    assert await job_count(simcord_bot) == 1


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a {red, blue bird", "The `{` at character 3 is never closed"),
        ("a red} bird", "The `}` at character 6 has no `{` before it"),
        ("a {a, b} {c, d} {e, f}", "This prompt makes 8 jobs with its `{…}` choices; this server allows at most 4"),
        ("a cat --r 5", "This prompt makes 5 jobs (--repeat); this server allows at most 4"),
        ("a {cat, dog} --r 3", "This prompt makes 6 jobs (2 prompts × --repeat)"),
        ("a cat --repeat 0", "`--repeat 0` is out of range: repeat takes 1–40."),
        ("a cat --stop 5", "`--stop 5` is out of range: stop takes 10–100"),
        ("a cat --stop soon", "`--stop soon` is not a whole number"),
        ("a cat --style vivid", "`--style vivid` is not a style: style takes `raw`."),
        ("a cat --r 2 --seed 3", "`--r 2` with `--seed 3` would make the same images 2 times"),
        ("a:: ::2 cat", "The multi-prompt part before `::2` is empty"),
        ("a cat::500", "`a cat::500` is out of range: a multi-prompt weight takes -100–100."),
        ("a cat::-2 dog", "The multi-prompt weights add up to -1"),
        ("a {cat, dog --ar 9:1}", "In `a dog --ar 9:1`: `--ar 9:1` is out of range"),
        ("a cat --s 5000", "`--s 5000` is out of range"),
        ("a cat --ar 10:1", "--ar"),
        ("a cat --chaos lots", "--chaos"),
    ],
)
async def test_bad_syntax_gets_a_private_error_and_queues_nothing(simcord_env, world, simcord_bot, prompt, expected):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "imagine", prompt=prompt)
    assert result.ephemeral
    assert expected in result.response.content
    assert acknowledge_user_errors(simcord_env) == [result.response.content]
    assert channel.last_message is None
    assert await job_count(simcord_bot) == 0


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_admin_sets_the_cap_on_jobs_from_one_prompt(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    set_ = await mod.slash(channel, "admin permutations", jobs=8)
    assert set_.ephemeral and "up to 8 jobs" in set_.response.content
    asked = await alice.slash(channel, "imagine", prompt="a {a, b} {c, d} {e, f}")
    assert "This prompt makes 8 jobs" in asked.response.content

    await mod.slash(channel, "admin permutations", jobs=1)
    refused = await alice.slash(channel, "imagine", prompt="a {cat, dog}")
    assert "this server allows at most 1" in refused.response.content
    acknowledge_user_errors(simcord_env)
    # one choice is still one job: queued at once
    await alice.slash(channel, "imagine", prompt="a {cat}")
    assert await job_prompts(simcord_bot) == ["a cat"]


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_style_raw_leaves_out_the_default_personalization(simcord_env, world, simcord_bot):
    """With personalization on in /settings every prompt gets --p; --style raw is the model alone."""
    _, channel, alice, _ = world
    await members.update_settings(simcord_bot.db, alice.id, personalize=True)
    personal = await alice.slash(channel, "imagine", prompt="a cat")
    assert personal.ephemeral  # --p needs a profile this member doesn't have yet
    acknowledge_user_errors(simcord_env)
    await alice.slash(channel, "imagine", prompt="a cat --style raw --stop 60")
    assert await job_prompts(simcord_bot) == ["a cat --stop 60 --style raw"]
    assert "--p" not in channel.last_message.content
    job = await simcord_bot.queue.claim("test-worker", 30)  # what a worker would get
    assert (job.generate.raw, job.generate.stop, job.generate.conditioning) == (True, 60, None)


# -- /show ------------------------------------------------------------------------------------


async def test_show_posts_a_finished_job_again_with_its_buttons(simcord_env, world, simcord_bot):
    guild, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a quiet harbor --seed 4")
    await run_until(simcord_env, lambda: finished(channel, "a quiet harbor"))
    original = job_message(channel, "a quiet harbor")
    job = short_id(original)

    # 1. The member's own job, in another channel of the server: the grid and its buttons again.
    other = guild.create_text_channel("gallery")
    shown = await alice.slash(other, "show", job=job)
    assert not shown.ephemeral
    reposted = other.last_message
    assert reposted.content == original.content
    assert buttons(reposted) == GRID_BUTTONS
    assert (await reposted.attachments[0].read()) == (await original.attachments[0].read())
    # ...and its buttons work there.
    await alice.click(reposted, label="U3")
    assert "Image #3" in other.last_message.content

    # 2. The full id works too; a prefix of 4 is enough when it is unique.
    [(full,)] = await simcord_bot.db.execute_fetchall("SELECT id FROM jobs")
    await alice.slash(other, "show", job=full.upper())
    assert other.last_message.content == original.content

    # 3. Someone else's job, and a job of another server, are "not found".
    for who, where in ((bob, channel),):
        refused = await who.slash(where, "show", job=job)
        assert refused.ephemeral and f"No job `{job}` of yours on this server" in refused.response.content
    elsewhere = simcord_env.create_guild("Other club")
    elsewhere_channel = elsewhere.create_text_channel("general")
    alice_there = elsewhere.add_member(alice.user)
    refused = await alice_there.slash(elsewhere_channel, "show", job=job)
    assert refused.ephemeral and f"No job `{job}` of yours on this server" in refused.response.content
    assert elsewhere_channel.last_message is None

    # 4. Not an id at all.
    bad = await alice.slash(channel, "show", job="hello")
    assert bad.ephemeral and "is not a job id" in bad.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_show_refuses_a_job_that_is_not_finished(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a slow boat")
    [(full,)] = await simcord_bot.db.execute_fetchall("SELECT id FROM jobs")
    waiting = await alice.slash(channel, "show", job=full[:8])
    assert waiting.ephemeral and "isn't finished yet" in waiting.response.content
    acknowledge_user_errors(simcord_env)
