"""GPU check: the real job paths on full-size SDXL, FLUX.1 and SD 3.5 architectures, random weights, nothing downloaded.

    .venv/bin/python bench/gpu_check.py            # a CUDA GPU: every family at 1024 px, one prepared run
    .venv/bin/python bench/gpu_check.py --family flux   # one family
    .venv/bin/python bench/gpu_check.py --smoke    # the CPU: tiny sizes through the same code (the tests run this)

1. Build each family's pipeline from its published architecture with random
   weights and save it as a diffusers folder, so the worker loads it through
   the very calls it uses for a real preset (from_pretrained, load_ip_adapter,
   open_clip, diffusers' quantisation):
   - SDXL: UNet 2.6 B, the SDXL VAE, CLIP ViT-L and OpenCLIP bigG, a plain
     ViT-H IP-Adapter; Lightning's sampling (Euler, trailing, 4 steps, no CFG);
   - FLUX.1 [schnell]: the 12 B transformer (19 double, 38 single blocks),
     CLIP ViT-L and T5-XXL, the 16-channel VAE; 4 steps, no guidance;
   - SD 3.5 Large: the 8 B MMDiT (38 blocks), CLIP ViT-L, OpenCLIP bigG and
     T5-XXL; 28 steps with guidance 4.5 (its model card's sampling).
   Each with an OpenCLIP ViT-H-14 (the taste space), random too.
2. Through engine.generate.Engine, as a worker runs them: imagine (a 2x2
   grid), variation (4), upscale x2 (1), zoom out 1.5x (4), imagine with --p
   at s = 0, 100 and 1000 (the IP-Adapter on SDXL, the taste's style words on
   FLUX and SD 3.5), and imagine with a preview at every step against none.
3. SDXL again with the UNet compiled (torch.compile); FLUX and SD 3.5 again
   with the transformer and T5 in int8 (torchao, through the preset's
   `quantize`), the form that fits a 24 GB card.
4. Animate, after SDXL's eager pass: the full Wan 2.2 I2V A14B architecture (a 14 B transformer,
   saved once and linked as both the high- and the low-noise one, UMT5-XXL, the Wan VAE) with
   random weights, loaded by the worker's own code with what a 24 GB card needs (fp8 weight
   storage, model CPU offload), and one clip of 81 frames at 480p timed through Engine.run
   (--video-steps steps, default 4: seconds per step scale to the preset's 40). --no-video skips
   it, --video-only runs only it.

It prints seconds per job (the median of --repeat runs after a warm-up), the
peak GPU memory of each, and side-by-side ratios: what previews cost, what
personalization costs, what compile or int8 changes. Random weights make
noise images: this measures speed and memory and proves the CUDA path runs,
not quality. The README's sizing table takes its peak memory figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine import canvas  # noqa: E402
from engine import generate as generate_module  # noqa: E402
from engine import models, video  # noqa: E402
from engine.generate import Engine  # noqa: E402
from engine.jobs import GenerateSpec, Job, JobKind, VideoSpec  # noqa: E402
from engine.presets import Preset, VideoModel  # noqa: E402
from engine.profiles import Calibration  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """The SDXL architecture to build. `FULL` is SDXL base 1.0's published configs."""

    name: str
    size: int  # pixels per side
    unet: dict
    vae: dict
    text: tuple[dict, dict]  # CLIP ViT-L, OpenCLIP bigG (as transformers CLIPTextConfig kwargs)
    openclip: str  # an open_clip architecture name
    embed_dim: int
    family: str = "sdxl"


FULL = Sizes(
    name="SDXL (2.6 B UNet) + ViT-H IP-Adapter",
    size=1024,
    unet=dict(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, norm_num_groups=32,
    ),
    vae=dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
        layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=1024,
        scaling_factor=0.13025, force_upcast=True,
    ),
    text=(
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
             projection_dim=768, hidden_act="quick_gelu"),
        dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
             projection_dim=1280, hidden_act="gelu"),
    ),
    openclip="ViT-H-14",
    embed_dim=1024,
)

SMOKE = Sizes(
    name="tiny SDXL layout (smoke)",
    size=128,
    unet=dict(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1), attention_head_dim=(2, 4), cross_attention_dim=64,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=16,
    ),
    vae=dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 16, 32, 32),
        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=128,
    ),
    text=(
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
    ),
    openclip=models.TINY_OPENCLIP_MODEL,
    embed_dim=64,
)


