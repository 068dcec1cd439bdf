"""engine.generate / engine.models / engine.presets on the tiny preset (CPU, real diffusers code paths)."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.jobs import Job, JobCancelled, JobError, JobKind, PoolSpec
from engine.presets import DEFAULT_PRESET, PRESETS, get_preset

# -- presets ---------------------------------------------------------------------------


def test_presets_are_pure_data_and_name_the_real_models():
    code = "import sys, engine.presets as p; assert 'torch' not in sys.modules; print(sorted(p.PRESETS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tiny" in out
    assert DEFAULT_PRESET in PRESETS and PRESETS[DEFAULT_PRESET].kind == "sdxl"
    for p in PRESETS.values():
        if p.kind != "tiny":  # the UNet families with their plain ViT-H adapter; FLUX steers by style words
            assert p.base_repo and (p.ip_adapter_repo or p.kind == "flux") and "plus" not in p.ip_adapter_weight
            assert (p.openclip_model, p.openclip_pretrained, p.embed_dim) == ("ViT-H-14", "laion2b_s32b_b79k", 1024)
    tiny = get_preset("tiny")
    assert tiny.uses_cfg and tiny.steps <= 4 and tiny.base_size == 128
    assert not get_preset(DEFAULT_PRESET).uses_cfg
    with pytest.raises(KeyError, match="fast, flux-schnell, sd15, sdxl-lightning, tiny"):
        get_preset("nope")


# -- the tiny build ------------------------------------------------------------------------


def _tensors(root: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out = {}
    for f in sorted(root.rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.relative_to(root)}:{k}"] = v
    return out


def test_tiny_build_is_deterministic_and_check_sees_it(tiny_data_dir, tmp_path):
    from engine import models

    fresh = tmp_path / "data"
    assert [i.present for i in models.check("tiny", fresh)] == [False]
    models.build_tiny(fresh)
    assert [i.present for i in models.check("tiny", fresh)] == [True]
    assert all(i.present for i in models.check("tiny", tiny_data_dir))

    a, b = models.tiny_dir(tiny_data_dir), models.tiny_dir(fresh)
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 50
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)
    for name in ("model_index.json", "unet/config.json", "tokenizer/tokenizer.json", "openclip/tastemaker-tiny-clip.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_tiny_tokenizer_matches_open_clip(engine):
    import open_clip

    reference = open_clip.get_tokenizer("ViT-H-14")
    for text in ["a watercolor painting of a cat, soft light", "Neon city at NIGHT!!! 3D render", "café crème brûlée"]:
        ids = reference([text])[0].tolist()
        assert engine.loaded.pipe.tokenizer(text).input_ids == ids[: ids.index(49407) + 1]


def test_check_real_preset_reports_missing_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    from engine import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    items = models.check("fast", tmp_path)
    names = [i.name for i in items]
    assert {"model_index", "unet weights", "text_encoder_2 weights", "ip_adapter"} <= set(names)
    assert any(n.startswith("openclip ViT-H-14") for n in names)
    assert not any(i.present for i in items)
    assert "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors" in " ".join(i.detail for i in items)

    # Files in the hub cache layout are found (still without any network).
    def fake(repo: str, filename: str) -> None:
        base = cache / f"models--{repo.replace('/', '--')}"
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / "main").write_text("abc123")
        path = base / "snapshots" / "abc123" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    fake("h94/IP-Adapter", "sdxl_models/ip-adapter_sdxl_vit-h.safetensors")
    fake("stabilityai/sdxl-turbo", "unet/diffusion_pytorch_model.fp16.safetensors")
    present = {i.name for i in models.check("fast", tmp_path) if i.present}
    assert present == {"ip_adapter", "unet weights"}


# -- imagine ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width,height,count", [(128, 128, 4), (192, 128, 2), (128, 192, 1)])
def test_imagine_sizes(engine, gen, width, height, count):
    spec = {"count": count} if count != 4 else {}  # 4 is the default
    result = gen.imagine(engine, width=width, height=height, seed=5, **spec)
    assert len(result.images) == count
    for i, im in enumerate(result.images):
        assert (im.width, im.height) == (width, height) == gen.png_size(im.png)
        assert im.seed == 5 + i
        assert len(im.embedding) == engine.loaded.embedder.dim == 64
        assert im.score is None
    assert set(result.timings) >= {"load", "generate", "embed", "gpu"}
    assert result.timings["gpu"] >= result.timings["generate"] > 0


def test_same_seed_same_png_different_seed_differs(engine, gen, base_grid):
    again = gen.imagine(engine, seed=5, count=2)
    assert gen.pngs(again) == gen.pngs(base_grid)
    assert [im.embedding for im in again.images] == [im.embedding for im in base_grid.images]
    shifted = gen.imagine(engine, seed=6, count=2)
    assert shifted.images[0].png != base_grid.images[0].png
    assert shifted.images[0].png == base_grid.images[1].png  # image i depends on seed + i only
    assert len(set(gen.pngs(base_grid))) == 2


def test_progress_percents_and_previews(engine, gen):
    from PIL import Image

    calls: list[tuple[float, bytes | None]] = []
    gen.imagine(engine, seed=1, count=6, report=lambda p, prev: calls.append((p, prev)))  # batches of 4 and 2
    percents = [p for p, _ in calls]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert percents[0] > 0 and percents[-1] == 100.0
    previews = [prev for _, prev in calls if prev is not None]
    assert previews, "the first step always carries a preview"
    with Image.open(io.BytesIO(previews[0])) as im:
        assert im.format == "JPEG" and max(im.size) <= 256


def test_progress_previews_skip_an_offloaded_vae():
    from engine.families import FAMILIES
    from engine.generate import _Progress

    def made(kind: str, offload: str) -> bool:
        return _Progress(lambda p, prev: None, lambda: False, FAMILIES[kind], 1, offload).previews

    assert made("sdxl", "model") and made("flux", "none")  # a latent_rgb map, or the VAE on the device
    assert not made("flux", "model") and not made("sd3", "sequential")  # a 16-channel VAE offloaded


def test_cancel_raises_and_leaves_the_engine_usable(engine, gen, base_grid):
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 3  # stop during the second denoising step

    with pytest.raises(JobCancelled):
        gen.imagine(engine, seed=5, count=2, should_stop=should_stop)
    assert engine.loaded.pipe._interrupt is True
    assert len(polls) == 3
    with pytest.raises(JobCancelled):
        gen.imagine(engine, seed=5, should_stop=lambda: True)
    assert gen.pngs(gen.imagine(engine, seed=5, count=2)) == gen.pngs(base_grid)  # no state left behind


def test_tile_changes_output_and_is_restored(engine, gen, base_grid):
    import torch

    tiled = gen.imagine(engine, seed=5, count=1, tile=True)
    assert tiled.images[0].png != base_grid.images[0].png
    parts = (engine.loaded.pipe.unet, engine.loaded.pipe.vae)
    convs = [m for part in parts for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {c.padding_mode for c in convs} == {"zeros"}


def test_chaos_perturbs_the_grid(engine, gen, base_grid):
    chaotic = gen.imagine(engine, seed=5, count=2, chaos=100)
    assert all(a != b for a, b in zip(gen.pngs(chaotic), gen.pngs(base_grid)))
    assert gen.pngs(gen.imagine(engine, seed=5, count=2, chaos=100)) == gen.pngs(chaotic)


def test_sampling_parameters(engine):
    from engine.generate import Engine

    assert [engine._steps(q) for q in (0.5, 1, 2)] == [2, 4, 8]
    assert engine._guidance(100) == 3.0
    assert engine._guidance(0) < 3.0 < engine._guidance(250) < engine._guidance(1000) <= 3.0 * 1.3 + 1e-9
    no_cfg = Engine(dataclasses.replace(get_preset("tiny"), guidance_scale=0.0), device="cpu")
    assert no_cfg._guidance(1000) == 0.0


def _png_of_size(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_input_is_a_non_retryable_job_error(engine, gen, base_grid):
    """What the spec's constraints cannot see (tests/engine/test_jobs.py has those): the model and the image."""
    src = base_grid.images[0].png
    bad = [
        gen.job(conditioning=[1.0] * 63, ip_adapter_scale=0.5),
        gen.job(candidates=8, rerank_direction=[1.0] * 10),
        gen.job(JobKind.VARIATION, strength=0.5),  # no init image
        gen.job(JobKind.VARIATION, strength=0.5, init_image=b"not an image"),
        gen.job(JobKind.VARIATION, strength=0.0, init_image=src),
        gen.job(JobKind.VARIATION, strength=0.5, init_image=_png_of_size(100, 128)),
        gen.job(JobKind.UPSCALE, init_image=_png_of_size(2048, 1024)),  # x2 is too large
        Job(kind=JobKind.POOL, preset="tiny"),  # no pool parameters
    ]
    for job in bad:
        with pytest.raises(JobError) as info:
            engine.run(job)
        assert info.value.retryable is False, job


