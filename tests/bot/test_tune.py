"""/tune, the Style Tuner: a prompt in 16 styles -> pairs to pick from -> a profile with a code."""

from __future__ import annotations

import re

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until
from tests.bot.test_imagine import buttons, finished, job_message
from tests.bot.test_prefer import job_rows

NO_WORKER = {"TASTEMAKER_WORKERS": "0"}


def tune_ready(channel) -> bool:
    message = job_message(channel, "style tune:")
    return message is not None and ("is ready" in message.content or "failed" in message.content)


async def queue_count(bot) -> int:
    async with bot.db.execute("SELECT COUNT(*) FROM queue_jobs") as cur:
        return (await cur.fetchone())[0]


async def tuned(simcord_env, channel, member, prompt: str = "a lighthouse", **options):
    """Run /tune and wait for its finished message."""
    result = await member.slash(channel, "tune", prompt=prompt, **options)
    assert not result.ephemeral
    await run_until(simcord_env, lambda: tune_ready(channel))
    return job_message(channel, "style tune:")


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_tune_is_picked_pair_by_pair_into_a_code_anyone_can_use(simcord_env, world, simcord_bot):
    _, channel, alice, bob = world
    ready = await tuned(simcord_env, channel, alice, "a lighthouse", name="Coastal")
    assert ready.content.startswith(f"**style tune: a lighthouse** - {alice.mention}")
    assert "Your style tune for *a lighthouse* is ready: 16 styles. Pick the one you prefer in each of 8 pairs." \
        in ready.content
    assert buttons(ready) == ["Start"]

    # One POOL job of the prompt in 16 distinct styles of data/styles.txt, counted as 16 images.
    [(kind, prompt, request)] = await job_rows(simcord_bot)
    assert (kind, prompt, request["styles"]) == ("tune", "style tune: a lighthouse", 16)
    async with simcord_bot.db.execute("SELECT images FROM jobs") as cur:
        assert (await cur.fetchone())[0] == 16
    async with simcord_bot.db.execute("SELECT COUNT(DISTINCT style), COUNT(*) FROM tune_images") as cur:
        assert tuple(await cur.fetchone()) == (16, 16)
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM images") as cur:  # the renders are the tune's, not a grid
        assert (await cur.fetchone())[0] == 0

    # Someone else's Start is refused privately.
    other = await bob.click(ready, label="Start")
    assert other.ephemeral and f"This is {alice.mention}'s tune" in other.response.content
    acknowledge_user_errors(simcord_env)

    # The sitting: a private pair of renders, the counter advancing; a skip doesn't count.
    shown = await alice.click(ready, label="Start")
    assert shown.ephemeral
    assert buttons(shown.response.message) == ["◀ Left", "Skip", "Right ▶", "Finish"]
    message = shown.response.message
    assert "1 / 8" in message.content and len(message.attachments) == 1
    seen = {message.attachments[0].filename}
    message = (await alice.click(message, label="Skip")).response.message
    assert "1 / 8" in message.content
    seen.add(message.attachments[0].filename)
    for k in range(1, 8):
        message = (await alice.click(message, label="◀ Left" if k % 2 else "Right ▶")).response.message
        assert f"{k + 1} / 8" in message.content
        seen.add(message.attachments[0].filename)
    assert len(seen) == 9  # a new pair every time
    done = (await alice.click(message, label="Right ▶")).response.message
    code = re.search(r"Your tune \*\*Coastal\*\* is ready: code `([a-z2-7]{7})`", done.content).group(1)
    assert f"Use it with `/imagine … --p {code}`; it is listed in `/profile list`." in done.content
    assert not done.components and not done.attachments

    # The tune is one of the member's profiles, fitted on its 8 picks.
    from engine import profiles

    listed = {p.name: p for p in await profiles.list_profiles(simcord_bot.db, alice.id)}
    assert listed["Coastal"].kind == "tune" and listed["Coastal"].code == code and listed["Coastal"].votes == 8

    # Start again says it's finished; the code draws for another member.
    again = await alice.click(ready, label="Start")
    assert again.ephemeral and f"This tune is finished: its code is `{code}`" in again.response.content
    acknowledge_user_errors(simcord_env)
    await bob.slash(channel, "imagine", prompt=f"a cat --p {code} --seed 4")
    await run_until(simcord_env, lambda: finished(channel, "a cat --seed 4"))
    assert f"`--p {code} --s 100`" in job_message(channel, "a cat --seed 4").content


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_answered_pairs_early_finish_and_a_restart(simcord_env, world, simcord_bot, restart_bot):
    _, channel, alice, _ = world
    ready = await tuned(simcord_env, channel, alice, "a red barn")
    first = (await alice.click(ready, label="Start")).response.message
    second = (await alice.click(ready, label="Start")).response.message  # the same open pair again
    assert first.attachments[0].filename == second.attachments[0].filename

    message = (await alice.click(first, label="◀ Left")).response.message
    answered = await alice.click(second, label="Right ▶")
    assert answered.ephemeral and "You already answered this pair" in answered.response.content

    early = await alice.click(message, label="Finish")
    assert early.ephemeral and "Pick in at least 4 pairs before finishing: you have picked 1." in early.response.content
    acknowledge_user_errors(simcord_env)

    bot = await restart_bot()  # the sitting lives in the database
    for _ in range(3):
        message = (await alice.click(message, label="Right ▶")).response.message
    assert "5 / 8" in message.content
    done = (await alice.click(message, label="Finish")).response.message
    code = re.search(r"Your tune \*\*tune 1\*\* is ready: code `([a-z2-7]{7})`", done.content).group(1)
    from engine import profiles

    assert (await profiles.get_code(bot.db, code)).votes == 4


