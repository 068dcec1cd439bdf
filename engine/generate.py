"""Running jobs on a loaded preset: imagine, blend, variation, upscale, outpaint, describe, embed, pool.

`Engine` loads a preset once (lazily, or via `.load()`) and keeps it resident.
`Engine.run(job, report, should_stop)` checks the job's inputs first, then
runs it in numbered steps, and returns a `JobResult`.

Choices worth knowing:

* **Seeds.** Image i of a job uses seed `seed + i` with its own CPU
  `torch.Generator`, for its initial noise and for any noise the scheduler
  adds, so an image depends on its seed only (on a given device).
* **Batches.** Images are generated in batches of at most `max_batch`
  (default 4); best-of-N candidates are made in the same batches as a plain
  grid of that many images, so reranking keeps exactly the top of what a
  plain run with the same seeds would make.
* **Chaos** (0-100, imagine only; a = chaos / 100). Images with different
  seeds already start from independent noise, so chaos adds two seeded,
  per-image perturbations that push the four images further apart and
  further from the literal prompt: (1) low-frequency noise mixed into the
  initial latents, `(x + k·L) / sqrt(1 + k²)` with k = a and L a 4x4-cell
  Gaussian field upsampled to the latent size and normalised to unit
  variance, which moves the layout and colour masses; (2) Gaussian noise on
  the prompt embedding, 0.3·a of its standard deviation, in a different
  direction for each image. chaos = 0 leaves both untouched.
* **Stylize** (0-1000, default 100) scales the guidance by
  `1 + 0.3·(s - 100) / 900` (0.97x at 0, 1.3x at 1000), and only for presets
  that use classifier-free guidance; turbo-style presets ignore it.
  `--style raw` (`spec.raw`) keeps the preset's own guidance at every `--s`.
* **Quality** scales the preset's step count (0.5, 1, 2).
* **Multi-prompts** (`a:: b::2`, engine/params.py `prompt_parts`). Each part
  is encoded on its own and the embeddings (and SDXL's pooled embeddings) are
  mixed by weight: with classifier-free guidance, the positive side is
  Σ w·E / Σ w over the positive parts and the negative side the same over the
  negative parts' |w| (with the `--no` list as one more negative part of
  weight 0.5, as Midjourney counts `--no`); without guidance there is no
  negative side, so the one embedding is the signed mix Σ w·E / Σ w over all
  parts (their sum is above 0). A prompt without `::` is encoded as before.
* **Stop** (`--stop 10-100`). After that share of the run's steps (rounded
  up), the latents are replaced by the scheduler's estimate of the finished
  image (its x0 prediction) and the pipeline skips the remaining steps, so the
  VAE decodes an unfinished, softer image and the skipped steps cost nothing.
  A scheduler that gives no estimate leaves the latents as they are.
* **Personalization.** The IP-Adapter is loaded once. With
  `spec.conditioning` set, the vector c is passed as `ip_adapter_image_embeds`
  with `set_ip_adapter_scale(spec.ip_adapter_scale)`: one tensor of shape
  (B, 1, D) without guidance, or (2B, 1, D) = [zeros (B), c (B)] with
  classifier-free guidance (the negative half is zeros, as diffusers does for
  an image). Without conditioning the scale is 0 and the embeds are zeros;
  diffusers' IP-Adapter processor skips the adapter branch at scale 0, so the
  output is bit-identical to a pipeline that never loaded the adapter.
* **Image conditioning** (`--p`, `--sref URL`, image prompts, `/blend`): up
  to three parts steer through the one IP-Adapter (`combine_conditioning`):
  the taste vector c (`spec.conditioning`, weight 1), the style reference r
  of `spec.style_images` (weight 1) and the image-prompt reference p of
  `spec.prompt_images` (weight iw = `spec.image_weight`, `--iw` 0-3). r and p
  are each the mean of their images' unit-normalised OpenCLIP embeddings,
  rescaled to their mean norm (`style_reference`). The conditioning is the
  normalised weighted sum of the parts' unit directions,
  n·normalize(Σ wₖ·uₖ/|uₖ|), at the taste's norm n = |c| when there is one
  (its ρ), else at the weighted mean of the references' norms; a part alone
  is the conditioning as it is, and weight 0 leaves a part out (`--iw 0`
  alone: no conditioning). So c with r is |c|·normalize(c/|c| + r/|r|).
  The bot sets the adapter scale: the preset's λ(s) for c and r, and
  λ_img(iw) = λ_max·2·iw/(iw + 1) with image prompts (0 at iw 0, the
  preset's maximum taste scale at the default iw 1, 1.5x it at iw 3); with
  both, the larger (bot/generation.py `adapter_scale`).
* **Blend** (`/blend`) is an imagine of the blended images alone: an empty
  text prompt, conditioned on p of its 2-5 images (and the member's taste).
* **Describe** (`/describe`). CoCa (OpenCLIP's captioner, loaded on the
  first describe job and kept) samples `count` captions with the job's seed
  (nucleus sampling); the preset's OpenCLIP ranks `spec.styles` by cosine
  similarity with the image; prompt i is caption i, cleaned of characters the
  prompt language reads as syntax, plus the style words ranked i and
  i + count (so the four prompts lean different ways).
* **Progress.** `report(percent, preview_jpeg | None)` after every denoising
  step; a preview at most about every 0.7 s (the first step always has one):
  a 2x2 grid of the batch, at most 256 px, from the family's linear
  latent->RGB map (4-channel latents) or its VAE on a shrunk copy (FLUX, SD 3.5).
* **Families** (engine/families). The family of the preset gives the
  pipelines, prompt encoding, latent layout and previews; everything here is
  shared. On a family whose IP-Adapter can't read the taste (FLUX, SD 3.5),
  --p arrives as `spec.taste_words`: one more multi-prompt part of weight
  `taste_words_weight` times the prompt's own positive weight. --tile needs a
  UNet and is refused on the transformer families.
* **NSFW check** (engine/safety.py). Every image returned gets an open_nsfw
  score (`ImageOut.nsfw`), on the CPU; the bot applies the server's policy.
  With `job.nsfw_threshold` set, an input image (init, style, embed) scoring
  at or over it fails the job at once, before any sampling.
* **Inpainting** (outpaint: Zoom Out, Pan, Make Square; Vary (Region) with
  a mask). The inpainting pipeline shares the loaded components (no second
  model). The canvas and mask come from engine/canvas.py; outpaint draws at
  strength 1 (nothing to keep around the source), a region at the spec's
  strength; the source's own pixels are pasted back outside the mask over a
  feathered seam (canvas.paste_back).
* **Video** (Animate, Extend, Loop; engine/video.py). The preset's video model loads on the first
  video job and stays; a text prompt's start frame is drawn first by this preset (one image, with
  the member's taste), through the same sample -> embed path as a grid.
* **Cancellation.** `should_stop()` is polled at every step and between
  batches; when it says stop, `pipe._interrupt` is set and `JobCancelled`
  raised.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine import canvas, params, safety
from engine.config import DtypeName
from engine.images import ImageDecodeError, decode_image, encode_png
from engine.jobs import (  # JobError / JobCancelled live in jobs.py so the worker needs no torch to catch them
    MAX_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    SIZE_MULTIPLE,
    GenerateSpec,
    ImageOut,
    Job,
    JobCancelled,
    JobError,
    JobKind,
    JobResult,
    PoolSpec,
)
from engine.embed import Captioner
from engine.families import Family
from engine.models import Loaded, load_captioner
from engine.models import load as load_preset
from engine.models import release
from engine.presets import DEFAULT_PRESET, Preset, get_preset
from engine.video import VideoRunner

Report = Callable[[float, bytes | None], None]
ShouldStop = Callable[[], bool]

__all__ = ["Engine", "JobCancelled", "JobError", "combine_conditioning", "latents_to_preview", "style_reference"]

# Input limits the engine checks itself; the ranges of a spec are pydantic
# constraints in engine/jobs.py.
MAX_EMBED_IMAGES = 256
MAX_EMBED_TEXTS = 1024

PREVIEW_EVERY_S = 0.7
PREVIEW_MAX_PX = 256
VAE_TILING_ABOVE_PIXELS = 1536 * 1536


def _noop_report(percent: float, preview: bytes | None) -> None:
    pass


def _never() -> bool:
    return False


# ----------------------------------------------------------------------------
# Progress, previews, cancellation
# ----------------------------------------------------------------------------


def latents_to_preview(family: Family, pipe, latents: torch.Tensor, size: tuple[int, int], scale: float = 1.0) -> bytes:
    """Cheap preview of up to 4 latents as a 2x2 grid, JPEG <= 256 px: the family's linear
    latent->RGB map, or its VAE on a copy shrunk to preview size (engine/families)."""
    lat = family.unpack(pipe, latents[:4], *size) * scale
    rgb = family.preview_rgb(pipe, lat, PREVIEW_MAX_PX)
    rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    n, h, w, _ = rgb.shape
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = rgb[i]
    im = Image.fromarray(grid)
    im.thumbnail((PREVIEW_MAX_PX, PREVIEW_MAX_PX), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


class _Progress:
    """callback_on_step_end for a job made of `n_batches` pipeline calls."""

    def __init__(self, report: Report, should_stop: ShouldStop, family: Family, n_batches: int, offload: str):
        self.report = report
        self.should_stop = should_stop
        self.family = family
        self.size = (0, 0)  # (width, height) of the images being drawn
        # A family without a latent_rgb map previews through the VAE: not while it is offloaded.
        self.previews = family.latent_rgb is not None or offload == "none"
        self.n_batches = max(1, n_batches)
        self.batch = -1
        self.last_preview = -math.inf
        self.last_percent = 0.0
        self.stop = 100  # --stop: the % of each run's steps to take

    def check(self) -> None:
        if self.should_stop():
            raise JobCancelled()

    def next_batch(self) -> None:
        self.check()
        self.batch += 1

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.should_stop():
            pipe._interrupt = True
            raise JobCancelled()
        total = _steps_taken(int(getattr(pipe, "num_timesteps", 0) or 1), self.stop)
        if self.stop < 100 and step + 1 >= total:
            pipe._interrupt = True  # --stop: the pipeline skips the rest and decodes (see _stop_early)
        percent = 100.0 * (self.batch + min(step + 1, total) / total) / self.n_batches
        percent = max(self.last_percent, round(percent, 1))
        self.last_percent = percent
        preview = None
        now = time.monotonic()
        if self.previews and now - self.last_preview >= PREVIEW_EVERY_S and "latents" in callback_kwargs:
            preview = latents_to_preview(self.family, pipe, callback_kwargs["latents"], self.size, _preview_scale(pipe.scheduler))
            self.last_preview = now
        self.report(percent, preview)
        return callback_kwargs


def _steps_taken(run: int, stop: int) -> int:
    """Of a run of `run` denoising steps, how many --stop takes (at least one)."""
    return max(1, math.ceil(run * stop / 100))


@contextlib.contextmanager
def _stop_early(pipe, stop: int) -> Iterator[None]:
    """--stop: at the last step taken, the scheduler's x0 estimate replaces the latents it
    returns (the callback then interrupts the pipeline, which decodes them). `wraps` keeps
    the step's signature, which the pipelines inspect for `eta` and `generator`."""
    if stop >= 100:
        yield
        return
    scheduler = pipe.scheduler
    original = scheduler.step
    calls = [0]

    @functools.wraps(original)
    def step(*args, **kwargs):
        return_dict = kwargs.pop("return_dict", True)
        out = original(*args, **kwargs, return_dict=True)
        calls[0] += 1
        if calls[0] == _steps_taken(int(pipe.num_timesteps), stop):
            estimate = _x0_estimate(scheduler, out, _step_inputs(original, args, kwargs))
            if estimate is not None:
                out.prev_sample = estimate
        return out if return_dict else (out.prev_sample,)

    scheduler.step = step
    try:
        yield
    finally:
        del scheduler.step  # back to the class's method


