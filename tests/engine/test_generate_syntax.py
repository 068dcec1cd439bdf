"""Prompt syntax on the tiny preset: multi-prompt weights (`a:: b::2`), `--stop`, `--style raw`."""

from __future__ import annotations

import dataclasses

import pytest

from engine.jobs import JobError, JobKind
from engine.presets import get_preset


def _encode(engine, prompts, negative="", cfg=True):
    pipe = engine.loaded.pipe
    return engine._encode_prompts(pipe, prompts, negative, cfg)


def _close(a, b) -> bool:
    import torch

    return torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)


# -- multi-prompts ---------------------------------------------------------------------


def test_weighted_parts_are_the_weighted_mean_of_their_encodings(engine):
    red, blue = (_encode(engine, [t], cfg=False)["prompt_embeds"][0] for t in ("red", "blue"))
    mixed = _encode(engine, ["red:: blue::3"])
    assert _close(mixed["prompt_embeds"][0], (red + 3 * blue) / 4)
    # Without a negative part or --no, the negative side is the pipeline's own (the empty prompt here).
    plain = _encode(engine, ["red"])
    assert _close(mixed["negative_prompt_embeds"][0], plain["negative_prompt_embeds"][0])


def test_a_negative_weight_goes_to_the_negative_side_with_guidance(engine):
    red, blue, fog = (_encode(engine, [t], cfg=False)["prompt_embeds"][0] for t in ("red", "blue", "fog"))
    kw = _encode(engine, ["red:: blue::-0.5"])
    assert _close(kw["prompt_embeds"][0], red)
    assert _close(kw["negative_prompt_embeds"][0], blue)
    # --no joins the negative side as a part of weight 0.5 (Midjourney's `--no x` = `x::-0.5`).
    with_no = _encode(engine, ["red::2 blue::-1.5"], negative="fog")
    assert _close(with_no["negative_prompt_embeds"][0], (1.5 * blue + 0.5 * fog) / 2)


def test_without_guidance_the_mix_is_signed(engine):
    red, blue = (_encode(engine, [t], cfg=False)["prompt_embeds"][0] for t in ("red", "blue"))
    kw = _encode(engine, ["red::2 blue::-0.5"], cfg=False)
    assert set(kw) == {"prompt_embeds"}
    assert _close(kw["prompt_embeds"][0], (2 * red - 0.5 * blue) / 1.5)


def test_sdxl_mixes_the_pooled_embeddings_too(sdxl_engine):
    sdxl_engine.load()
    parts = [_encode(sdxl_engine, [t], cfg=False) for t in ("red", "blue")]
    kw = _encode(sdxl_engine, ["red::1 blue::3"], cfg=False)
    for key in ("prompt_embeds", "pooled_prompt_embeds"):
        assert _close(kw[key][0], (parts[0][key][0] + 3 * parts[1][key][0]) / 4)
    with_cfg = _encode(sdxl_engine, ["red::2 blue::-1"], cfg=True)
    assert _close(with_cfg["negative_pooled_prompt_embeds"][0], parts[1]["pooled_prompt_embeds"][0])
    assert _close(with_cfg["pooled_prompt_embeds"][0], parts[0]["pooled_prompt_embeds"][0])


def test_multi_prompt_images(engine, gen):
    red = gen.imagine(engine, seed=5, count=2, prompt="a red bird")
    mixed = gen.imagine(engine, seed=5, count=2, prompt="a red bird:: a blue fish::2")
    assert all(a != b for a, b in zip(gen.pngs(mixed), gen.pngs(red)))
    assert gen.pngs(gen.imagine(engine, seed=5, count=2, prompt="a red bird:: a blue fish::2")) == gen.pngs(mixed)
    # One part: its weight changes nothing, and the `::` is not part of the text encoded.
    assert gen.pngs(gen.imagine(engine, seed=5, count=2, prompt="a red bird::3")) == gen.pngs(red)


def test_a_bad_multi_prompt_from_elsewhere_fails_without_retry(engine, gen):
    with pytest.raises(JobError, match="multi-prompt") as caught:
        engine.run(gen.job(prompt="a:: ::2"))
    assert caught.value.retryable is False


# -- --stop ------------------------------------------------------------------------------


