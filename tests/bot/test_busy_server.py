"""A busy server on Discord's limits (tests/discord_limits.py), at the default preset's sizes.

The bot runs the default preset, so its jobs ask for 1024-px images, with no local worker: a GPU
double (tests/gpu_double.py) runs in the real worker loop on the bot's queue, in real time, while
the bot's clock is SimCord's virtual one. Every test here fails if the bot broke one of Discord's
limits (a 429, an upload over the server's limit, a first answer after 3 s: tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from bot import generation, outbox
from engine.db import jobs as db_jobs
from engine.jobs import EventType
from engine.worker import InlineWorker
from gpu_double import GPUDouble
from tests.bot.conftest import acknowledge_user_errors, private_reply, run_until
from tests.bot.test_imagine import buttons, finished, job_message
from tests.bot.test_sref import allow_loopback, local_server

DEFAULT_PRESET = {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_MODEL": "sdxl-lightning"}
MiB = 2**20


@pytest.fixture
def gpu(settings):
    """Start the GPU double on the bot's queue; stopped at the end."""
    started: list[InlineWorker] = []

    def start(**options) -> InlineWorker:
        worker = InlineWorker(settings.queue_url, settings.model, "cpu", settings.data_dir, runner=GPUDouble(**options))
        started.append(worker.start())
        assert worker.wait_ready(30) and worker.error is None, worker.error
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def done_at(simcord_env, simcord_bot, monkeypatch) -> dict[str, float]:
    """When the job pump took in each job's result, on SimCord's clock."""
    seen: dict[str, float] = {}
    apply = simcord_bot.delivery.apply

    async def noting_results(record, events):
        if any(event.type is EventType.DONE for event in events):
            seen[record.id] = simcord_env.backend.clock.elapsed
        return await apply(record, events)

    monkeypatch.setattr(simcord_bot.delivery, "apply", noting_results)
    return seen


def shown_at(limits, message_id: int) -> float:
    """When the message was last written to (its result), on SimCord's clock."""
    return max(write.at for write in limits.writes if write.message_id == message_id)


async def posted(message) -> Image.Image:
    [attachment] = message.attachments
    assert attachment.size <= 10 * MiB, attachment.size
    return Image.open(io.BytesIO(await attachment.read()))


async def jobs_of(bot) -> list[db_jobs.JobRecord]:
    rows = await bot.db.execute_fetchall("SELECT id FROM jobs ORDER BY created_at")
    return [await db_jobs.get_job(bot.db, row[0]) for row in rows]


@pytest.mark.parametrize("bot_overrides", [DEFAULT_PRESET])
async def test_a_busy_channel_shows_every_grid_as_its_worker_finishes(
    simcord_env, simcord_bot, discord_limits, gpu, done_at, settings
):
    guild = simcord_env.create_guild("Busy server")
    busy, quiet = guild.create_text_channel("art"), guild.create_text_channel("quiet")
    members = [guild.add_member(simcord_env.create_user(f"member{n}")) for n in range(8)]
    for turn in range(2):  # 16 jobs in one channel, queued before any runs
        for n, member in enumerate(members):
            await member.slash(busy, "imagine", prompt=f"a harbour, study {n}.{turn} --seed {n}")
    await members[0].slash(quiet, "imagine", prompt="a quiet field --seed 3")
    gpu(seconds_per_job=0.15)

    prompts = [(busy, f"study {n}.{turn}") for turn in range(2) for n in range(8)] + [(quiet, "a quiet field")]
    await run_until(simcord_env, lambda: all(finished(channel, p) for channel, p in prompts), timeout=180)

    for record in await jobs_of(simcord_bot):
        # The grid shows the moment the pump has the result: no other message's edits before it.
        assert shown_at(discord_limits, record.message_id) - done_at[record.id] < 0.01, record.prompt
        # Posted as a JPEG grid that fits the server's 10 MiB; the PNG originals (1024 px) stay.
        message = job_message(busy if "study" in record.prompt else quiet, record.prompt[:20])
        grid = await posted(message)
        assert (grid.format, grid.size) == ("JPEG", (2048, 2048))
        assert buttons(message)[:4] == ["U1", "U2", "U3", "U4"]
        for image in await db_jobs.images_of(simcord_bot.db, record.id):
            original = Image.open(Path(settings.data_dir) / image.path)
            assert (original.format, original.size) == ("PNG", (1024, 1024))
    # Each job's message was edited through its own interaction's webhook, never the busy channel.
    assert not [w for w in discord_limits.writes if w.bucket == f"channel:{busy.id}"]


@pytest.mark.parametrize("bot_overrides", [DEFAULT_PRESET])
async def test_past_their_tokens_job_messages_share_the_channels_budget_results_first(
    simcord_env, world, simcord_bot, discord_limits, gpu, done_at, monkeypatch
):
    guild, channel, *_ = world
    monkeypatch.setattr(outbox, "TOKEN_LIFE_S", 10.0)  # 15 minutes, shortened
    monkeypatch.setattr(outbox, "TOKEN_MARGIN_S", 0.0)
    members = [guild.add_member(simcord_env.create_user(f"member{n}")) for n in range(5)]
    for turn in range(2):
        for n, member in enumerate(members):
            await member.slash(channel, "imagine", prompt=f"a lantern, study {n}.{turn}")
    await simcord_env.advance_time(12.0)  # every interaction's token is past its use
    gpu(seconds_per_job=0.1)

    prompts = [f"study {n}.{turn}" for turn in range(2) for n in range(5)]
    await run_until(simcord_env, lambda: all(finished(channel, p) for p in prompts), timeout=120)

    late = [w for w in discord_limits.writes if w.at > 12.0 and w.message_id is not None]
    assert late and {w.bucket for w in late} == {f"channel:{channel.id}"}
    window = outbox.MESSAGE_WRITES[1]
    for record in await jobs_of(simcord_bot):  # a result waits at most for the channel's budget to free up
        assert shown_at(discord_limits, record.message_id) - done_at[record.id] <= window, record.prompt