def _step_inputs(step, args, kwargs) -> dict[str, Any]:
    """A scheduler step's model_output and sample, however they were passed."""
    bound = inspect.signature(step).bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def _x0_estimate(scheduler, out, inputs: dict[str, Any]) -> torch.Tensor | None:
    """The finished image the scheduler predicts at this step: Euler, DDIM and others return it;
    DPM-Solver++ keeps it as its newest model output; flow matching (FLUX, SD 3.5) predicts the
    velocity v = noise - x0 from x_t = (1 - sigma)·x0 + sigma·noise, so x0 = x_t - sigma·v."""
    for name in ("pred_original_sample", "denoised"):
        if (x0 := getattr(out, name, None)) is not None:
            return x0
    if type(scheduler).__name__.startswith("FlowMatch") and scheduler.step_index is not None:
        sigma = scheduler.sigmas[scheduler.step_index - 1]  # the step just taken
        sample, velocity = inputs.get("sample"), inputs.get("model_output")
        if sample is not None and velocity is not None:
            return (sample.float() - float(sigma) * velocity.float()).to(sample.dtype)
    if getattr(scheduler.config, "algorithm_type", "") in ("dpmsolver++", "sde-dpmsolver++"):
        outputs = getattr(scheduler, "model_outputs", None) or [None]
        return outputs[-1]
    return None