# Wan 2.2 I2V A14B's published configs (one of its two identical transformers; the VAE is Wan 2.1's,
# AutoencoderKLWan's defaults) at 480p, and the tiny layout for --smoke.
VIDEO_FULL = (
    video.VideoSizes(
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                         out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                         qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
        text=dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                  relative_attention_num_buckets=32, feed_forward_proj="gated-gelu"),
        vae=dict(),
    ),
    VideoModel(repo="", base_size=640, frames=81, fps=16, offload="model", fp8=True),
)
VIDEO_SMOKE = (video.TINY_SIZES, VideoModel(repo="", base_size=64, frames=9, fps=8, offload="none", fp8=False))


# FLUX.1 and SD 3.5 Large as published (their diffusers configs), and the text encoders they load.
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768, hidden_act="quick_gelu")
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              projection_dim=1280, hidden_act="gelu")
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
VAE16 = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
             up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
             latent_channels=16, norm_num_groups=32, sample_size=1024, use_quant_conv=False, use_post_quant_conv=False)
FLUX_SCHNELL = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                    guidance_embeds=False, axes_dims_rope=(16, 56, 56))
SD35_LARGE = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                  num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                  pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192, qk_norm="rms_norm")


@dataclass(frozen=True)
class TransformerFamily:
    """FLUX or SD 3.5 at full size, or (smoke) the tiny configuration engine/models.py builds."""

    name: str
    family: str  # "flux" | "sd3"
    size: int
    steps: int
    guidance: float
    smoke: bool
    openclip: str = "ViT-H-14"
    embed_dim: int = 1024


FAMILIES = {
    "sdxl": FULL,
    "flux": TransformerFamily("FLUX.1 [schnell] (12 B transformer, T5-XXL)", "flux", 1024, 4, 0.0, smoke=False),
    "sd3": TransformerFamily("SD 3.5 Large (8 B MMDiT, T5-XXL)", "sd3", 1024, 28, 4.5, smoke=False),
}
SMOKE_FAMILIES = {
    "sdxl": SMOKE,
    "flux": TransformerFamily("tiny FLUX layout (smoke)", "flux", 128, 2, 0.0, smoke=True,
                              openclip=models.TINY_OPENCLIP_MODEL, embed_dim=64),
    "sd3": TransformerFamily("tiny SD 3.5 layout (smoke)", "sd3", 128, 2, 4.5, smoke=True,
                             openclip=models.TINY_OPENCLIP_MODEL, embed_dim=64),
}


def _transformer_pipeline(spec: TransformerFamily, device: torch.device):
    """The family's pipeline with random weights: full size on the GPU, or the tiny build's modules."""
    if spec.smoke:
        return models.TINY_ARCHS[spec.family]()
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                           SD3Transformer2DModel, StableDiffusion3Pipeline)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    ids = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    tokenizer = models._clip_tokenizer()
    torch.manual_seed(0)
    with device:  # initialise on the GPU: billions of parameters initialise in seconds there
        t5 = T5EncoderModel(T5Config(**T5_XXL))
        if spec.family == "flux":
            vae = AutoencoderKL(**VAE16, scaling_factor=0.3611, shift_factor=0.1159)
            return FluxPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae,
                text_encoder=CLIPTextModel(CLIPTextConfig(**ids, **CLIP_L)), tokenizer=tokenizer,
                text_encoder_2=t5, tokenizer_2=models._t5_tokenizer(),
                transformer=FluxTransformer2DModel(**FLUX_SCHNELL),
            )
        vae = AutoencoderKL(**VAE16, scaling_factor=1.5305, shift_factor=0.0609)
        return StableDiffusion3Pipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
            text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**ids, **CLIP_L)), tokenizer=tokenizer,
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**ids, **CLIP_G)), tokenizer_2=tokenizer,
            text_encoder_3=t5, tokenizer_3=models._t5_tokenizer(), transformer=SD3Transformer2DModel(**SD35_LARGE),
        )


def build_transformer_family(spec: TransformerFamily, root: Path, device: torch.device, dtype: torch.dtype) -> Preset:
    """FLUX or SD 3.5 with random weights, saved where a preset of that family can load it."""
    pipe = _transformer_pipeline(spec, device)
    pipe.to(dtype=dtype).save_pretrained(root, safe_serialization=True)
    del pipe
    _save_openclip(spec.openclip, root, device, dtype)
    return Preset(
        name=f"gpu-check-{spec.family}", description=spec.name, kind=spec.family, base_repo=str(root), variant=None,
        openclip_model=spec.openclip, openclip_pretrained=str(root / "openclip.safetensors"),
        embed_dim=spec.embed_dim, base_size=spec.size, steps=spec.steps, guidance_scale=spec.guidance,
        upscale_strength=0.3, licence="random weights",
    )


