"""Owner presets in Discord: /admin model default and list, --v with a file
preset, a preset that can't personalize saying so, and /admin workers."""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

from bot import render
from engine.db import jobs as db_jobs
from engine.presets import load_presets
from tests.bot.conftest import acknowledge_user_errors, run_until

PRESETS_TOML = """
    [presets.owner-xl]
    description = "The owner's SDXL finetune"
    repo = "someone/owner-xl"
    steps = 8
    guidance = 2.0

    [presets.bigg]
    description = "An SDXL model with a ViT-bigG IP-Adapter"
    repo = "someone/bigg"
    ip_adapter = { repo = "h94/IP-Adapter", subfolder = "sdxl_models", weight = "ip-adapter_sdxl.safetensors", image_encoder = "ViT-bigG-14" }
"""


@pytest.fixture(autouse=True)
def builtins_after():
    yield
    load_presets(None)  # the registry is per process: the next test starts from the built-ins


@pytest.fixture
def bot_overrides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("owner-presets")
    (folder / "presets.toml").write_text(textwrap.dedent(PRESETS_TOML))
    return {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_PRESETS": str(folder / "presets.toml")}


async def queued(bot) -> list:
    return sorted(await db_jobs.active_jobs(bot.db), key=lambda job: job.created_at)


async def test_the_server_default_preset_applies_without_v(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    listed = await mod.slash(channel, "admin model list")
    assert listed.ephemeral and "`owner-xl` The owner's SDXL finetune" in listed.response.content
    assert "`tiny`" in listed.response.content and "**this server's default**" in listed.response.content
    assert "`bigg` An SDXL model with a ViT-bigG IP-Adapter · no personalization" in listed.response.content

    refused = await mod.slash(channel, "admin model default", name="nope")
    assert refused.ephemeral and "`nope` is not a model preset here" in refused.response.content and "owner-xl" in refused.response.content
    done = await mod.slash(channel, "admin model default", name="owner-xl")
    assert done.ephemeral and "Prompts without `--v` now use `owner-xl`." in done.response.content

    await alice.slash(channel, "imagine", prompt="a red kite")
    await alice.slash(channel, "imagine", prompt="a blue kite --v tiny")
    first, second = await queued(simcord_bot)
    assert first.request["preset"] == "owner-xl" and second.request["preset"] == "tiny"
    assert "a red kite" in first.prompt and "a blue kite" in second.prompt

    back = await mod.slash(channel, "admin model default")
    assert "the bot's default, `tiny`" in back.response.content
    await alice.slash(channel, "imagine", prompt="a green kite")
    assert (await queued(simcord_bot))[-1].request["preset"] == "tiny"
    acknowledge_user_errors(simcord_env)


async def test_a_preset_that_cannot_personalize_says_so(simcord_env, world, simcord_bot):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a kite --v bigg --p --s 250")
    (job,) = await queued(simcord_bot)
    assert job.request["preset"] == "bigg" and job.request["codes"] == []
    note = "`bigg` runs without personalization: --p and --sref were not applied"
    assert job.request["note"] == note
    assert note in render.finished(job, simcord_bot.settings.model)  # what the finished message will say


@pytest.mark.parametrize("bot_overrides", [{}])
async def test_admin_workers_lists_the_inline_worker_with_its_jobs(simcord_env, world, mod):
    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a lighthouse")
    await run_until(simcord_env, lambda: "(Waiting" not in channel.last_message.content
                    and "%" not in channel.last_message.content)

    async def reported() -> str:
        return (await mod.slash(channel, "admin workers")).response.content

    for _ in range(100):  # the worker reports right after handing in the result
        content = await reported()
        if "1 done" in content:
            break
        await asyncio.to_thread(time.sleep, 0.05)
    assert "workers seen in the last day" in content and "tiny" in content and "cpu" in content
    assert "1 done, 0 failed" in content and "last heartbeat <t:" in content
    assert "admin" not in alice.available_commands(channel)