def _preview_scale(scheduler) -> float:
    """Euler-type schedulers keep latents at x0 + sigma*eps: shrink them to about unit scale."""
    try:
        if float(scheduler.init_noise_sigma) > 1.5 and scheduler.step_index is not None:
            sigma = float(scheduler.sigmas[min(scheduler.step_index, len(scheduler.sigmas) - 1)])
            return 1.0 / math.sqrt(1.0 + sigma * sigma)
    except (AttributeError, TypeError, IndexError):
        pass
    return 1.0


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


@contextlib.contextmanager
def _circular_padding(*modules: torch.nn.Module) -> Iterator[None]:
    """Seamless tiling: circular padding on every padded Conv2d; restored afterwards."""
    changed: list[tuple[torch.nn.Conv2d, str]] = []
    try:
        for module in modules:
            for conv in module.modules():
                if isinstance(conv, torch.nn.Conv2d) and any(p > 0 for p in _pair(conv.padding)):
                    changed.append((conv, conv.padding_mode))
                    conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in changed:
            conv.padding_mode = mode


def _pair(padding) -> tuple[int, ...]:
    if isinstance(padding, str):
        return (1,) if padding == "same" else (0,)
    return tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding)


@contextlib.contextmanager
def _vae_tiling(vae, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    vae.enable_tiling()
    try:
        yield
    finally:
        vae.disable_tiling()


def _chaos_generator(seed: int) -> torch.Generator:
    """A second seeded stream per image, independent of its noise generator."""
    return torch.Generator().manual_seed((seed * 0x9E3779B1 + 0x7F4A7C15) % (2**63))


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


class _Timer:
    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds += time.perf_counter() - t0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def style_reference(embeddings: np.ndarray) -> np.ndarray:
    """Mean of the unit-normalised embeddings (n, d), rescaled to their mean norm."""
    e = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1)
    mean = (e / np.maximum(norms, 1e-12)[:, None]).mean(axis=0)
    return mean * (norms.mean() / max(float(np.linalg.norm(mean)), 1e-12))


def combine_conditioning(
    taste: list[float] | None, references: list[tuple[np.ndarray, float]]
) -> list[float] | None:
    """The taste vector and the (embeddings, weight) references as one conditioning
    vector (the rule in the module docstring); None when nothing weighs anything."""
    parts = [(np.asarray(taste, dtype=np.float64), 1.0)] if taste is not None else []
    parts += [(style_reference(e), float(w)) for e, w in references if len(e) and w > 0]
    if not parts:
        return None
    if len(parts) == 1:  # alone, a part is the conditioning as it is
        return [float(x) for x in parts[0][0]]
    norms = [float(np.linalg.norm(u)) for u, _ in parts]
    total = sum(w * u / max(n, 1e-12) for (u, w), n in zip(parts, norms, strict=True))
    weights = [w for _, w in parts]
    scale = norms[0] if taste is not None else sum(w * n for w, n in zip(weights, norms, strict=True)) / sum(weights)
    return [float(x) for x in scale * total / max(float(np.linalg.norm(total)), 1e-12)]


# Characters the prompt language reads as syntax (parameters, permutations,
# multi-prompt weights, links): a caption never carries them into a prompt.
_PROMPT_SYNTAX = str.maketrans({c: " " for c in "-\u2014{}[]:<>|\\/`*_~@#"})


def describe_prompt(caption: str, words: list[str]) -> str:
    """A /describe prompt: the caption, read as the bot reads member text (params.normalize) and
    cleaned of prompt syntax, then the style words; so /imagine runs exactly the prompt shown."""
    text = " ".join(params.normalize(caption).translate(_PROMPT_SYNTAX).split())[:300].strip(" ,.") or "an image"
    return ", ".join([text, *words])


def _decode_all(images: list[bytes], label: str) -> list[Image.Image]:
    """A member's images, decoded; the first bad one fails the job at once, named by `label` and its number."""
    decoded = []
    for i, data in enumerate(images, 1):
        try:
            decoded.append(decode_image(data))
        except ImageDecodeError as e:
            raise JobError(f"{label} {i}: {e}", retryable=False) from None
    return decoded


