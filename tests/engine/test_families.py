"""FLUX and SD 3.5 through every tool: tiny random-weight configurations of each family,
built from configs and loaded through the same from_pretrained / from_single_file calls as
a real preset, run imagine, variation, Vary (Region), upscale, outpaint, --stop and --p
(the taste's style words), on the family's own diffusers pipelines; quantised weights
(torchao int8 and fp8, a GGUF file) load and draw on the CPU; what a family can't do is
refused in one line. A rank pool drawn on FLUX gives a taste that steers SD too."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine import canvas
from engine.jobs import GenerateSpec, Job, JobKind

torch = pytest.importorskip("torch")

FAMILIES = ("flux", "sd3")
PIPELINES = {
    "flux": ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline"),
    "sd3": ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"),
}


@pytest.fixture(scope="session")
def family_engines(tiny_data_dir):
    """One tiny engine per family, loaded once."""
    from engine import models
    from engine.generate import Engine

    engines = {}
    for family in FAMILIES:
        engine = Engine(models.tiny_family_preset(tiny_data_dir, family), device="cpu", data_dir=tiny_data_dir)
        engine.load()
        engines[family] = engine
    yield engines
    for engine in engines.values():
        engine.close()


def run(engine, kind=JobKind.IMAGINE, report=None, **spec):
    spec.setdefault("prompt", "a lighthouse on a cliff")
    spec.setdefault("width", 128)
    spec.setdefault("height", 128)
    spec.setdefault("seed", 5)
    return engine.run(Job(kind=kind, preset=engine.preset.name, generate=GenerateSpec(**spec)), report)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="session")
def grids(family_engines):
    """A plain grid of two images per family (the source for the image tools)."""
    return {family: run(engine, count=2) for family, engine in family_engines.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_imagine_draws_a_grid_on_the_familys_own_pipelines_with_previews(family_engines, family):
    engine = family_engines[family]
    m = engine.loaded
    assert [type(p).__name__ for p in (m.pipe, m.img2img, m.inpaint)] == list(PIPELINES[family])
    assert m.img2img.transformer is m.pipe.transformer and m.inpaint.vae is m.pipe.vae  # from_pipe: shared
    previews = []
    result = run(engine, count=4, seed=9, chaos=40, width=192, height=128,
                 report=lambda percent, preview: previews.append((percent, preview)))
    assert [(im.width, im.height, im.seed) for im in result.images] == [(192, 128, 9 + i) for i in range(4)]
    assert all(len(im.embedding) == m.embedder.dim for im in result.images)
    assert len({im.png for im in result.images}) == 4
    assert previews[-1][0] == 100.0
    with Image.open(io.BytesIO(next(p for _, p in previews if p))) as preview:
        assert preview.format == "JPEG" and preview.width > preview.height  # the grid's shape, decoded


@pytest.mark.parametrize("family", FAMILIES)
def test_variation_region_upscale_and_outpaint_on_each_family(family_engines, grids, family):
    engine = family_engines[family]
    source = grids[family].images[0].png
    strong = run(engine, JobKind.VARIATION, init_image=source, strength=0.75, count=2)
    assert [(im.width, im.height) for im in strong.images] == [(128, 128)] * 2
    assert np.abs(pixels(strong.images[0].png) - pixels(source)).mean() > 1  # redrawn
    # Vary (Region): only the left half is redrawn; the right half is the source's own pixels.
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (0, 0, 64, 128))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    region = run(engine, JobKind.VARIATION, init_image=source, strength=0.8, count=1, mask=buf.getvalue())
    diff = np.abs(pixels(region.images[0].png) - pixels(source)).mean(axis=(0, 2))
    assert diff[:48].mean() > 1 and diff[64 + 3 * canvas.FEATHER :].max() == 0
    up = run(engine, JobKind.UPSCALE, init_image=source, count=1, width=256, height=256)
    assert (up.images[0].width, up.images[0].height) == (256, 256)
    # Zoom out: the source scaled into the middle of a larger canvas, drawn around.
    out = run(engine, JobKind.OUTPAINT, init_image=source, count=2, width=192, height=192, source_box=(32, 32, 128, 128))
    assert [(im.width, im.height) for im in out.images] == [(192, 192)] * 2
    drawn, seam = pixels(out.images[0].png), canvas.OVERLAP + 3 * canvas.FEATHER
    inner = slice(32 + seam, 160 - seam)
    assert np.array_equal(drawn[inner, inner], pixels(source)[seam : 128 - seam, seam : 128 - seam])  # kept
    assert np.abs(drawn[:32] - 127).mean() > 5  # the border was drawn, not left grey


@pytest.mark.parametrize("family", FAMILIES)
def test_p_steers_by_the_tastes_words_and_s_0_is_exactly_plain(family_engines, grids, family):
    engine = family_engines[family]
    plain = grids[family]
    words = run(engine, count=2, taste_words=["watercolor", "soft light"], taste_words_weight=0.5)
    off = run(engine, count=2, taste_words=["watercolor", "soft light"], taste_words_weight=0.0)  # what --s 0 sends
    assert [im.png for im in off.images] == [im.png for im in plain.images]
    assert all(a.png != b.png for a, b in zip(words.images, plain.images, strict=True))
    stronger = run(engine, count=2, taste_words=["watercolor", "soft light"], taste_words_weight=1.5)
    assert stronger.images[0].png != words.images[0].png  # the weight matters
    # Best-of-n by the member's scorer (--q 2): 8 drawn, the 4 best kept, best first.
    direction = np.random.default_rng(0).standard_normal(engine.loaded.embedder.dim)
    best = run(engine, count=4, candidates=8, rerank_direction=list(direction / np.linalg.norm(direction)))
    scores = [im.score for im in best.images]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_decodes_the_flow_estimate_early_and_tile_and_an_adapter_vector_are_refused(family_engines, grids, family):
    from engine.generate import JobError

    engine = family_engines[family]
    early = run(engine, count=2, stop=50, seed=5)
    assert early.images[0].png != grids[family].images[0].png
    with pytest.raises(JobError, match="can't draw seamless tiles"):
        run(engine, tile=True)
    with pytest.raises(JobError, match="runs without an IP-Adapter: personalization is unavailable"):
        run(engine, conditioning=[0.1] * engine.loaded.embedder.dim, ip_adapter_scale=0.5)


@pytest.mark.parametrize(("family", "quantize", "weight_type"), [("flux", "int8", "Int8Tensor"), ("sd3", "fp8", "Float8Tensor")])
def test_quantised_weights_load_through_diffusers_and_draw(tiny_data_dir, family, quantize, weight_type):
    """torchao weight-only quantisation through diffusers' PipelineQuantizationConfig: the
    transformer and the T5 text encoder hold quantised weights, and every tool still runs."""
    from engine import models
    from engine.generate import Engine

    preset = models.tiny_family_preset(tiny_data_dir, family, quantize=quantize)
    engine = Engine(preset, device="cpu", data_dir=tiny_data_dir, dtype="bf16")
    m = engine.load()
    t5 = getattr(m.pipe, m.family.quantized_components[1])
    for module in (m.pipe.transformer, t5):
        linear = next(mod for mod in module.modules() if isinstance(mod, torch.nn.Linear))
        assert type(linear.weight).__name__ == weight_type
    result = run(engine, count=2)
    variation = run(engine, JobKind.VARIATION, init_image=result.images[0].png, strength=0.6, count=1)
    assert len(result.images) == 2 and variation.images[0].width == 128
    engine.close()


def test_nf4_is_refused_on_a_machine_without_cuda(tiny_data_dir):
    from engine import models

    preset = models.tiny_family_preset(tiny_data_dir, "flux", quantize="nf4")
    with pytest.raises(models.PresetLoadError, match=r"quantize = \"nf4\" needs bitsandbytes on a CUDA GPU.*runs on cpu"):
        models.load(preset, "cpu", tiny_data_dir)
    assert models.fit_problem(models.tiny_family_preset(tiny_data_dir, "flux", quantize="int8"), torch.device("cpu")) is None


def _gguf_q8(state: dict[str, torch.Tensor], path):
    """The transformer's weights as a GGUF file: 2-D weights in Q8_0, the rest in F32."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="flux")
    for name, tensor in state.items():
        array = tensor.float().numpy()
        if array.ndim >= 2 and array.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_transformer_file_safetensors_or_gguf_with_a_lora_loads_as_an_owner_preset(tiny_data_dir, tmp_path):
    """An owner's FLUX fine-tune as one transformer file (its other parts from `config`), a GGUF
    file of it (quantised Q8_0, dequantised on the fly), and a LoRA fused into it: through
    presets.toml and engine.models.load."""
    import textwrap

    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import save_file

    from engine import models
    from engine.presets import get_preset, load_presets

    root = models.build_tiny(tiny_data_dir, arch="flux")
    transformer = FluxTransformer2DModel.from_pretrained(root, subfolder="transformer")
    torch.manual_seed(11)
    with torch.no_grad():
        for p in transformer.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    save_file(state, str(tmp_path / "finetune.safetensors"))
    _gguf_q8(state, tmp_path / "finetune-Q8_0.gguf")
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"]))
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    FluxPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                   weight_name="style-lora.safetensors")
    (tmp_path / "presets.toml").write_text(textwrap.dedent(f"""
        [presets.finetune]
        pipeline = "flux"
        checkpoint = "finetune.safetensors"
        config = "{root}"
        licence = "Apache-2.0"
        loras = [{{ path = "style-lora.safetensors", weight = 0.8 }}]

        [presets.finetune-gguf]
        pipeline = "flux"
        checkpoint = "finetune-Q8_0.gguf"
        config = "{root}"
        licence = "Apache-2.0"
    """))
    try:
        load_presets(file=tmp_path / "presets.toml")
        tiny = models.tiny_family_preset(tiny_data_dir, "flux")

        def as_tested(name):  # the tiny OpenCLIP instead of ViT-H (no download); the rest as declared
            import dataclasses

            return dataclasses.replace(get_preset(name), openclip_model=tiny.openclip_model,
                                       openclip_pretrained=tiny.openclip_pretrained, embed_dim=tiny.embed_dim)

        fused = models.load(as_tested("finetune"), "cpu", tiny_data_dir)
        q = fused.pipe.transformer.transformer_blocks[0].attn.to_q.weight
        assert not torch.equal(q, state["transformer_blocks.0.attn.to_q.weight"])  # the LoRA moved it ...
        assert not any("lora" in name for name, _ in fused.pipe.transformer.named_parameters())  # ... fused
        plain_k = fused.pipe.transformer.single_transformer_blocks[0].proj_out.weight
        assert torch.equal(plain_k, state["single_transformer_blocks.0.proj_out.weight"])  # the file's own weights
        gguf = models.load(as_tested("finetune-gguf"), "cpu", tiny_data_dir)
        linear = gguf.pipe.transformer.transformer_blocks[0].attn.to_q
        assert type(linear.weight).__name__ == "GGUFParameter"
        checked = {item.name: item for item in models.check(get_preset("finetune-gguf"), tiny_data_dir, "cpu")}
        assert checked["checkpoint"].present and checked["quantize"].present and checked["transformer"].present
        from engine.generate import Engine

        engine = Engine(gguf.preset, device="cpu", data_dir=tiny_data_dir)
        engine.loaded = gguf
        assert len(run(engine, count=1).images) == 1
    finally:
        load_presets(None)


