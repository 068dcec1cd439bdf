"""Animate: image-to-video clips (the `video` job kind), on a preset's `video` model.

The model is a diffusers `WanImageToVideoPipeline` (Wan 2.2 I2V A14B by default, Apache-2.0): it takes
a start frame and, for Loop and `--end`, a last frame. It loads on the first video job and
stays beside the image preset (CPU offload on CUDA keeps it off the GPU between steps). The `tiny`
preset's video model is the same pipeline classes at tiny sizes with random seeded weights, built
once under `<data_dir>/models/tiny-video/` and loaded through the same `from_pretrained`.

A job, in numbered steps (`VideoRunner.run`):
1. The start frame: the member's image, a clip's last frame (Extend), or for a text prompt one
   image drawn first by the image preset with the member's taste (`--p`/`--s` steer it there:
   Wan 2.2 takes no image embedding at all, only the frames' latents, so a taste vector has no
   other way in). The end frame: `--end`'s image, or the start frame (Loop).
2. Each clip with its own seed (seed + i): the motion prompt (with `--motion`'s words unless
   `--raw`), `frames` frames (an Extend: `extend_frames`, appended to the clip's own frames).
3. The content filter's sampled frames (first, middle, last, and one every second) scored by
   open_nsfw; a clip's score is the highest (engine/safety.py policy applies in the bot).
4. Its first frame embedded by OpenCLIP (galleries, likes and taste read it), and the clip
   encoded as an H.264 MP4 (engine/mp4.py) at a quality bitrate; the worker then fits what
   Discord gets to the upload limit (engine/posting.py fit_clips).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine import mp4, safety
from engine.images import encode_png
from engine.models import _DTYPE_KW, _LOADING, CheckItem, _check_files, _t5_tokenizer, build_in_place, is_built
from engine.jobs import ClipOut, Job, JobCancelled, JobError, JobResult, VideoSpec
from engine.presets import TINY_VIDEO, Preset, VideoModel

log = logging.getLogger(__name__)

TINY_VIDEO_BUILD = 2
MASTER_BITS_PER_PIXEL = 0.25  # the kept clip's bitrate per pixel and frame: near-transparent H.264 (Baseline)
MIN_MASTER_BITRATE = 300_000
PREVIEW_EVERY_S = 0.7


def tiny_video_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "models" / TINY_VIDEO


@dataclass(frozen=True)
class VideoSizes:
    """A Wan 2.2 image-to-video architecture to build with random weights: the tiny test model, or
    (bench/gpu_check.py) the full A14B one."""

    transformer: dict  # WanTransformer3DModel kwargs
    text: dict  # UMT5Config kwargs
    vae: dict  # AutoencoderKLWan kwargs


TINY_SIZES = VideoSizes(
    transformer=dict(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ),
    text=dict(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8),
    vae=dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
)


def save_random(root: Path, sizes: VideoSizes, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                seed: int = 7, one_transformer: bool = False) -> Path:
    """A WanImageToVideoPipeline in Wan 2.2 I2V's layout (a high-noise and a low-noise transformer, the
    Wan VAE, UMT5, no CLIP image input) with random seeded weights, saved as a diffusers folder.
    `one_transformer`: transformer_2 is a link to the first (a full-size build that fits a disk)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    default = torch.get_default_dtype()
    try:  # built in `dtype` where it goes: a full-size one never exists in fp32 on the GPU
        torch.set_default_dtype(dtype)
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(seed)
            transformers = [WanTransformer3DModel(**sizes.transformer) for _ in range(1 if one_transformer else 2)]
            vae = AutoencoderKLWan(**sizes.vae)
            text_encoder = UMT5EncoderModel(UMT5Config(**sizes.text, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    finally:
        torch.set_default_dtype(default)
    pipe = WanImageToVideoPipeline(
        tokenizer=_t5_tokenizer(), text_encoder=text_encoder, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformers[0], transformer_2=transformers[-1], boundary_ratio=0.875,
    )
    if one_transformer:
        pipe.transformer_2 = None  # saved once: the link below stands for it
    pipe.save_pretrained(root, safe_serialization=True)
    if one_transformer:
        (root / "transformer_2").symlink_to("transformer", target_is_directory=True)
        index = json.loads((root / "model_index.json").read_text())
        index["transformer_2"] = ["diffusers", "WanTransformer3DModel"]
        (root / "model_index.json").write_text(json.dumps(index, indent=2))
    return root


def build_tiny_video(data_dir: str | os.PathLike) -> Path:
    """The tiny preset's video model (TINY_SIZES), built once under <data_dir>/models/tiny-video/."""
    with _LOADING:
        return build_in_place(tiny_video_dir(data_dir), TINY_VIDEO_BUILD, lambda work: save_random(work, TINY_SIZES))


def source(model: VideoModel, data_dir: str | os.PathLike) -> str:
    """Where a video model's files are: the tiny build's folder (built first), else its hub id or folder."""
    return str(build_tiny_video(data_dir)) if model.repo == TINY_VIDEO else model.repo


def load(model: VideoModel, device: torch.device, dtype: torch.dtype, data_dir: str | os.PathLike):
    """The pipeline, placed per the model's offload and fp8 settings (on CUDA; plain on the CPU)."""
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline

    t0 = time.perf_counter()
    repo = source(model, data_dir)
    with _LOADING:
        # Wan's VAE runs in fp32 (its model card); the rest in the worker's dtype.
        vae = AutoencoderKLWan.from_pretrained(repo, subfolder="vae", **{_DTYPE_KW: torch.float32})
        pipe = WanImageToVideoPipeline.from_pretrained(repo, vae=vae, **{_DTYPE_KW: dtype})
    if device.type == "cuda":
        if model.fp8:
            for transformer in (pipe.transformer, pipe.transformer_2):
                if transformer is not None:
                    transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        if model.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif model.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded video model %s on %s in %.1f s", model.repo, device, time.perf_counter() - t0)
    return pipe


SIDE_MULTIPLE = 16  # Wan's VAE (8) times its patch (2)


def clip_size(width: int, height: int, base: int) -> tuple[int, int]:
    """A clip's size for a start frame of this shape: about base² pixels, the frame's aspect ratio,
    sides multiples of 16 (848x480 for 16:9 at the default 640)."""
    ratio = width / height
    w = max(SIDE_MULTIPLE, round(base * math.sqrt(ratio) / SIDE_MULTIPLE) * SIDE_MULTIPLE)
    h = max(SIDE_MULTIPLE, round(base / math.sqrt(ratio) / SIDE_MULTIPLE) * SIDE_MULTIPLE)
    return w, h


def sampled_frames(count: int, fps: float) -> list[int]:
    """The frames the content filter scores: the first, the middle, the last and one every second."""
    every = max(1, round(fps))
    return sorted({0, count // 2, count - 1, *range(0, count, every)})


def master_bitrate(width: int, height: int, fps: float) -> int:
    return max(MIN_MASTER_BITRATE, round(width * height * fps * MASTER_BITS_PER_PIXEL))


def motion_prompt(spec: VideoSpec, model: VideoModel) -> str:
    words = "" if spec.raw else (model.motion_high if spec.motion == "high" else model.motion_low)
    return ", ".join(part for part in (spec.prompt.strip(), words) if part)


class _Progress:
    """callback_on_step_end over a job's clips: percent and a preview of the middle frame."""

    def __init__(self, report: Callable[[float, bytes | None], None], should_stop: Callable[[], bool], clips: int,
                 first: bytes | None):
        self.report, self.should_stop, self.clips = report, should_stop, clips
        self.clip, self.last_preview = 0, -math.inf
        self.first = first  # the start frame, shown until a step has something of its own

    def __call__(self, pipe, step: int, timestep, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.should_stop():
            pipe._interrupt = True
            raise JobCancelled()
        total = max(1, int(getattr(pipe, "num_timesteps", 1) or 1))
        percent = round(100.0 * (self.clip + (step + 1) / total) / self.clips, 1)
        preview = None
        if time.monotonic() - self.last_preview >= PREVIEW_EVERY_S:
            preview = latent_preview(kwargs["latents"]) if "latents" in kwargs else self.first
            self.last_preview = time.monotonic()
        self.report(min(percent, 99.0), preview)
        return kwargs


# A linear map from the Wan 2.1 VAE's 16 normalised latent channels (Wan 2.2 A14B's VAE) to RGB in -1..1:
# the approximation ComfyUI's Wan21 latent format previews with.
LATENT_RGB_WAN = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)
LATENT_RGB_WAN_BIAS = (-0.1835, -0.0868, -0.3360)


def latent_preview(latents: torch.Tensor) -> bytes:
    """A cheap preview frame: the middle latent frame through the linear latent -> RGB map, JPEG <= 256 px."""
    frame = latents[0, :, latents.shape[2] // 2].detach().float().cpu()  # (C, H, W)
    factors = torch.tensor(LATENT_RGB_WAN)[: frame.shape[0]]
    rgb = torch.einsum("chw,cr->hwr", frame[: factors.shape[0]], factors) + torch.tensor(LATENT_RGB_WAN_BIAS)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels).resize((pixels.shape[1] * 8, pixels.shape[0] * 8), Image.Resampling.BILINEAR)
    image.thumbnail((256, 256))
    return _jpeg(image)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=70)
    return out.getvalue()


class VideoRunner:
    """A preset's video model, loaded on the first video job and kept (engine/generate.py Engine.video)."""

    def __init__(self, preset: Preset, device: torch.device, dtype: torch.dtype, data_dir: str | os.PathLike):
        if preset.video is None:
            raise JobError(f"preset {preset.name!r} has no video model: Animate is off for it", retryable=False)
        self.model: VideoModel = preset.video
        self.device, self.dtype = device, dtype
        self.pipe = load(self.model, device, dtype, data_dir)

    def run(self, job: Job, start: Image.Image | None, end: Image.Image | None,
            embed: Callable[[list[Image.Image]], np.ndarray],
            report: Callable[[float, bytes | None], None], should_stop: Callable[[], bool],
            gen_seconds: list[float]) -> JobResult:
        spec, model = job.video, self.model
        # 1. Frames to start from and end on; an Extend continues the clip's own frames.
        before: list[np.ndarray] = []
        if spec.previous is not None:
            try:
                before = list(mp4.frames(spec.previous))
            except ValueError as error:
                raise JobError(f"the clip to extend can't be read: {error}", retryable=False) from None
            start = Image.fromarray(before[-1])
            width, height = before[-1].shape[1], before[-1].shape[0]
            frames = model.extend_frames
        elif start is None:
            raise JobError("a video needs a start frame", retryable=False)
        else:
            width, height = clip_size(start.width, start.height, model.base_size)
            frames = model.frames
        start = start.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        if spec.loop:
            end = Image.fromarray(before[0]) if before else start
        if end is not None:
            end = end.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        progress = _Progress(report, should_stop, spec.clips, _jpeg(start))
        report(0.0, progress.first)  # the frame it starts from, until the first step has a preview of its own
        prompt = motion_prompt(spec, model)
        negative = ", ".join(part for part in (spec.negative_prompt, "" if spec.raw else model.negative) if part)

        clips = []
        for i in range(spec.clips):
            # 2. One clip, its own seed.
            progress.clip = i
            t0 = time.perf_counter()
            kwargs = {"last_image": end} if end is not None else {}
            out = self.pipe(
                image=start, prompt=prompt, negative_prompt=negative or None, height=height, width=width,
                num_frames=frames, num_inference_steps=model.steps, guidance_scale=model.guidance,
                generator=torch.Generator("cpu").manual_seed(spec.seed + i), output_type="np",
                callback_on_step_end=progress, callback_on_step_end_tensor_inputs=["latents"], **kwargs,
            )
            if should_stop():
                raise JobCancelled()
            made = [(np.clip(f, 0, 1) * 255).round().astype(np.uint8) for f in out.frames[0]]
            video = before + made[1:] if before else made  # an Extend's first frame is the clip's last
            gen_seconds[0] += time.perf_counter() - t0
            # 3. The content filter's frames, 4. the poster's embedding and the MP4.
            checked = [Image.fromarray(video[n]) for n in sampled_frames(len(video), model.fps)]
            score = max(safety.nsfw_scores(checked))
            poster = Image.fromarray(video[0])
            data = mp4.write(video, model.fps, master_bitrate(width, height, model.fps))
            clips.append(ClipOut(
                mp4=data, poster=encode_png(poster), embedding=[float(x) for x in embed([poster])[0]], seed=spec.seed + i,
                width=width, height=height, frames=len(video), fps=float(model.fps), nsfw=score,
            ))
        report(100.0, None)
        return JobResult(clips=clips)


def check(preset: Preset, data_dir: str | os.PathLike) -> list:
    """What Animate needs for this preset and whether it is here (python -m engine.worker --check); never downloads."""
    from engine import h264

    where = h264.available()
    items = [CheckItem("openh264 (MP4 clips)", where is not None, where or "missing: apt-get install libopenh264-7")]
    model = preset.video
    if model is None:
        return items + [CheckItem("video model", True, "none (Animate is off for this preset)")]
    if model.repo == TINY_VIDEO:
        built = is_built(tiny_video_dir(data_dir), TINY_VIDEO_BUILD)
        return items + [CheckItem("tiny video model", built, str(tiny_video_dir(data_dir)) if built else "built on first use")]
    items.append(_check_files("video model_index", model.repo, ["model_index.json"]))
    for component, index in (("transformer", "diffusion_pytorch_model"), ("transformer_2", "diffusion_pytorch_model"),
                              ("text_encoder", "model"), ("vae", "diffusion_pytorch_model")):
        items.append(_check_files(f"video {component}", model.repo,  # sharded: every shard it names
                                  [f"{component}/{index}.safetensors.index.json", f"{component}/{index}.safetensors"]))
    return items