@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_no_rank_pool(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "tune", prompt="a lighthouse")
    assert result.ephemeral and "There is no rank pool yet" in result.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_rows(simcord_bot) == []


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_bad_input_is_refused_privately_and_nothing_is_queued(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin banned_word", word="Gore", banned=True)
    from engine import profiles

    await profiles.create_profile(simcord_bot.db, alice.id, "Coastal")
    cases = [
        ({"prompt": "a g.o.r.e fest"}, "This server doesn't allow the word `gore` in prompts."),
        ({"prompt": "\u200b\u200b"}, "Give /tune something to draw"),
        ({"prompt": "a lighthouse --ar 3:2"}, "A style tune takes a plain description"),
        ({"prompt": "a lighthouse", "name": "coastal"}, "You already have a profile named `coastal`"),
        ({"prompt": "a lighthouse", "name": "server"}, "`server` is reserved"),
    ]
    for options, expected in cases:
        result = await alice.slash(channel, "tune", **options)
        assert result.ephemeral, expected
        assert expected in result.response.content, result.response.content
    acknowledge_user_errors(simcord_env)
    # Discord itself limits styles to 16 or 32.
    with pytest.raises(Exception, match="only allows"):
        await alice.slash(channel, "tune", prompt="a lighthouse", styles=24)
    assert await job_rows(simcord_bot) == [] and await queue_count(simcord_bot) == 0
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM tunes") as cur:
        assert (await cur.fetchone())[0] == 0


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_a_tune_counts_its_styles_against_the_daily_quota(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin quota", member=20)
    refused = await alice.slash(channel, "tune", prompt="a lighthouse", styles=32)
    assert refused.ephemeral and "This needs 32 images, and you have 20 of your 20 images left today" \
        in refused.response.content
    acknowledge_user_errors(simcord_env)
    assert await job_rows(simcord_bot) == []
    queued = await alice.slash(channel, "tune", prompt="a lighthouse")
    assert not queued.ephemeral and "(Waiting to start)" in channel.last_message.content
    again = await alice.slash(channel, "tune", prompt="a harbor")
    assert again.ephemeral and "This needs 16 images, and you have 4 of your 20 images left today" \
        in again.response.content
    acknowledge_user_errors(simcord_env)


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_renders_the_content_filter_blocks_are_dropped(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin nsfw", policy="block", threshold=0.0)  # every render is flagged
    failed = await tuned(simcord_env, channel, alice, "a lighthouse")
    assert "(failed: only 0 of 16 styles passed this server's content filter, and a tune needs at least 4" \
        in failed.content
    assert buttons(failed) == []
    async with simcord_bot.db.execute("SELECT state FROM tunes") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["failed"]
    async with simcord_bot.db.execute("SELECT images FROM jobs") as cur:  # a failed tune counts no images
        assert [r[0] for r in await cur.fetchall()] == [0]


@pytest.mark.parametrize("with_rank_pool", [True])
@pytest.mark.parametrize("bot_overrides", [NO_WORKER])
async def test_a_tune_whose_job_fails_fails_says_so_and_gives_its_images_back(simcord_env, world, simcord_bot, mod):
    _, channel, alice, _ = world
    await mod.slash(channel, "admin quota", member=20)
    await alice.slash(channel, "tune", prompt="a lighthouse")
    assert "(Waiting to start)" in job_message(channel, "style tune:").content
    # A worker takes the POOL job and fails it for good (what a GPU worker's error reaches the bot as).
    job = await simcord_bot.queue.claim("gpu-1", 30.0)
    assert await simcord_bot.queue.fail(job.id, "gpu-1", "CUDA out of memory", retryable=False) == "failed"
    await run_until(simcord_env, lambda: "failed" in job_message(channel, "style tune:").content)

    message = job_message(channel, "style tune:")
    assert message.content == f"**style tune: a lighthouse** - {alice.mention} (failed: CUDA out of memory)"
    assert buttons(message) == []
    async with simcord_bot.db.execute("SELECT state FROM tunes") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["failed"]
    info = await alice.slash(channel, "info")
    [embed] = info.response.embeds
    assert next(f.value for f in embed.fields if f.name == "Images today").startswith("0 of 20 used")
    again = await alice.slash(channel, "tune", prompt="a harbor")  # the 16 it counted are free again
    assert not again.ephemeral