# -- variation, upscale, pool ------------------------------------------------------------------------


def test_variation_strong_and_subtle(engine, gen, base_grid):
    src = base_grid.images[0].png
    strong = engine.run(gen.job(JobKind.VARIATION, init_image=src, strength=0.75, seed=9))
    subtle = engine.run(gen.job(JobKind.VARIATION, init_image=src, strength=0.4, seed=9, count=2))
    assert len(strong.images) == 4 and len(subtle.images) == 2
    for result in (strong, subtle):
        assert {(im.width, im.height) for im in result.images} == {(128, 128)}
        assert len(set(gen.pngs(result))) == len(result.images)
        assert [im.seed for im in result.images] == list(range(9, 9 + len(result.images)))
    assert all(a != b for a, b in zip(gen.pngs(strong), gen.pngs(subtle)))


def test_variation_keeps_a_non_square_source_size(engine, gen):
    src = gen.imagine(engine, width=192, height=128, count=1, seed=2).images[0].png
    result = engine.run(gen.job(JobKind.VARIATION, init_image=src, strength=0.4, count=1))
    assert gen.png_size(result.images[0].png) == (192, 128)


def test_upscale_doubles(engine, gen, base_grid):
    result = engine.run(gen.job(JobKind.UPSCALE, init_image=base_grid.images[0].png, seed=5))
    assert len(result.images) == 1
    im = result.images[0]
    assert (im.width, im.height) == (256, 256) == gen.png_size(im.png)
    assert len(im.embedding) == 64


