"""Which model drew it (issue 20): a job drawn by another preset than the bot's own default
(TASTEMAKER_MODEL), here through the server's `/admin model default`, says `--v NAME` wherever
its parameters are shown: the finished message, `/show`, and the web image page."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from bot import render
from engine.db import jobs as db_jobs
from engine.worker import InlineWorker
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished, job_message
from tests.web.conftest import signed_in


@pytest.fixture
def web_overrides() -> dict[str, str]:
    # The bot's default is sd15 (never drawn here); a tiny worker started by the test draws the jobs.
    return {"TASTEMAKER_MODEL": "sd15", "TASTEMAKER_WORKERS": "0"}


@pytest.fixture
async def tiny_worker(settings):
    worker = InlineWorker(settings.queue_url, "tiny", "cpu", settings.data_dir, lease_s=5.0).start()
    assert await asyncio.to_thread(worker.wait_ready, 60) and worker.error is None, worker.error
    yield worker
    worker.stop()


async def test_a_job_another_preset_drew_says_which_everywhere(simcord_env, world, mod, simcord_bot, tiny_worker,
                                                                base_url):
    guild, channel, alice, _ = world
    await mod.slash(channel, "admin model default", name="tiny")
    await alice.slash(channel, "imagine", prompt="a red kite --seed 5")
    await run_until(simcord_env, lambda: finished(channel, "a red kite"))
    done = job_message(channel, "a red kite").content
    assert done.startswith(f"**a red kite --seed 5** - {alice.mention} · `--v tiny` · seed 5 · "), done
    job = re.search(r"job `([0-9a-f]{8})`", done).group(1)

    gallery = guild.create_text_channel("gallery")
    await alice.slash(gallery, "show", job=job)
    assert gallery.last_message.content == done

    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    client = await signed_in(alice, channel)
    async with client:
        page = await (await client.get(f"{base_url}/image/{image_id}")).text()
    assert re.search(r'<p class="prompt" id="prompt">a red kite --seed 5 --v tiny</p>', page), page
    assert 'data-copy="a red kite --seed 5 --v tiny"' in page

    # Typed in the prompt, it is not said twice; the bot's own default is not said at all.
    await alice.slash(channel, "imagine", prompt="a blue kite --v tiny")
    await run_until(simcord_env, lambda: finished(channel, "a blue kite"))
    typed = job_message(channel, "a blue kite").content
    assert typed.count("--v tiny") == 1 and typed.startswith(f"**a blue kite --v tiny** - {alice.mention} · seed ")
    [(job_id,)] = await simcord_bot.db.execute_fetchall("SELECT id FROM jobs WHERE prompt = 'a blue kite --v tiny'")
    record = await db_jobs.get_job(simcord_bot.db, job_id)
    by_default = dataclasses.replace(record, prompt="a green kite", request={**record.request, "preset": "sd15"})
    assert "--v" not in render.finished(by_default, "sd15")