def _unet_calls(engine, fn):
    calls = []
    handle = engine.loaded.pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        return fn(), len(calls)
    finally:
        handle.remove()


def test_stop_runs_fewer_steps_and_decodes_an_unfinished_image(engine, gen, base_grid):
    engine.load()
    full, full_calls = _unet_calls(engine, lambda: gen.imagine(engine, seed=5, count=2))
    half, half_calls = _unet_calls(engine, lambda: gen.imagine(engine, seed=5, count=2, stop=50))
    tenth, tenth_calls = _unet_calls(engine, lambda: gen.imagine(engine, seed=5, count=2, stop=10))
    assert gen.pngs(full) == gen.pngs(base_grid)  # --stop 100 is the plain run
    assert (full_calls, half_calls, tenth_calls) == (4, 2, 1)  # tiny: 4 steps, one batched UNet call each
    assert all(a != b for a, b in zip(gen.pngs(half), gen.pngs(full)))
    assert all(a != b for a, b in zip(gen.pngs(tenth), gen.pngs(half)))
    assert {gen.png_size(p) for p in gen.pngs(half)} == {(128, 128)}
    assert gen.pngs(gen.imagine(engine, seed=5, count=2, stop=50)) == gen.pngs(half)
    # The scheduler is left as it was: the next plain run is the same as before.
    assert "step" not in vars(engine.loaded.pipe.scheduler)
    assert gen.pngs(gen.imagine(engine, seed=5, count=2)) == gen.pngs(base_grid)


def test_stop_decodes_the_schedulers_estimate_not_the_noisy_latents(engine, gen):
    """At the last step taken the latents become the x0 estimate: decoding the raw
    mid-run latents (an interrupt alone) gives another image."""
    from engine import generate

    engine.load()
    stopped = gen.imagine(engine, seed=5, count=1, stop=50)
    real = generate._x0_estimate
    generate._x0_estimate = lambda scheduler, out, inputs: None  # what a scheduler without an estimate does
    try:
        noisy = gen.imagine(engine, seed=5, count=1, stop=50)
    finally:
        generate._x0_estimate = real
    assert stopped.images[0].png != noisy.images[0].png


def test_stop_progress_still_reaches_100(engine, gen):
    percents = []
    gen.imagine(engine, seed=1, count=2, stop=50, report=lambda p, prev: percents.append(p))
    assert percents == sorted(percents) and percents[-1] == 100.0 and len(percents) == 2


def test_stop_applies_to_variations(engine, gen, base_grid):
    src = base_grid.images[0].png
    job = gen.job(JobKind.VARIATION, init_image=src, strength=0.75, count=1, seed=2)
    stopped = gen.job(JobKind.VARIATION, init_image=src, strength=0.75, count=1, seed=2, stop=34)
    (full, full_calls), (short, short_calls) = (_unet_calls(engine, lambda j=j: engine.run(j)) for j in (job, stopped))
    assert short_calls < full_calls
    assert full.images[0].png != short.images[0].png


# -- --style raw ---------------------------------------------------------------------------


def test_raw_keeps_the_presets_own_guidance(engine, gen):
    loud = gen.job(stylize=1000).generate
    raw = gen.job(stylize=1000, raw=True).generate
    assert engine._imagine(engine.loaded, loud).guidance > 3.0
    assert engine._imagine(engine.loaded, raw).guidance == get_preset("tiny").guidance_scale == 3.0
    # ... so a raw grid at --s 1000 is the plain grid at --s 100.
    assert gen.pngs(gen.imagine(engine, seed=5, count=2, stylize=1000, raw=True)) == gen.pngs(
        gen.imagine(engine, seed=5, count=2)
    )


@pytest.fixture(scope="module")
def sdxl_engine(tiny_data_dir):
    from engine import models
    from engine.generate import Engine

    eng = Engine(models.tiny_sdxl_preset(tiny_data_dir), device="cpu", data_dir=tiny_data_dir)
    yield eng
    eng.close()


def test_no_cfg_preset_ignores_raw(tiny_data_dir):
    from engine.generate import Engine

    no_cfg = Engine(dataclasses.replace(get_preset("tiny"), guidance_scale=0.0), device="cpu")
    assert no_cfg._guidance(1000, raw=True) == no_cfg._guidance(1000) == 0.0