def test_pool_one_image_per_style_same_seed(engine, gen):
    styles = ["watercolor", "neon", "3d render"]
    job = Job(kind=JobKind.POOL, preset="tiny", pool=PoolSpec(prompt="a fox", styles=styles, seed=11, width=128, height=128))
    result = engine.run(job)
    assert [im.label for im in result.images] == styles
    assert {im.seed for im in result.images} == {11}
    assert len(set(gen.pngs(result))) == 3
    assert all(len(im.embedding) == 64 for im in result.images)


# -- personalization ---------------------------------------------------------------------------------


def test_conditioning_changes_output_and_none_is_bit_identical_to_no_adapter(engine, gen, base_grid, tiny_data_dir):
    from engine.generate import Engine

    assert engine.loaded.ip_adapter and engine.loaded.ip_embed_dim == 64
    cond = gen.random_vector(64)
    personal = gen.imagine(engine, seed=5, count=2, conditioning=cond, ip_adapter_scale=0.8)
    assert all(a != b for a, b in zip(gen.pngs(personal), gen.pngs(base_grid)))

    bare = Engine("tiny", device="cpu", data_dir=tiny_data_dir, ip_adapter=False)
    try:
        plain = gen.imagine(bare, seed=5, count=2)
        assert not bare.loaded.ip_adapter and bare.loaded.pipe.unet.encoder_hid_proj is None
    finally:
        bare.close()
    assert gen.pngs(plain) == gen.pngs(base_grid)  # conditioning=None: the adapter is an exact no-op
    with pytest.raises(JobError, match="personalization"):
        bare.run(gen.job(conditioning=cond, ip_adapter_scale=0.5))


def test_ip_adapter_embeds_shapes(engine):
    cond = [1.0] * 64
    with_cfg = engine._ip_embeds(engine.loaded, cond, 3, cfg=True)
    assert tuple(with_cfg.shape) == (6, 1, 64)
    assert with_cfg[:3].abs().sum() == 0 and bool((with_cfg[3:] == 1).all())
    assert tuple(engine._ip_embeds(engine.loaded, cond, 3, cfg=False).shape) == (3, 1, 64)
    assert engine._ip_embeds(engine.loaded, None, 2, cfg=True).abs().sum() == 0