@dataclass(frozen=True)
class Sampling:
    """What one job asks of the shared sample -> embed -> result path; image i uses seeds[i]."""

    pipe: Any  # m.pipe (txt2img), m.img2img or m.inpaint
    prompts: list[str]
    seeds: list[int]
    width: int
    height: int
    steps: int
    guidance: float
    negative: str = ""
    conditioning: list[float] | None = None
    ip_scale: float = 0.0
    chaos: int = 0  # txt2img only
    init: Image.Image | None = None  # img2img / inpaint: the source, at the output size
    mask: Image.Image | None = None  # inpaint: white = draw; elsewhere the source is pasted back
    strength: float | None = None
    tile: bool = False
    labels: list[str] | None = None  # pool: the style of each image
    stop: int = 100  # --stop: the % of the steps taken before decoding
    keep_best: tuple[int, list[float]] | None = None  # best-of-N: (count, rerank direction)
    taste_words: tuple[str, ...] = ()  # --p by style words: a prompt part of their own ...
    taste_weight: float = 0.0  # ... at this weight (a share of the prompt's own weight)


# ----------------------------------------------------------------------------
# The engine
# ----------------------------------------------------------------------------


class Engine:
    """One preset, loaded once and kept resident; runs jobs one at a time."""

    def __init__(
        self,
        preset: str | Preset = DEFAULT_PRESET,
        device: str = "auto",
        data_dir: str | os.PathLike = Path("data"),
        *,
        ip_adapter: bool = True,
        max_batch: int = 4,
        dtype: DtypeName = "auto",
        compile: bool = False,
    ):
        self.preset: Preset = get_preset(preset) if isinstance(preset, str) else preset
        self.device = device
        self.data_dir = Path(data_dir)
        self.ip_adapter = ip_adapter
        self.max_batch = max(1, int(max_batch))
        self.dtype = dtype
        self.compile = compile
        self.loaded: Loaded | None = None
        self.captioner: Captioner | None = None  # /describe's CoCa, loaded by the first describe job
        self.video: VideoRunner | None = None  # Animate's model, loaded by the first video job

    # -- lifecycle -------------------------------------------------------------

    def load(self) -> Loaded:
        if self.loaded is None:
            self.loaded = load_preset(
                self.preset, self.device, self.data_dir, ip_adapter=self.ip_adapter, dtype=self.dtype, compile=self.compile
            )
            safety.load()  # the NSFW classifier (CPU), once per process
        return self.loaded

    @property
    def is_loaded(self) -> bool:
        return self.loaded is not None

    def close(self) -> None:
        """Drop the models and free their memory (before loading another preset)."""
        release(self.loaded)
        self.loaded = None
        self.captioner = None
        self.video = None

    # -- entry point -------------------------------------------------------------

    def run(self, job: Job, report: Report | None = None, should_stop: ShouldStop | None = None) -> JobResult:
        """Run one job. Raises JobError (bad input, OOM) or JobCancelled."""
        report = report or _noop_report
        should_stop = should_stop or _never

        # 1. Check the inputs that need no model (before paying for a load).
        decoded = self._check_job(job)
        styles = self._check_styles(job.generate) if job.generate is not None else []
        prompt_images = self._check_prompt_images(job.generate) if job.generate is not None else []
        self._check_safe(job, [("the source image", decoded)] if decoded is not None else [])
        self._check_safe(job, [(f"--sref image {i}", im) for i, im in enumerate(styles, 1)])
        self._check_safe(job, [(f"image prompt {i}", im) for i, im in enumerate(prompt_images, 1)])
        end = None  # the video's end frame, decoded once here for the filter and the video runner
        if job.kind == JobKind.VIDEO and job.video.end_image is not None:
            end = self._decoded(job.video.end_image, "the end frame")
            self._check_safe(job, [("the end frame", end)])
        if should_stop():
            raise JobCancelled()

        # 2. Load (once per Engine), then check what depends on the model.
        t0 = time.perf_counter()
        was_loaded = self.is_loaded
        m = self.load()
        load_s = 0.0 if was_loaded else time.perf_counter() - t0
        if job.generate is not None:
            self._check_against_model(job.generate, m)
        if job.video is not None and job.video.start is not None:
            self._check_against_model(job.video.start, m)

        # 3. Run it.
        gen_t, emb_t = _Timer(m.device), _Timer(m.device)
        progress = _Progress(report, should_stop, m.family, 1, self.preset.offload)
        try:
            spec = job.generate
            if styles or prompt_images:
                spec = self._with_references(m, spec, styles, prompt_images, emb_t)
            match job.kind:
                case JobKind.EMBED:
                    result = self._embed(m, job, progress, emb_t)
                case JobKind.IMAGINE | JobKind.BLEND:
                    result = self._generate(m, self._imagine(m, spec), progress, gen_t, emb_t)
                case JobKind.DESCRIBE:
                    result = self._describe(m, job, decoded, progress, emb_t)
                case JobKind.VARIATION:
                    result = self._generate(m, self._variation(m, spec, decoded), progress, gen_t, emb_t)
                case JobKind.UPSCALE:
                    result = self._generate(m, self._upscale(m, spec, decoded), progress, gen_t, emb_t)
                case JobKind.OUTPAINT:
                    result = self._generate(m, self._outpaint(m, spec, decoded), progress, gen_t, emb_t)
                case JobKind.POOL:
                    result = self._generate(m, self._pool(m, job.pool), progress, gen_t, emb_t)
                case JobKind.VIDEO:
                    result = self._video(m, job, decoded, end, report, should_stop, gen_t, emb_t)
        except torch.cuda.OutOfMemoryError as e:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise JobError(f"out of GPU memory: {e}".splitlines()[0], retryable=True) from None
        except ImageDecodeError as e:
            raise JobError(str(e), retryable=False) from None

        # 4. Timings ("gpu" is what /info counts; the NSFW check runs on the CPU).
        result.timings.update(
            load=round(load_s, 4),
            generate=round(gen_t.seconds, 4),
            embed=round(emb_t.seconds, 4),
            gpu=round(gen_t.seconds + emb_t.seconds, 4),
        )
        return result

    # -- input checks ---------------------------------------------------------------

    def _check_job(self, job: Job) -> Image.Image | None:
        """Checks that need no model. Returns the decoded init image, if any."""
        if job.kind in (JobKind.IMAGINE, JobKind.BLEND, JobKind.VARIATION, JobKind.UPSCALE, JobKind.OUTPAINT):
            spec = job.generate
            if spec is None:
                raise JobError(f"a {job.kind} job needs `generate` parameters")
            if job.kind == JobKind.BLEND and len(spec.prompt_images) < 2:
                raise JobError(f"a blend needs 2 to 5 images, not {len(spec.prompt_images)}")
            return self._check_generate(job.kind, spec)
        if job.kind == JobKind.VIDEO:
            if job.video is None:
                raise JobError("a video job needs `video` parameters")
            start = job.video.start_image
            return self._decoded(start, "the start frame") if start is not None else None
        if job.kind == JobKind.DESCRIBE:
            if job.describe is None:
                raise JobError("a describe job needs `describe` parameters")
            try:
                return decode_image(job.describe.image)
            except ImageDecodeError as e:
                raise JobError(f"the image {e}", retryable=False) from None
        if job.kind == JobKind.EMBED:
            spec = job.embed
            if spec is None:
                raise JobError("an embed job needs `embed` parameters")
            if not spec.images and not spec.texts:
                raise JobError("an embed job needs at least one image or text")
            if len(spec.images) > MAX_EMBED_IMAGES or len(spec.texts) > MAX_EMBED_TEXTS:
                raise JobError(f"an embed job takes at most {MAX_EMBED_IMAGES} images and {MAX_EMBED_TEXTS} texts")
            return None
        if job.kind == JobKind.POOL:
            spec = job.pool
            if spec is None:
                raise JobError("a pool job needs `pool` parameters")
            return None
        raise JobError(f"unknown job kind {job.kind!r}")

    def _check_generate(self, kind: JobKind, spec: GenerateSpec) -> Image.Image | None:
        """What the spec's own constraints cannot say: a variation or upscale needs an image that fits."""
        if kind in (JobKind.IMAGINE, JobKind.BLEND):
            return None

        # variation / upscale: an init image.
        if not spec.init_image:
            raise JobError(f"a {kind} job needs an init_image")
        try:
            init = decode_image(spec.init_image)
        except ImageDecodeError as e:
            raise JobError(f"init_image: {e}", retryable=False) from None
        w, h = init.size
        if kind == JobKind.OUTPAINT:
            if spec.source_box is None:
                raise JobError("an outpaint job needs a source_box")
        elif kind == JobKind.VARIATION:
            if spec.strength == 0:
                raise JobError("a variation needs a strength above 0")
            if w % SIZE_MULTIPLE or h % SIZE_MULTIPLE or min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
                raise JobError(
                    f"init_image {w}x{h} is not allowed: sides must be multiples of {SIZE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE}"
                )
        else:  # upscale
            if w % (SIZE_MULTIPLE // 2) or h % (SIZE_MULTIPLE // 2):
                raise JobError(f"init_image {w}x{h}: sides must be multiples of {SIZE_MULTIPLE // 2} to upscale x2")
            if 4 * w * h > MAX_PIXELS or max(w, h) > MAX_SIDE:
                raise JobError(f"init_image {w}x{h} is too large to upscale x2: at most {MAX_PIXELS:,} output pixels")
        return init

    @staticmethod
    def _decoded(data: bytes, name: str) -> Image.Image:
        try:
            return decode_image(data)
        except ImageDecodeError as e:
            raise JobError(f"{name}: {e}", retryable=False) from None

    @staticmethod
    def _check_styles(spec: GenerateSpec) -> list[Image.Image]:
        """Decode the --sref images (bad bytes fail the job at once)."""
        return _decode_all(spec.style_images, "style image")

    @staticmethod
    def _check_prompt_images(spec: GenerateSpec) -> list[Image.Image]:
        """Decode the image prompts (bad bytes fail the job at once)."""
        return _decode_all(spec.prompt_images, "image prompt")

    @staticmethod
    def _check_safe(job: Job, named: list[tuple[str, Image.Image]]) -> None:
        """A member's image at or over the server's NSFW threshold fails the job (no retry)."""
        if job.nsfw_threshold is None or not named:
            return
        for (name, _), score in zip(named, safety.nsfw_scores([im for _, im in named]), strict=True):
            if safety.flagged(score, job.nsfw_threshold):
                raise JobError(f"{name} was flagged by this server's content filter", retryable=False)

    def _check_against_model(self, spec: GenerateSpec, m: Loaded) -> None:
        if spec.tile and not self.preset.can_tile:
            raise JobError(f"preset {self.preset.name!r} ({m.family.name}) can't draw seamless tiles: --tile pads "
                           "a UNet's convolutions, and this family has a transformer", retryable=False)
        if spec.style_images and not m.ip_adapter:
            raise JobError(f"preset {self.preset.name!r} runs without an IP-Adapter: style references are unavailable")
        if spec.prompt_images and not m.ip_adapter:
            raise JobError(f"preset {self.preset.name!r} runs without an IP-Adapter: image prompts are unavailable")
        if spec.conditioning is not None:
            if not m.ip_adapter:
                raise JobError(f"preset {self.preset.name!r} runs without an IP-Adapter: personalization is unavailable")
            if len(spec.conditioning) != m.ip_embed_dim:
                raise JobError(
                    f"conditioning has {len(spec.conditioning)} numbers; preset {self.preset.name!r} takes {m.ip_embed_dim}"
                )
        if spec.rerank_direction is not None and len(spec.rerank_direction) != m.embedder.dim:
            raise JobError(
                f"rerank_direction has {len(spec.rerank_direction)} numbers; "
                f"preset {self.preset.name!r} embeds in {m.embedder.dim}"
            )

    # -- image conditioning: taste, style references, image prompts ------------------------

    @staticmethod
    def _with_references(
        m: Loaded, spec: GenerateSpec, styles: list[Image.Image], prompts: list[Image.Image], emb_t: _Timer
    ) -> GenerateSpec:
        """The spec with its style images and image prompts folded into `conditioning`
        (combine_conditioning; the rule is in the module docstring)."""
        with emb_t():
            references = [(m.embedder.embed_images(styles), 1.0), (m.embedder.embed_images(prompts), spec.image_weight)]
        conditioning = combine_conditioning(spec.conditioning, references)
        return spec.model_copy(update={"conditioning": conditioning, "style_images": [], "prompt_images": []})

    # -- sampling parameters ---------------------------------------------------------------

    def _steps(self, quality: float) -> int:
        return max(1, round(self.preset.steps * quality))

    def _guidance(self, stylize: int, raw: bool = False) -> float:
        g = float(self.preset.guidance_scale)
        if not self.preset.uses_cfg or raw:
            return g
        return g * (1.0 + 0.3 * (stylize - 100) / 900.0)

    def _uses_cfg(self, pipe, guidance: float) -> bool:
        return self.loaded.family.uses_cfg(pipe, guidance)

    @staticmethod
    def _taste_words(spec: GenerateSpec) -> dict[str, Any]:
        """--p by style words (families whose IP-Adapter can't read the taste), as Sampling fields."""
        if not spec.taste_words or spec.taste_words_weight <= 0:
            return {}
        return {"taste_words": tuple(spec.taste_words), "taste_weight": spec.taste_words_weight}

    # -- jobs: one runner per kind says what to sample; _generate does the rest ----------------

    def _imagine(self, m: Loaded, spec: GenerateSpec) -> Sampling:
        # Best-of-N when candidates > count and a direction is given.
        rerank = spec.rerank_direction is not None and (spec.candidates or 0) > spec.count
        n = spec.candidates if rerank else spec.count
        return Sampling(
            pipe=m.pipe,
            prompts=[spec.prompt] * n,
            seeds=[spec.seed + i for i in range(n)],
            width=spec.width,
            height=spec.height,
            steps=self._steps(spec.quality),
            guidance=self._guidance(spec.stylize, spec.raw),
            stop=spec.stop,
            negative=spec.negative_prompt,
            conditioning=spec.conditioning,
            ip_scale=spec.ip_adapter_scale,
            chaos=spec.chaos,
            tile=spec.tile,
            keep_best=(spec.count, spec.rerank_direction) if rerank else None,
            **self._taste_words(spec),
        )

    def _variation(self, m: Loaded, spec: GenerateSpec, init: Image.Image) -> Sampling:
        # img2img from the source, at its size, with enough steps for at least one at this strength;
        # Vary (Region): only the mask is redrawn.
        mask = self._mask(spec, init) if spec.mask is not None else None
        return self._img2img(m, spec, init, spec.strength, count=spec.count, mask=mask)

    def _outpaint(self, m: Loaded, spec: GenerateSpec, source: Image.Image) -> Sampling:
        # The source scaled into its box on the canvas; all around it is drawn from noise.
        image, mask = canvas.outpaint_inputs(source, spec.width, spec.height, spec.source_box)
        return self._img2img(m, spec, image, 1.0, count=spec.count, mask=mask)

    @staticmethod
    def _mask(spec: GenerateSpec, init: Image.Image) -> Image.Image:
        try:
            mask = decode_image(spec.mask).convert("L")
        except ImageDecodeError as e:
            raise JobError(f"mask: {e}", retryable=False) from None
        if mask.size != init.size:
            raise JobError(f"the mask is {mask.width}x{mask.height}; the image is {init.width}x{init.height}")
        if canvas.mask_is_empty(mask):
            raise JobError("the mask selects nothing to redraw")
        return mask

    def _upscale(self, m: Loaded, spec: GenerateSpec, init: Image.Image) -> Sampling:
        # Lanczos x2, then a low-strength img2img pass to add detail ("hires fix").
        big = init.resize((init.width * 2, init.height * 2), Image.Resampling.LANCZOS)
        return self._img2img(m, spec, big, spec.strength or self.preset.upscale_strength, count=1)

    def _img2img(
        self, m: Loaded, spec: GenerateSpec, init: Image.Image, strength: float, count: int, mask: Image.Image | None = None
    ) -> Sampling:
        return Sampling(
            pipe=m.img2img if mask is None else m.inpaint,
            prompts=[spec.prompt] * count,
            seeds=[spec.seed + i for i in range(count)],
            width=init.width,
            height=init.height,
            steps=max(self._steps(spec.quality), math.ceil(1.0 / strength)),
            guidance=self._guidance(spec.stylize, spec.raw),
            stop=spec.stop,
            negative=spec.negative_prompt,
            conditioning=spec.conditioning,
            ip_scale=spec.ip_adapter_scale,
            init=init,
            mask=mask,
            strength=strength,
            tile=spec.tile and mask is None,
            **self._taste_words(spec),
        )

    def _pool(self, m: Loaded, spec: PoolSpec) -> Sampling:
        # One image per style, all with the same seed: pairs differ by style, not content.
        # The preset's plain settings, no personalization.
        return Sampling(
            pipe=m.pipe,
            prompts=[f"{spec.prompt}, {style}" for style in spec.styles],
            seeds=[spec.seed] * len(spec.styles),
            width=spec.width,
            height=spec.height,
            steps=self._steps(1.0),
            guidance=self._guidance(100),
            labels=list(spec.styles),
        )

    def _generate(self, m: Loaded, s: Sampling, progress: _Progress, gen_t: _Timer, emb_t: _Timer) -> JobResult:
        n = len(s.seeds)
        # 1. Sample, in batches of at most max_batch.
        progress.n_batches = len(_batches(n, self.max_batch))
        with gen_t():
            images = self._sample(m, s, progress)

        # 2. Embed every image (the taste model learns from these).
        with emb_t():
            embs = m.embedder.embed_images(images)

        # 3. Best-of-N: keep the best by cosine with the direction, best first.
        order, scores = list(range(n)), [None] * n
        if s.keep_best is not None:
            count, direction = s.keep_best
            e = embs.astype(np.float64)
            cos = (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)) @ np.asarray(direction, np.float64)
            order = sorted(range(n), key=lambda i: (-cos[i], i))[:count]
            scores = [float(c) for c in cos]

        # 4. NSFW scores of the images kept (CPU); the bot applies the server's policy.
        t0 = time.perf_counter()
        nsfw = dict(zip(order, safety.nsfw_scores([images[i] for i in order]), strict=True))
        nsfw_s = time.perf_counter() - t0

        # 5. Results.
        labels = s.labels or [""] * n
        out = [self._out(images[i], embs[i], s.seeds[i], labels[i], scores[i], nsfw[i]) for i in order]
        return JobResult(images=out, timings={"nsfw": round(nsfw_s, 4)})

    def _video(self, m: Loaded, job: Job, start: Image.Image | None, end: Image.Image | None, report: Report,
               should_stop: ShouldStop, gen_t: _Timer, emb_t: _Timer) -> JobResult:
        spec = job.video
        # 1. A text prompt's start frame: one image of this preset, with the member's taste.
        if start is None and spec.start is not None:
            progress = _Progress(
                lambda percent, preview: report(0.0, preview), should_stop, m.family, 1, self.preset.offload
            )
            drawn = self._generate(m, self._imagine(m, spec.start.model_copy(update={"count": 1})), progress, gen_t, emb_t)
            start = decode_image(drawn.images[0].png)
        # 2. The clips, on the video model (loaded once).
        if self.video is None:
            self.video = VideoRunner(self.preset, m.device, m.dtype, self.data_dir)

        def embed(images: list[Image.Image]) -> np.ndarray:
            with emb_t():
                return m.embedder.embed_images(images)

        seconds = [0.0]
        result = self.video.run(job, start, end, embed, report, should_stop, seconds)
        gen_t.seconds += seconds[0]
        return result

    def _describe(self, m: Loaded, job: Job, image: Image.Image, progress: _Progress, emb_t: _Timer) -> JobResult:
        spec = job.describe  # its image passed the server's filter in run(), like every upload
        # 1. Captions: CoCa, loaded by the first describe job and kept.
        progress.check()
        if self.captioner is None:
            self.captioner = load_captioner(self.preset, m.device, self.data_dir)
        with emb_t():
            captions = self.captioner.captions(image, spec.count, spec.seed)
        progress.report(60.0, None)
        # 2. Style words ranked by cosine similarity with the image, in the taste space.
        with emb_t():
            img = m.embedder.embed_images([image]).astype(np.float64)[0]
            words = m.embedder.embed_texts(spec.styles).astype(np.float64)
        unit = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-12)
        cos = unit @ (img / max(float(np.linalg.norm(img)), 1e-12))
        ranked = [spec.styles[i] for i in sorted(range(len(spec.styles)), key=lambda i: (-cos[i], i))]
        # 3. Prompt i: caption i, then the style words ranked i and i + count.
        n = len(captions)
        prompts = [describe_prompt(c, ranked[i : i + 1] + ranked[i + n : i + n + 1]) for i, c in enumerate(captions)]
        return JobResult(prompts=prompts, image_embeddings=[img.tolist()])

    def _embed(self, m, job: Job, progress: _Progress, emb_t: _Timer) -> JobResult:
        spec = job.embed
        # 1. Decode (guarded) and check (NSFW) before embedding, so bad images fail fast.
        images = [decode_image(b) for b in spec.images]
        self._check_safe(job, [(f"image {i}", im) for i, im in enumerate(images, 1)])
        progress.check()
        # 2. Embed.
        with emb_t():
            img = m.embedder.embed_images(images) if images else np.zeros((0, m.embedder.dim), np.float32)
            txt = m.embedder.embed_texts(spec.texts) if spec.texts else np.zeros((0, m.embedder.dim), np.float32)
        return JobResult(image_embeddings=img.tolist(), text_embeddings=txt.tolist())

    @staticmethod
    def _out(
        im: Image.Image, emb: np.ndarray, seed: int, label: str = "", score: float | None = None, nsfw: float | None = None
    ) -> ImageOut:
        return ImageOut(
            png=encode_png(im),
            embedding=[float(x) for x in emb],
            seed=seed,
            width=im.width,
            height=im.height,
            label=label,
            score=score,
            nsfw=nsfw,
        )

    # -- the sampling loop ---------------------------------------------------------------

    def _sample(self, m: Loaded, s: Sampling, progress: _Progress) -> list[Image.Image]:
        """Generate len(s.seeds) images in batches of at most max_batch; image i uses s.seeds[i]."""
        pipe, family = s.pipe, m.family
        cfg = self._uses_cfg(pipe, s.guidance)
        out: list[Image.Image] = []
        tile_ctx = _circular_padding(family.denoiser(pipe), pipe.vae) if s.tile else contextlib.nullcontext()
        progress.stop, progress.size = s.stop, (s.width, s.height)
        with tile_ctx, _vae_tiling(pipe.vae, s.width * s.height > VAE_TILING_ABOVE_PIXELS), _stop_early(pipe, s.stop):
            for batch in _batches(len(s.seeds), self.max_batch):
                progress.next_batch()
                b = len(batch)
                bseeds = [s.seeds[i] for i in batch]
                # 1. Prompt embeddings (+ the taste's words, + chaos noise).
                kw = self._encode_prompts(pipe, [s.prompts[i] for i in batch], s.negative, cfg, s.taste_words, s.taste_weight)
                if s.chaos:
                    self._chaos_prompt(kw, bseeds, s.chaos / 100.0)
                # 2. One generator per image.
                generators = [torch.Generator("cpu").manual_seed(seed) for seed in bseeds]
                # 3. Initial latents (txt2img) with chaos; img2img makes its own from the image.
                if s.init is None:
                    kw["latents"] = self._initial_latents(m, pipe, generators, bseeds, s.width, s.height, s.chaos / 100.0)
                    kw.update(height=s.height, width=s.width)
                else:
                    kw.update(image=[s.init] * b, strength=s.strength, **family.img2img_size(s.width, s.height))
                    if s.mask is not None:  # inpainting takes its size from the call, not the image
                        kw.update(mask_image=[s.mask] * b, height=s.height, width=s.width)
                # 4. IP-Adapter embeds: conditioning, or zeros at scale 0 (an exact no-op).
                if m.ip_adapter:
                    kw["ip_adapter_image_embeds"] = [self._ip_embeds(m, s.conditioning, b, cfg)]
                    pipe.set_ip_adapter_scale(float(s.ip_scale) if s.conditioning is not None else 0.0)
                # 5. Denoise and decode.
                result = pipe(
                    **kw,
                    guidance_scale=s.guidance,  # FLUX reads it only with guidance_embeds ([dev])
                    num_inference_steps=s.steps,
                    generator=generators,
                    output_type="pil",
                    callback_on_step_end=progress,
                    callback_on_step_end_tensor_inputs=["latents"],
                )
                if s.mask is not None:
                    out.extend(canvas.paste_back(image, s.init, s.mask) for image in result.images)
                else:
                    out.extend(result.images)
        return out

    def _encode_prompts(
        self, pipe, prompts: list[str], negative: str, cfg: bool, words: tuple[str, ...] = (), weight: float = 0.0
    ) -> dict[str, Any]:
        """The pipeline's embedding keyword arguments for these prompts; multi-prompts mixed by weight.
        The taste's style words are one more part, at `weight` times the prompt's positive weight."""
        try:
            parts = [params.prompt_parts(p) for p in prompts]
        except params.ParamError as e:  # checked by the bot; a job from elsewhere may still be wrong
            raise JobError(f"prompt: {e}", retryable=False) from None
        if words and weight > 0:
            parts = [(*p, (", ".join(words), weight * sum(w for _, w in p if w > 0))) for p in parts]
        if all(len(p) == 1 for p in parts):  # no multi-prompt: one encoding each (a lone part's weight is moot)
            return self._encode_plain(pipe, [p[0][0] for p in parts], negative, cfg)
        return self._encode_weighted(pipe, parts, negative, cfg)

    def _encode_weighted(
        self, pipe, parts: list[tuple[tuple[str, float], ...]], negative: str, cfg: bool
    ) -> dict[str, Any]:
        # 1. Every distinct text once, without guidance: (T, 77, D) and, for SDXL, pooled (T, P).
        negatives = [(negative, 0.5)] if cfg and negative else []  # --no counts as `::-0.5`, as in Midjourney
        texts = list(dict.fromkeys([t for p in parts for t, _ in p] + [t for t, _ in negatives]))
        encoded = self._encode_plain(pipe, texts, "", cfg=False)
        row = {t: i for i, t in enumerate(texts)}

        def mix(weighted: list[tuple[str, float]]) -> dict[str, torch.Tensor]:
            w = torch.tensor([w for _, w in weighted], dtype=torch.float32)
            w = w / w.sum()
            out = {}
            for key, t in encoded.items():
                picked = t[[row[text] for text, _ in weighted]].float()
                out[key] = torch.einsum("n,n...->...", w.to(picked.device), picked).to(t.dtype)
            return out

        # 2. Each prompt's side(s), then the batch.
        sides: list[dict[str, torch.Tensor]] = []
        for p in parts:
            if not cfg:  # one embedding: the signed mix
                sides.append(mix(list(p)))
                continue
            side = mix([(t, w) for t, w in p if w > 0])
            away = [(t, -w) for t, w in p if w < 0] + negatives
            if away:
                unwanted = mix(away)
            else:  # the pipeline's own negative (zeros or the empty prompt)
                plain = self._encode_plain(pipe, [p[0][0]], "", cfg=True)
                unwanted = {k: plain["negative_" + k][0] for k in encoded}
            side.update({"negative_" + k: v for k, v in unwanted.items()})
            sides.append(side)
        return {key: torch.stack([side[key] for side in sides]) for key in sides[0]}

    def _encode_plain(self, pipe, prompts: list[str], negative: str, cfg: bool) -> dict[str, Any]:
        negatives = [negative] * len(prompts) if (cfg and negative) else None
        return self.loaded.family.encode(pipe, prompts, negatives, cfg, self.loaded.device)

    @staticmethod
    def _chaos_prompt(kw: dict[str, Any], seeds: list[int], a: float) -> None:
        for key in ("prompt_embeds", "pooled_prompt_embeds"):
            if key not in kw:
                continue
            t = kw[key]
            std = t.float().std().item()
            noise = torch.stack(
                [torch.randn(t.shape[1:], generator=_chaos_generator(s)) for s in seeds]
            ).to(t.device, t.dtype)
            kw[key] = t + (0.3 * a * std) * noise

    def _initial_latents(self, m: Loaded, pipe, generators, seeds, width, height, a: float) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        shape = m.family.latent_shape(pipe, len(generators), width, height)
        c = shape[1]
        latents = randn_tensor(shape, generator=generators, device=torch.device("cpu"), dtype=torch.float32)
        if a > 0:
            cells = (max(1, round(4 * height / max(width, height))), max(1, round(4 * width / max(width, height))))
            lows = []
            for s in seeds:
                low = torch.randn((1, c, *cells), generator=_chaos_generator(s ^ 0x5A5A))
                low = torch.nn.functional.interpolate(low, size=shape[2:], mode="bicubic", align_corners=False)
                low = (low - low.mean(dim=(2, 3), keepdim=True)) / low.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
                lows.append(low)
            latents = (latents + a * torch.cat(lows)) / math.sqrt(1.0 + a * a)
        return m.family.pack(pipe, latents).to(m.device, m.dtype)

    @staticmethod
    def _ip_embeds(m: Loaded, conditioning: list[float] | None, b: int, cfg: bool) -> torch.Tensor:
        """(B, 1, D) without guidance; (2B, 1, D) = [negative zeros; positive] with guidance."""
        d = m.ip_embed_dim
        if conditioning is None:
            pos = torch.zeros((b, 1, d))
        else:
            pos = torch.tensor(conditioning, dtype=torch.float32).view(1, 1, d).expand(b, 1, d)
        t = torch.cat([torch.zeros_like(pos), pos]) if cfg else pos
        return t.to(m.device, m.dtype).contiguous()