def test_a_pool_drawn_on_flux_gives_a_taste_that_steers_sd_and_flux(family_engines, engine, tiny_data_dir):
    """Rank pool per family: the pool job draws on FLUX and embeds in the taste space; a taste
    fitted on its basis steers the SD preset through its IP-Adapter and FLUX through style words."""
    from engine import profiles
    from engine import taste as tm
    from engine.jobs import EmbedSpec, PoolSpec

    flux = family_engines["flux"]
    styles = ["watercolor", "neon palette", "pencil sketch", "oil painting"]
    embeddings = []
    for i, prompt in enumerate(["a fox", "a tower", "a boat"]):
        spec = PoolSpec(prompt=prompt, styles=styles, seed=i, width=128, height=128)
        embeddings += [im.embedding for im in flux.run(Job(kind=JobKind.POOL, preset=flux.preset.name, pool=spec)).images]
    basis = tm.Basis.build(np.array(embeddings), k=6)
    w = np.zeros(basis.k)
    w[0] = 2.0
    # SD: the taste as an IP-Adapter conditioning vector (the same embedding space).
    cond = profiles.conditioning(w, basis, 500, "tiny")
    steered = engine.run(Job(kind=JobKind.IMAGINE, preset="tiny", generate=GenerateSpec(
        prompt="a lighthouse", width=128, height=128, seed=5, count=2, conditioning=cond.vector,
        ip_adapter_scale=cond.scale)))
    plain = engine.run(Job(kind=JobKind.IMAGINE, preset="tiny", generate=GenerateSpec(
        prompt="a lighthouse", width=128, height=128, seed=5, count=2)))
    assert steered.images[0].png != plain.images[0].png
    # FLUX: the taste's nearest style words, ranked by the same profile.
    texts = flux.run(Job(kind=JobKind.EMBED, preset=flux.preset.name, embed=EmbedSpec(texts=styles))).text_embeddings
    toward, _ = profiles.explain(w, basis, styles, np.array(texts), n=2)
    assert len(toward) == 2 and set(toward) <= set(styles)
    words = run(flux, count=2, taste_words=toward, taste_words_weight=profiles.calibration_for("tiny").scale(500))
    assert words.images[0].png != run(flux, count=2).images[0].png
