"""Owner presets in Discord: /admin model default and list, --v with a file
preset, --p on a preset without a taste-space IP-Adapter (by style words; what
such a preset can't do refused in one line), and /admin workers."""

from __future__ import annotations

import asyncio
import textwrap
import time

import numpy as np
import pytest

from engine import profiles
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

    [presets.owner-flux]
    description = "The owner's FLUX"
    pipeline = "flux"
    repo = "someone/owner-flux"
    licence = "Apache-2.0"
"""


@pytest.fixture(autouse=True)
def builtins_after():
    yield
    load_presets(None)  # the registry is per process: the next test starts from the built-ins


@pytest.fixture
def bot_overrides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("owner-presets")
    (folder / "presets.toml").write_text(textwrap.dedent(PRESETS_TOML))
    return {"TASTEMAKER_WORKERS": "0", "TASTEMAKER_PRESETS": str(folder / "presets.toml"), "TASTEMAKER_MAX_JOBS_PER_USER": "9"}


async def queued(bot) -> list:
    return sorted(await db_jobs.active_jobs(bot.db), key=lambda job: job.created_at)


async def test_the_server_default_preset_applies_without_v(simcord_env, world, mod, simcord_bot):
    _, channel, alice, _ = world
    listed = await mod.slash(channel, "admin model list")
    assert listed.ephemeral and "`owner-xl` The owner's SDXL finetune" in listed.response.content
    assert "`tiny`" in listed.response.content and "**this server's default**" in listed.response.content
    assert "`bigg` An SDXL model with a ViT-bigG IP-Adapter · `--p` by style words, no image prompts" in listed.response.content
    assert "`owner-flux` The owner's FLUX · `--p` by style words" in listed.response.content

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


@pytest.mark.parametrize("with_rank_pool", [True])
async def test_p_steers_a_preset_without_a_taste_adapter_by_style_words(simcord_env, world, simcord_bot, monkeypatch):
    """--p on FLUX (or an adapter that reads another encoder) sends the taste's nearest style words
    at the preset's lambda(s), never a conditioning vector; --s 0 sends nothing; what the family
    can't do (--tile on a transformer, --sref links, image prompts) is refused in one line."""
    _, channel, alice, _ = world
    submitted = []
    submit = simcord_bot.queue.submit

    async def spy(job):
        submitted.append(job.generate)
        await submit(job)

    monkeypatch.setattr(simcord_bot.queue, "submit", spy)
    rng = np.random.default_rng(3)
    code = await profiles.create_moodboard(simcord_bot.db, alice.id, rng.standard_normal((3, 64)))
    basis, preset = await profiles.current_basis(simcord_bot.db)
    taste = await profiles.resolve(simcord_bot.db, alice.id, [(code, 1.0)], 0)
    expected, _ = profiles.explain(taste.w, basis, *await profiles.q.style_words(simcord_bot.db, preset),
                                   n=profiles.TASTE_WORDS)
    assert expected
    for name in ("owner-flux", "bigg"):
        sent = await alice.slash(channel, "imagine", prompt=f"a kite --v {name} --p {code} --s 250")
        assert not sent.ephemeral, sent.response.content
        spec = submitted[-1]
        assert spec.taste_words == expected and spec.conditioning is None
        assert spec.taste_words_weight == pytest.approx(profiles.calibration_for(name).scale(250))
    await alice.slash(channel, "imagine", prompt=f"a kite --v owner-flux --p {code} --s 0")
    spec = submitted[-1]
    assert spec.taste_words == [] and spec.taste_words_weight == 0
    await alice.slash(channel, "imagine", prompt=f"a kite --v owner-flux --p {code} --q 2")
    spec = submitted[-1]
    assert spec.candidates == 8 and spec.rerank_direction is not None  # best-of-n on every family
    tile = await alice.slash(channel, "imagine", prompt="a kite --v owner-flux --tile")
    assert "`--tile` needs a UNet model, and `owner-flux` (flux) is a transformer" in tile.response.content
    sref = await alice.slash(channel, "imagine", prompt="a kite --v owner-flux --sref https://example.com/a.png")
    assert "The model `owner-flux` can't read a style image (`--sref` link)" in private_text(sref)
    linked = await alice.slash(channel, "imagine", prompt="https://example.com/a.png a kite --v owner-flux")
    assert "The model `owner-flux` can't read images (image prompts, /blend)" in private_text(linked)
    assert len(acknowledge_user_errors(simcord_env)) == 3


def private_text(result) -> str:
    from tests.bot.conftest import private_reply

    return private_reply(result)


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