@pytest.mark.parametrize("bot_overrides", [DEFAULT_PRESET])
async def test_posts_fit_the_upload_limit_and_a_lost_boost_is_heeded(simcord_env, world, simcord_bot, discord_limits, gpu):
    guild, channel, alice, _ = world
    discord_limits.boost(guild, 2)  # 50 MiB, for now
    gpu(texture="noise", seconds_per_job=0.5)  # the worst case for every encoder
    await alice.slash(channel, "imagine", prompt="static on an old screen --seed 5")
    await run_until(simcord_env, lambda: finished(channel, "static on an old screen"))
    grid = job_message(channel, "static on an old screen")
    assert (await posted(grid)).size == (2048, 2048)  # as PNG, 12 MB

    picked = await alice.click(grid, label="U1")
    assert (await posted(picked.response.message)).format == "PNG"  # the original: it fits
    await alice.click(picked.response.message, label="Upscale (Subtle)")
    discord_limits.boost(guild, 0)  # the boosts run out while the job runs: 10 MiB again
    await run_until(simcord_env, lambda: finished(channel, "Upscaled"))
    upscaled = job_message(channel, "Upscaled")
    image = await posted(upscaled)  # a 2048-px PNG of noise is 12 MB: the largest JPEG that fits instead
    assert (image.format, image.size) == ("JPEG", (2048, 2048))
    assert "Shown smaller to fit this server's upload limit" in upscaled.content


@pytest.mark.parametrize("bot_overrides", [DEFAULT_PRESET])
async def test_an_upload_discord_refuses_is_posted_smaller(simcord_env, world, simcord_bot, discord_limits, gpu):
    guild, channel, alice, _ = world
    discord_limits.enforced[guild.id] = 6 * MiB  # Discord takes less than it says, and the bot can't know
    gpu(texture="noise", seconds_per_job=0.5)
    await alice.slash(channel, "imagine", prompt="rain on a window --seed 8")
    await run_until(simcord_env, lambda: finished(channel, "rain on a window"))
    [refused] = discord_limits.take_violations()  # the grid as the worker made it: 7.5 MB
    assert refused.kind == "413"
    message = job_message(channel, "rain on a window")
    [attachment] = message.attachments
    assert attachment.size <= 5 * MiB  # half the limit it was refused at
    assert "U1" in buttons(message)


# -- the first answer within 3 s -----------------------------------------------------------------


@asynccontextmanager
async def slow_image_server(delay_s: float):
    """http://127.0.0.1:PORT whose pages take `delay_s` of real time."""

    async def serve(request: web.Request) -> web.Response:
        await asyncio.to_thread(time.sleep, delay_s)
        if request.match_info["name"] == "cat.png":
            out = io.BytesIO()
            Image.new("RGB", (64, 64), "teal").save(out, format="PNG")
            return web.Response(body=out.getvalue(), content_type="image/png")
        return web.Response(text="<html>a page</html>", content_type="text/html")

    async with local_server(serve) as base:
        yield base


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_a_slow_image_link_is_answered_within_3_s(simcord_env, world, simcord_bot, monkeypatch):
    _, channel, alice, _ = world
    allow_loopback(monkeypatch)
    async with slow_image_server(2.5) as base:
        result = await alice.slash(channel, "imagine", prompt=f"{base}/cat.png a cat in the rain")
        assert not result.ephemeral
        assert "a cat in the rain" in result.response.content and "(Waiting to start)" in result.response.content
        [record] = await jobs_of(simcord_bot)
        assert record.message_id == result.response.id  # the placeholder became the job's message

        refused = await alice.slash(channel, "imagine", prompt=f"{base}/page.html a dog")
        assert "is not an image (text/html)" in private_reply(refused)
        assert acknowledge_user_errors(simcord_env)[-1] == private_reply(refused)
        assert len(await jobs_of(simcord_bot)) == 1
        assert "a dog" not in channel.last_message.content  # the placeholder is gone


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_an_answer_after_3_s_is_what_discord_refuses(simcord_env, world, simcord_bot, discord_limits, monkeypatch):
    """The limits hold for the bot as it runs: a command that answers late is caught."""
    _, channel, alice, _ = world
    plan = generation.plan_imagine

    async def slow_plan(*args):
        await asyncio.to_thread(time.sleep, 3.2)
        return await plan(*args)

    monkeypatch.setattr(generation, "plan_imagine", slow_plan)
    await alice.slash(channel, "imagine", prompt="a slow snail")
    late = discord_limits.take_violations()  # the answer, then the error path's apology: both too late
    assert late and {v.kind for v in late} == {"late answer"}
    simcord_env.errors.clear()