def _save_openclip(name: str, root: Path, device: torch.device, dtype: torch.dtype) -> None:
    import open_clip
    from safetensors.torch import save_file

    if name == models.TINY_OPENCLIP_MODEL:
        config = root / f"{models.TINY_OPENCLIP_MODEL}.json"
        config.write_text(json.dumps(models._tiny_openclip_config()))
        models.register_tiny_openclip(config)
    clip = open_clip.create_model(name, pretrained=None, device=device)
    save_file({k: v.to(dtype).contiguous() for k, v in clip.state_dict().items()}, str(root / "openclip.safetensors"))


# -- 1. build ------------------------------------------------------------------------------


def build(sizes: Sizes, root: Path, device: torch.device, dtype: torch.dtype) -> Preset:
    """Random-weight modules from the configs, saved where a preset can load them."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    with device:  # initialise on the GPU: a 2.6 B UNet initialises in seconds there
        unet = UNet2DConditionModel(**sizes.unet)
        vae = AutoencoderKL(**sizes.vae)
        ids = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
        text_encoder = CLIPTextModel(CLIPTextConfig(**ids, **sizes.text[0]))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**ids, **sizes.text[1]))
    tokenizer = models._clip_tokenizer()
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        timestep_spacing="trailing", steps_offset=1,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler, image_encoder=None, feature_extractor=None,
    )
    pipe.to(dtype=dtype).save_pretrained(root, safe_serialization=True)
    (root / "ip_adapter").mkdir()
    ip = models.random_ip_adapter_state_dict(unet, seed=3, embed_dim=sizes.embed_dim)
    save_file({k: v.to(dtype).contiguous() for k, v in ip.items()}, str(root / "ip_adapter" / "ip_adapter.safetensors"))
    del pipe, unet, vae, text_encoder, text_encoder_2
    _save_openclip(sizes.openclip, root, device, dtype)
    return Preset(
        name="gpu-check", description=sizes.name, kind="sdxl", base_repo=str(root), variant=None,
        ip_adapter_repo=str(root), ip_adapter_subfolder="ip_adapter", ip_adapter_weight="ip_adapter.safetensors",
        ip_adapter_encoder=sizes.openclip, openclip_model=sizes.openclip,
        openclip_pretrained=str(root / "openclip.safetensors"), embed_dim=sizes.embed_dim, base_size=sizes.size,
        steps=4, guidance_scale=0.0, upscale_strength=0.3,
    )


# -- 2. jobs -------------------------------------------------------------------------------


@dataclass
class Row:
    job: str
    seconds: dict[str, float]  # mode -> median seconds
    peak_gib: dict[str, float]


class Check:
    def __init__(self, engine: Engine, preset: Preset, repeat: int):
        self.engine, self.preset, self.repeat = engine, preset, repeat
        self.device = engine.loaded.device
        self.size = preset.base_size
        g = torch.Generator().manual_seed(7)
        self.taste = torch.randn(preset.embed_dim, generator=g).tolist()  # a conditioning vector, as --p sends
        self.source = b""  # a grid image: the variation, upscale and zoom source

    def spec(self, s: int | None = None, **fields) -> GenerateSpec:
        personal = {}
        if s:  # s = 0: no conditioning at all, exactly as the bot sends it
            scale = Calibration(self.preset.taste_tau_max, self.preset.taste_lambda_max).scale(s)
            if self.preset.steering == "adapter":
                personal = dict(conditioning=self.taste, ip_adapter_scale=scale)
            else:  # FLUX, SD 3.5: the taste's style words, as profiles.taste_words sends them
                personal = dict(taste_words=["watercolor", "soft light", "muted palette"], taste_words_weight=scale)
        fields = {"width": self.size, "height": self.size, **fields}
        return GenerateSpec(prompt="a lighthouse on a cliff at dusk, oil painting", seed=1, stylize=s or 100,
                            **personal, **fields)

    def jobs(self) -> dict[str, Callable[[], Job]]:
        def job(kind: JobKind, spec: GenerateSpec) -> Job:
            return Job(kind=kind, user_id=0, preset=self.preset.name, generate=spec)

        return {
            "imagine 2x2": lambda: job(JobKind.IMAGINE, self.spec()),
            "imagine 2x2 --p s=0": lambda: job(JobKind.IMAGINE, self.spec(s=0)),
            "imagine 2x2 --p s=100": lambda: job(JobKind.IMAGINE, self.spec(s=100)),
            "imagine 2x2 --p s=1000": lambda: job(JobKind.IMAGINE, self.spec(s=1000)),
            "variation x4 (strong)": lambda: job(JobKind.VARIATION, self.spec(init_image=self.source, strength=0.75)),
            "upscale x2": lambda: job(JobKind.UPSCALE, self.spec(init_image=self.source, count=1)),
            "zoom out 1.5x (4)": lambda: job(JobKind.OUTPAINT, self.zoom()),
        }

    def zoom(self) -> GenerateSpec:
        out = canvas.zoom(self.size, self.size, 1.5, self.size)
        return self.spec(init_image=self.source, width=out.width, height=out.height, source_box=out.box)

    def time(self, make: Callable[[], Job], previews: bool = False) -> tuple[float, float]:
        """Median seconds of `repeat` runs after a warm-up, and the peak GPU memory (GiB)."""
        every = 0.0 if previews else float("inf")
        with _patched(generate_module, "PREVIEW_EVERY_S", every):
            self.engine.run(make())  # warm-up (and compile, the first time)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            runs = []
            for _ in range(self.repeat):
                t0 = time.perf_counter()
                result = self.engine.run(make())  # returns PNGs: the GPU work is done
                runs.append(time.perf_counter() - t0)
        if not self.source and result.images:
            self.source = result.images[0].png
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else float("nan")
        return statistics.median(runs), peak


def video_step(engine: Engine, preset: Preset, smoke: bool, steps: int, repeat: int, root: Path,
               device: torch.device, dtype: torch.dtype, grid_seconds: float | None) -> None:
    """4. One clip on the full Wan 2.2 architecture, as a worker runs it: seconds, per step, peak memory."""
    sizes, model = VIDEO_SMOKE if smoke else VIDEO_FULL
    t0 = time.perf_counter()
    video.save_random(root, sizes, device=device, dtype=dtype, one_transformer=not smoke)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    print(f"  video model built in {time.perf_counter() - t0:.1f} s", flush=True)
    engine.preset = preset = Preset(**{**preset.__dict__, "video": VideoModel(
        **{**model.__dict__, "repo": str(root), "steps": steps})})
    engine.video = None
    start = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (preset.video.base_size * 3 // 2, preset.video.base_size), "teal").save(start, "PNG")

    def clip() -> Job:
        return Job(kind=JobKind.VIDEO, preset=preset.name, video=VideoSpec(
            prompt="waves rolling onto a beach", start_image=start.getvalue(), clips=1))

    t0 = time.perf_counter()
    engine.run(clip())  # loads the video model (fp8 storage, offload) and warms up
    print(f"  video loaded and warmed up in {time.perf_counter() - t0:.1f} s", flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = engine.run(clip())
        runs.append(time.perf_counter() - t0)
    seconds = statistics.median(runs)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    [made] = result.clips
    print(f"  video clip {made.width}x{made.height}, {made.frames} frames, {steps} steps: {seconds:.2f} s "
          f"({seconds / steps:.2f} s a step), peak {_gib(peak)} GiB, MP4 {len(made.mp4) / 2**20:.1f} MiB", flush=True)
    if grid_seconds:
        print(f"video: one clip / one 2x2 grid {seconds / grid_seconds:.1f}x · at Wan 2.2's 40"
              f" steps about {seconds / steps * 40:.0f} s a clip", flush=True)


@contextlib.contextmanager
def _patched(module, name: str, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def run_mode(check: Check, mode: str, rows: dict[str, Row]) -> None:
    for name, make in check.jobs().items():
        seconds, peak = check.time(make)
        row = rows.setdefault(name, Row(name, {}, {}))
        row.seconds[mode], row.peak_gib[mode] = seconds, peak
        print(f"  {mode:<8} {name:<24} {seconds:7.2f} s   peak {_gib(peak)} GiB", flush=True)
    seconds, peak = check.time(check.jobs()["imagine 2x2"], previews=True)
    row = rows.setdefault("imagine 2x2, preview every step", Row("imagine 2x2, preview every step", {}, {}))
    row.seconds[mode], row.peak_gib[mode] = seconds, peak
    print(f"  {mode:<8} {row.job:<24} {seconds:7.2f} s   peak {_gib(peak)} GiB", flush=True)


def _gib(value: float) -> str:
    return f"{value:6.1f}" if value == value else "     -"  # nan: not on a GPU


def report(rows: dict[str, Row], modes: list[str]) -> None:
    print()
    print(f"{'job':<34}" + "".join(f"{m + ' s':>12}{m + ' GiB':>14}" for m in modes))
    for row in rows.values():
        print(f"{row.job:<34}" + "".join(f"{row.seconds[m]:12.2f}{_gib(row.peak_gib[m]):>14}" for m in modes))
    print()
    for m in modes:
        base = rows["imagine 2x2"].seconds[m]
        ratios = [
            ("previews every step / none", rows["imagine 2x2, preview every step"].seconds[m] / base),
            ("--p s=100 / s=0", rows["imagine 2x2 --p s=100"].seconds[m] / rows["imagine 2x2 --p s=0"].seconds[m]),
            ("--p s=1000 / s=0", rows["imagine 2x2 --p s=1000"].seconds[m] / rows["imagine 2x2 --p s=0"].seconds[m]),
        ]
        print(f"{m}: " + " · ".join(f"{label} {value:.2f}x" for label, value in ratios))
    if len(modes) == 2:
        first, second = modes
        ratios = [row.seconds[first] / row.seconds[second] for row in rows.values()]
        peaks = [row.peak_gib[second] / row.peak_gib[first] for row in rows.values() if row.peak_gib[first] > 0]
        print(f"{first} / {second} seconds per job, median {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
              + (f"; {second} / {first} peak memory, median {statistics.median(peaks):.2f}x" if peaks else ""))


def check_family(name: str, sizes, device: torch.device, dtype_name: str, repeat: int, compile_: bool,
                 video_steps: int | None = None, images: bool = True) -> None:
    """Build one family, load it as a worker does, time every job; then SDXL compiled, or the
    transformer families with `quantize = "int8"`. `video_steps`: Animate's step after SDXL's
    eager pass; `images=False`: that step alone."""
    dtype = models.resolve_dtype(device, dtype_name)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\ngpu_check {name}: {sizes.name}, random weights, {sizes.size} px, {dtype_name} on {gpu}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"tastemaker-gpu-check-{name}-") as tmp:
        t0 = time.perf_counter()
        with _default_dtype(dtype if device.type == "cuda" else torch.float32):
            if name == "sdxl":
                preset = build(sizes, Path(tmp) / "model", device, dtype)
            else:
                preset = build_transformer_family(sizes, Path(tmp) / "model", device, dtype)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)
        rows: dict[str, Row] = {}
        second = "compiled" if name == "sdxl" else "int8"
        modes = ["eager" if name == "sdxl" else dtype_name]
        for mode in [modes[0], second]:
            if mode == "compiled" and (device.type != "cuda" or not compile_):
                continue
            engine = Engine(dataclasses.replace(preset, quantize="int8") if mode == "int8" else preset,
                            device=str(device), data_dir=tmp, dtype=dtype_name)
            engine.load()
            print(f"  {mode}: loaded in {engine.loaded.load_seconds:.1f} s (from_pretrained, open_clip"
                  f"{', load_ip_adapter' if engine.loaded.ip_adapter else ''}"
                  f"{', torchao int8' if mode == 'int8' else ''})", flush=True)
            if mode == "compiled":
                engine.loaded.family.denoiser(engine.loaded.pipe).compile()  # what --compile does at load, in place
            if mode != modes[0]:
                modes.append(mode)
            if images:
                run_mode(Check(engine, engine.preset, repeat), mode, rows)
            if video_steps and mode == "eager":
                grid = rows["imagine 2x2"].seconds[mode] if rows else None
                video_step(engine, engine.preset, sizes is SMOKE, video_steps, repeat, Path(tmp) / "video", device,
                           dtype, grid)
            if not images:
                break
            engine.close()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if rows:
            report(rows, modes)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Build the big modules in the run's dtype: a 12 B transformer in fp32 is 48 GB."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test suite runs this)")
    parser.add_argument("--family", choices=["all", *FAMILIES], default="all", help="which families (default all)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per job (default 3; smoke 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile pass")
    parser.add_argument("--no-video", action="store_true", help="skip the Animate step")
    parser.add_argument("--video-only", action="store_true", help="only the Animate step (after SDXL loads)")
    parser.add_argument("--video-steps", type=int, default=None, help="denoising steps of the timed clip (default 4; smoke 2)")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU; --smoke runs the same code at tiny sizes on the CPU.", file=sys.stderr)
        return 2
    dtype_name = "fp32" if args.smoke else "bf16"
    repeat = args.repeat or (1 if args.smoke else 3)
    started = time.perf_counter()
    families = SMOKE_FAMILIES if args.smoke else FAMILIES
    video_steps = None if args.no_video else args.video_steps or (2 if args.smoke else 4)
    chosen = ["sdxl"] if args.video_only else list(families) if args.family == "all" else [args.family]
    for name in chosen:
        check_family(name, families[name], device, dtype_name, repeat, compile_=not args.no_compile,
                     video_steps=video_steps if name == "sdxl" else None, images=not args.video_only)
    print(f"\ngpu_check done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