def test_no_cfg_preset_with_conditioning(tiny_data_dir, gen, base_grid):
    from engine.generate import Engine

    turbo_like = Engine(dataclasses.replace(get_preset("tiny"), guidance_scale=0.0), device="cpu", data_dir=tiny_data_dir)
    try:
        plain = gen.imagine(turbo_like, seed=5, count=2)
        personal = gen.imagine(turbo_like, seed=5, count=2, conditioning=gen.random_vector(64), ip_adapter_scale=1.0)
    finally:
        turbo_like.close()
    assert all(a != b for a, b in zip(gen.pngs(plain), gen.pngs(personal)))
    assert all(a != b for a, b in zip(gen.pngs(plain), gen.pngs(base_grid)))  # guidance 0 really skipped CFG


@pytest.fixture(scope="module")
def sdxl_engine(tiny_data_dir):
    """The tiny SDXL-layout build, loaded like a real SDXL preset (from a folder instead of a hub id)."""
    from engine import models
    from engine.generate import Engine

    eng = Engine(models.tiny_sdxl_preset(tiny_data_dir), device="cpu", data_dir=tiny_data_dir)
    yield eng
    eng.close()


def test_sdxl_layout_no_cfg_and_cfg_with_conditioning(sdxl_engine, gen, tiny_data_dir):
    from engine.generate import Engine

    cond = gen.random_vector(64)
    plain = gen.imagine(sdxl_engine, seed=3, count=2, width=192, height=128)
    personal = gen.imagine(sdxl_engine, seed=3, count=2, width=192, height=128, conditioning=cond, ip_adapter_scale=1.0)
    assert type(sdxl_engine.loaded.pipe).__name__ == "StableDiffusionXLPipeline"
    assert {gen.png_size(p) for p in gen.pngs(plain)} == {(192, 128)}
    assert all(a != b for a, b in zip(gen.pngs(plain), gen.pngs(personal)))

    with_cfg = Engine(dataclasses.replace(sdxl_engine.preset, guidance_scale=4.0), device="cpu", data_dir=tiny_data_dir)
    try:
        a = gen.imagine(with_cfg, seed=3, count=1, negative_prompt="blurry", conditioning=cond, ip_adapter_scale=1.0)
        b = gen.imagine(with_cfg, seed=3, count=1, negative_prompt="blurry")
    finally:
        with_cfg.close()
    assert a.images[0].png != b.images[0].png


def test_rerank_keeps_the_top_candidates(engine, gen):
    direction = gen.random_vector(64, seed=7)
    # Candidates come in the same batches (4 + 2) as a plain grid of 6, so they are the same images.
    grid = gen.imagine(engine, seed=20, count=6)
    kept = gen.imagine(engine, seed=20, count=3, candidates=6, rerank_direction=direction)

    d = np.asarray(direction)
    emb = np.asarray([im.embedding for im in grid.images])
    cos = emb / np.linalg.norm(emb, axis=1, keepdims=True) @ d
    top = np.argsort(-cos)[:3]
    assert [im.seed for im in kept.images] == [20 + int(i) for i in top]
    assert [im.png for im in kept.images] == [grid.images[int(i)].png for i in top]
    scores = [im.score for im in kept.images]
    assert scores == sorted(scores, reverse=True)
    assert np.allclose(scores, cos[top], atol=1e-6)


def test_low_precision_load_keeps_one_dtype(tiny_data_dir, gen):
    """The CUDA dtype path, on the CPU: every shared component stays in bf16 (from_pipe
    would cast them to fp32 unless told), and a personalized job runs."""
    import torch

    from engine.generate import Engine

    low = Engine("tiny", device="cpu", data_dir=tiny_data_dir, dtype="bf16")
    try:
        m = low.load()
        assert m.dtype == torch.bfloat16
        for part in (m.pipe.unet, m.pipe.vae, m.pipe.text_encoder, m.img2img.unet):
            assert {p.dtype for p in part.parameters()} == {torch.bfloat16}
        result = gen.imagine(low, seed=1, count=1, conditioning=gen.random_vector(64), ip_adapter_scale=0.5)
        assert gen.png_size(result.images[0].png) == (128, 128)
    finally:
        low.close()
