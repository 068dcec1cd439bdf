"""Model presets: which weights a worker loads and how it drives them.

Pure data, no torch: the bot imports this module to validate `--v PRESET`
and to read the per-preset taste calibration (tau_max, lambda_max).

A built-in preset names hub ids; its files download into the standard hub
cache on first use on a machine with internet (`python -m engine.worker
--check` reports what is missing). The `tiny` preset is built locally from
configs with random seeded weights (engine/models.py: build_tiny) and then
loaded through exactly the same from_pretrained / load_ip_adapter /
open_clip.create_model_and_transforms calls as a real preset.

Owners add presets in a TOML file (`presets.toml` in the data directory, or
the file `TASTEMAKER_PRESETS` names): a family (`pipeline`: sdxl, sd15, flux,
sd3), a hub repo or a single-file checkpoint, LoRAs, quantisation and
offload, sampling settings, the IP-Adapter and the taste calibration. `load_presets(settings)` reads and validates it (pydantic;
every error names the preset, the field and the problem) and installs the
merged registry in `PRESETS`, so `get_preset` and `--v` know file presets in
every process that called it: the bot at start (bot/resources.py) and each
worker (engine/worker.py). Remote workers need the same file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PipelineKind = Literal["sdxl", "sd15", "flux", "sd3", "tiny"]
# Quantised weights (diffusers' own support): nf4 = bitsandbytes 4-bit (CUDA), int8 and
# fp8 = torchao weight-only; a .gguf checkpoint comes quantised already.
Quantize = Literal["nf4", "int8", "fp8"]
# CPU offload (diffusers): "model" moves each component to the GPU while it runs,
# "sequential" streams layer by layer (least memory, slowest).
Offload = Literal["none", "model", "sequential"]
# The families whose transformer single files and GGUF files diffusers loads (engine/families).
TRANSFORMER_FAMILIES = ("flux", "sd3")

# The tiny preset's OpenCLIP architecture name, registered with open_clip at
# load time from the config that build_tiny writes.
TINY_OPENCLIP_MODEL = "tastemaker-tiny-clip"
# The taste space: OpenCLIP ViT-H-14. Only an IP-Adapter trained on this encoder
# can be steered by a taste vector (--p) or a style reference (--sref).
TASTE_OPENCLIP_MODEL = "ViT-H-14"
TASTE_OPENCLIP_PRETRAINED = "laion2b_s32b_b79k"

PRESETS_FILE_NAME = "presets.toml"


@dataclass(frozen=True)
class Lora:
    """A LoRA fused into the preset's weights at load: a local file, or a hub repo (+ weight file)."""

    source: str
    weight: float = 1.0
    weight_name: str | None = None  # the file inside a hub repo


VideoOffload = Literal["none", "model", "sequential"]


@dataclass(frozen=True)
class VideoModel:
    """A preset's image-to-video model (Animate; engine/video.py): a diffusers WanImageToVideoPipeline
    that takes a start frame and, for Loop and --end, a last frame (Wan 2.2 I2V's layout)."""

    repo: str  # a hub id or a local diffusers folder; TINY_VIDEO: built locally with random weights
    description: str = ""
    base_size: int = 640  # pixels per side at 1:1 (480p: 832x448 at 16:9)
    frames: int = 81  # a clip: 4k + 1 frames (Wan's VAE packs 4 frames a latent)
    extend_frames: int = 65  # an Extend adds these, less the frame it starts from
    fps: int = 16
    steps: int = 40
    guidance: float = 3.5
    offload: VideoOffload = "model"  # diffusers' CPU offload on CUDA: "model" moves whole models in turn
    fp8: bool = True  # keep the transformers' weights in fp8 on CUDA (computed in bf16): a 14B one fits 24 GB
    motion_low: str = "subtle natural motion, slow steady camera"
    motion_high: str = "dynamic motion, energetic movement, moving camera"
    negative: str = "static, still image, blurry, distorted, low quality, jpeg artifacts, watermark, text"


TINY_VIDEO = "tiny-video"  # VideoModel.repo of the random-weight build (engine/video.py build_tiny_video)
WAN_I2V = VideoModel(
    repo="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
    description="Wan 2.2 image-to-video A14B (Apache-2.0): 5 s clips at 480p, 16 fps",
)
TINY_VIDEO_MODEL = VideoModel(
    repo=TINY_VIDEO, description="Tiny random-weight Wan image-to-video (tests; makes noise)",
    base_size=64, frames=9, extend_frames=5, fps=8, steps=2, guidance=3.0, offload="none", fp8=False,
)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    kind: PipelineKind
    # Diffusion weights: a hub repo id or local diffusers folder (`base_repo`), or
    # one single-file checkpoint (`single_file`, original SD layout) read with
    # diffusers' from_single_file against the diffusers configs in `config_repo`.
    base_repo: str | None = None
    single_file: str | None = None
    config_repo: str | None = None
    unet_repo: str | None = None  # optional UNet override: a repo with a diffusers UNet ...
    unet_subfolder: str | None = None
    unet_weight: str | None = None  # ... or one weight file in that repo (diffusers layout), over base_repo's UNet config
    variant: str | None = "fp16"  # weight-file variant to fetch (cast to the run dtype on load)
    loras: tuple[Lora, ...] = ()
    # Scheduler: a diffusers scheduler class name and options, made from the model's own
    # scheduler config (None: the model's own scheduler).
    scheduler: str | None = None
    scheduler_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # IP-Adapter (the plain variant, not "plus"): repo, subfolder, weight file, and the
    # image encoder it was trained with; only one trained on the taste space steers.
    ip_adapter_repo: str | None = None
    ip_adapter_subfolder: str = ""
    ip_adapter_weight: str = ""
    ip_adapter_encoder: str = TASTE_OPENCLIP_MODEL
    # OpenCLIP: the embedding space of taste vectors and the IP-Adapter image encoder.
    openclip_model: str = TASTE_OPENCLIP_MODEL
    openclip_pretrained: str = TASTE_OPENCLIP_PRETRAINED
    embed_dim: int = 1024
    # Sampling.
    base_size: int = 1024  # pixels per side at 1:1
    steps: int = 4
    guidance_scale: float = 0.0  # <= 1 means no classifier-free guidance (distilled few-step models)
    upscale_strength: float = 0.3  # img2img strength of the x2 "hires fix"
    # Taste calibration (DESIGN "Conditioning with strength s"): tau(s) and lambda(s)
    # reach these at s = 1000; the bot maps s onto them. Not yet measured on real
    # weights: bench/steer_bench.py --preset NAME on a GPU prints the values to set.
    taste_tau_max: float = 3.0
    taste_lambda_max: float = 0.8
    # Fitting the GPU: quantised denoiser (and T5) weights, CPU offload.
    quantize: Quantize | None = None
    offload: Offload = "none"
    licence: str = ""  # the weights' licence, named by `make check`
    video: VideoModel | None = WAN_I2V  # Animate's model; None: this preset doesn't animate
    source: str = "built-in"  # or the presets file it came from

    @property
    def uses_cfg(self) -> bool:
        """True when the preset samples with classifier-free guidance."""
        return self.guidance_scale > 1.0

    @property
    def has_ip_adapter(self) -> bool:
        """An IP-Adapter is loaded: only one trained on the embedder's space is."""
        return self.kind == "tiny" or (self.ip_adapter_repo is not None and self.reads_images)

    @property
    def reads_images(self) -> bool:
        """Its IP-Adapter reads the taste space: --p steers through it, and image prompts,
        /blend and --sref links work."""
        if self.kind == "tiny":
            return True
        return self.ip_adapter_repo is not None and self.ip_adapter_encoder == self.openclip_model

    @property
    def steering(self) -> Literal["adapter", "words"]:
        """How --p steers (docs/ARCHITECTURE.md "Steering on every family"): through the
        IP-Adapter where it reads the taste space, else by the taste's style words in the prompt.
        --q 2's best-of-n by the member's scorer works on both."""
        return "adapter" if self.reads_images else "words"

    @property
    def can_tile(self) -> bool:
        """--tile pads the UNet's and VAE's convolutions circularly: the transformer families have no UNet."""
        return self.kind not in TRANSFORMER_FAMILIES

    def gpu_estimate(self) -> GpuEstimate:
        """The GPU memory this preset needs as configured (an estimate: see GpuEstimate)."""
        return estimate_gpu(self)


SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SD15_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
SD35_LARGE = "stabilityai/stable-diffusion-3.5-large"
# Where a single file's other parts and configs come from, per family (`config` overrides):
# a flux or sd3 checkpoint is the transformer alone, the rest (text encoders, VAE) comes from here.
FAMILY_BASES = {"sdxl": SDXL_BASE, "sd15": SD15_BASE, "flux": FLUX_SCHNELL, "sd3": SD35_LARGE}
# The plain ViT-H IP-Adapters, per pipeline kind: (repo, subfolder, weight file).
VIT_H_IP_ADAPTERS = {
    "sdxl": ("h94/IP-Adapter", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"),
    "sd15": ("h94/IP-Adapter", "models", "ip-adapter_sd15.safetensors"),
}


def _vit_h(kind: str) -> dict[str, str]:
    repo, subfolder, weight = VIT_H_IP_ADAPTERS[kind]
    return {"ip_adapter_repo": repo, "ip_adapter_subfolder": subfolder, "ip_adapter_weight": weight}


BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        name="sdxl-lightning",
        description="SDXL-Lightning: SDXL base with ByteDance's 4-step UNet, 1024 px, no guidance (default)",
        kind="sdxl",
        base_repo=SDXL_BASE,
        unet_repo="ByteDance/SDXL-Lightning",
        unet_weight="sdxl_lightning_4step_unet.safetensors",
        # Lightning was distilled for Euler with trailing timesteps (its model card).
        scheduler="EulerDiscreteScheduler",
        scheduler_options={"timestep_spacing": "trailing"},
        **_vit_h("sdxl"),
        base_size=1024,
        steps=4,
        guidance_scale=0.0,
        upscale_strength=0.3,
        taste_tau_max=3.0,
        taste_lambda_max=0.7,
        licence="CreativeML Open RAIL++-M (SDXL base and SDXL-Lightning)",
    ),
    Preset(
        name="fast",
        description="SDXL Turbo: SDXL-class, 4 steps without guidance, 512 px (fastest; was `sdxl-turbo`)",
        kind="sdxl",
        base_repo="stabilityai/sdxl-turbo",
        **_vit_h("sdxl"),
        base_size=512,  # SDXL Turbo was distilled at 512x512; upscale x2 gives 1024
        steps=4,
        guidance_scale=0.0,
        upscale_strength=0.3,
        taste_tau_max=3.0,
        taste_lambda_max=0.7,
        licence="Stability AI SDXL Turbo licence (limits commercial use)",
    ),
    Preset(
        name="sd15",
        description="Stable Diffusion 1.5: smaller and lighter, 25 steps (DPM-Solver++) with guidance, 512 px",
        kind="sd15",
        base_repo=SD15_BASE,
        scheduler="DPMSolverMultistepScheduler",
        **_vit_h("sd15"),
        base_size=512,
        steps=25,
        guidance_scale=7.0,
        upscale_strength=0.35,
        taste_tau_max=3.0,
        taste_lambda_max=0.8,
        licence="CreativeML Open RAIL-M",
    ),
    Preset(
        name="flux-schnell",
        description="FLUX.1 [schnell]: 12 B rectified-flow transformer, 4 steps without guidance, 1024 px, int8",
        kind="flux",
        base_repo=FLUX_SCHNELL,
        variant=None,  # the repo ships bf16 weights only
        ip_adapter_repo=None,  # no IP-Adapter reads ViT-H: --p steers by style words (and --q 2)
        base_size=1024,
        steps=4,
        guidance_scale=0.0,
        upscale_strength=0.3,
        taste_tau_max=3.0,
        taste_lambda_max=0.5,  # the weight of the taste's style words in the prompt at s = 1000
        quantize="int8",  # transformer and T5 in int8 (torchao): fits a 24 GB GPU
        licence="Apache-2.0",
    ),
    Preset(
        name="tiny",
        description="Tiny random-weight model built locally (tests and offline trials; makes noise)",
        kind="tiny",
        variant=None,
        openclip_model=TINY_OPENCLIP_MODEL,
        openclip_pretrained="",  # build_tiny's weight file
        ip_adapter_encoder=TINY_OPENCLIP_MODEL,
        embed_dim=64,
        base_size=128,
        steps=4,
        guidance_scale=3.0,  # exercises the classifier-free-guidance path
        upscale_strength=0.5,
        taste_tau_max=3.0,
        taste_lambda_max=1.0,
        video=TINY_VIDEO_MODEL,
    ),
)

# Old names that still resolve (servers' TASTEMAKER_MODEL, stored jobs and /prefer options).
ALIASES = {"sdxl-turbo": "fast"}

DEFAULT_PRESET = "sdxl-lightning"


def _registry(presets: list[Preset] | tuple[Preset, ...]) -> dict[str, Preset]:
    by_name = {p.name: p for p in presets}
    # An alias maps to its preset object (whose .name is the new name), so every
    # reader of the registry (--v, calibration, embed dim) accepts it.
    by_name.update({alias: by_name[name] for alias, name in ALIASES.items() if alias not in by_name})
    return by_name


# The registry of this process: the built-ins, plus the owner's file once
# load_presets() ran. Updated in place, so `from engine.presets import PRESETS` sees it.
PRESETS: dict[str, Preset] = _registry(BUILTIN_PRESETS)


# ----------------------------------------------------------------------------
# GPU memory, estimated (make check, the README's sizing table)
# ----------------------------------------------------------------------------

# Billions of parameters of each family's reference architecture (FLUX.1, SD 3.5 Large,
# SDXL, SD 1.5). "denoiser" and "t5" are what `quantize` quantises.
FAMILY_PARAMS: dict[str, dict[str, float]] = {
    "sd15": {"denoiser": 0.86, "text": 0.12, "vae": 0.08},
    "sdxl": {"denoiser": 2.57, "text": 0.82, "vae": 0.08},
    "flux": {"denoiser": 11.9, "t5": 4.76, "text": 0.12, "vae": 0.08},
    "sd3": {"denoiser": 8.06, "t5": 4.76, "text": 0.82, "vae": 0.08},
}
BYTES_PER_PARAM = {None: 2.0, "int8": 1.0, "fp8": 1.0, "nf4": 0.56}  # bf16; nf4 with its block scales
OPENCLIP_GB = 2.0  # ViT-H-14 in fp16: the taste space, always resident
IP_ADAPTER_GB = 0.7
# Activations and the VAE decode of a 2x2 grid at the preset's base size (1024 px for the big ones).
WORKING_GB = {"sd15": 1.5, "sdxl": 3.0, "flux": 5.0, "sd3": 4.0}


@dataclass(frozen=True)
class GpuEstimate:
    """Estimated GPU memory of a preset as configured: weights by parameter count and
    dtype, plus the working memory of a 2x2 grid. Estimates until bench/gpu_check.py
    measures the family on a GPU."""

    parts: tuple[tuple[str, float], ...]  # (component, GB resident at the peak)
    working_gb: float

    @property
    def total_gb(self) -> float:
        return sum(gb for _, gb in self.parts) + self.working_gb

    def describe(self) -> str:
        parts = ", ".join(f"{name} {gb:.1f}" for name, gb in self.parts)
        return f"≈ {self.total_gb:.0f} GB ({parts}, working {self.working_gb:.1f})"


def estimate_gpu(preset: Preset) -> GpuEstimate:
    family = "sd15" if preset.kind == "tiny" else preset.kind
    params = FAMILY_PARAMS[family]
    weights = {}
    for part, billions in params.items():
        quantised = preset.quantize if part in ("denoiser", "t5") else None
        weights[part] = billions * BYTES_PER_PARAM[quantised]
    if preset.single_file and preset.single_file.endswith(".gguf") and os.path.isfile(preset.single_file):
        weights["denoiser"] = os.path.getsize(preset.single_file) / 1e9  # GGUF stays quantised on the GPU
    if preset.offload == "model":  # one component on the GPU at a time: the largest counts
        biggest = max(weights, key=weights.get)
        weights = {f"{biggest} (offloaded: the largest at a time)": weights[biggest]}
    elif preset.offload == "sequential":  # layers stream through: about one block at a time
        weights = {"streamed layers": 0.5}
    parts = [(name, gb) for name, gb in weights.items()]
    parts.append(("OpenCLIP ViT-H", OPENCLIP_GB))
    if preset.has_ip_adapter and preset.kind != "tiny":
        parts.append(("IP-Adapter", IP_ADAPTER_GB))
    return GpuEstimate(parts=tuple(parts), working_gb=WORKING_GB[family])


class UnknownPresetError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


def preset_names() -> list[str]:
    """The names a member can pick with --v (aliases left out)."""
    return sorted(name for name, p in PRESETS.items() if p.name == name)


def get_preset(name: str) -> Preset:
    """The preset called `name` (or an alias of it); a clear error listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(f"unknown model preset {name!r}: choose one of {', '.join(preset_names())}") from None


# ----------------------------------------------------------------------------
# The owner's presets file
# ----------------------------------------------------------------------------


class PresetFileError(ValueError):
    """The presets file can't be used; the message names the file, the preset, the field and the problem."""


_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")

# The scheduler classes diffusers has (0.42; Flax ones left out), by name: the bot checks a
# preset's `scheduler` against this list without importing diffusers (it never does), and
# tests/engine/test_presets.py checks the list against the installed diffusers.
DIFFUSERS_SCHEDULERS = frozenset({
    "AmusedScheduler", "BlockRefinementScheduler", "CMStochasticIterativeScheduler", "CogVideoXDDIMScheduler",
    "CogVideoXDPMScheduler", "CosineDPMSolverMultistepScheduler", "DDIMInverseScheduler", "DDIMParallelScheduler",
    "DDIMScheduler", "DDPMParallelScheduler", "DDPMScheduler", "DDPMWuerstchenScheduler", "DEISMultistepScheduler",
    "DPMSolverMultistepInverseScheduler", "DPMSolverMultistepScheduler", "DPMSolverSDEScheduler",
    "DPMSolverSinglestepScheduler", "DiscreteDDIMScheduler", "EDMDPMSolverMultistepScheduler", "EDMEulerScheduler",
    "EntropyBoundScheduler", "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler",
    "FlowMapEulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler",
    "FlowMatchLCMScheduler", "HeliosDMDScheduler", "HeliosScheduler", "HeunDiscreteScheduler", "IPNDMScheduler",
    "KDPM2AncestralDiscreteScheduler", "KDPM2DiscreteScheduler", "KarrasVeScheduler", "LCMScheduler",
    "LMSDiscreteScheduler", "LTXEulerAncestralRFScheduler", "MiniMaxH3Scheduler", "PNDMScheduler", "PiflowScheduler",
    "RFD4ProteinaScheduler", "RePaintScheduler", "SASolverScheduler", "SCMScheduler", "ScoreSdeVeScheduler",
    "TCDScheduler", "UnCLIPScheduler", "UniPCMultistepScheduler", "VQDiffusionScheduler",
})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraEntry(_Strict):
    path: str | None = Field(None, description="a local .safetensors LoRA file")
    repo: str | None = Field(None, description="or a hub repo holding it")
    weight_name: str | None = None
    weight: float = Field(1.0, ge=-4.0, le=4.0)

    @model_validator(mode="after")
    def _one_source(self) -> LoraEntry:
        if (self.path is None) == (self.repo is None):
            raise ValueError("give either `path` (a local file) or `repo` (a hub id), not both or neither")
        return self


class IpAdapterEntry(_Strict):
    repo: str
    subfolder: str = ""
    weight: str
    image_encoder: str = Field(TASTE_OPENCLIP_MODEL, description="the OpenCLIP architecture it was trained with")


class TasteEntry(_Strict):
    tau_max: float = Field(3.0, gt=0, le=20)
    lambda_max: float = Field(0.8, gt=0, le=2)


class VideoEntry(_Strict):
    """A preset's `[presets.NAME.video]` table: its image-to-video model (a WanImageToVideoPipeline)."""

    repo: str = WAN_I2V.repo
    base_size: int = Field(WAN_I2V.base_size, ge=256, le=1280, multiple_of=64)
    frames: int = Field(WAN_I2V.frames, ge=5, le=161)
    extend_frames: int = Field(WAN_I2V.extend_frames, ge=5, le=161)
    fps: int = Field(WAN_I2V.fps, ge=4, le=30)
    steps: int = Field(WAN_I2V.steps, ge=1, le=100)
    guidance: float = Field(WAN_I2V.guidance, ge=0, le=20)
    offload: VideoOffload = WAN_I2V.offload
    fp8: bool = WAN_I2V.fp8

    @field_validator("frames", "extend_frames")
    @classmethod
    def _four_k_plus_one(cls, value: int) -> int:
        if value % 4 != 1:
            raise ValueError(f"{value} frames: Wan takes 4k + 1 frames, like 81 or 65")
        return value


class PresetEntry(_Strict):
    """One `[presets.NAME]` table."""

    description: str = ""
    pipeline: Literal["sdxl", "sd15", "flux", "sd3"] = "sdxl"
    repo: str | None = Field(None, description="a hub id or local diffusers folder")
    checkpoint: str | None = Field(
        None, description="a single-file .safetensors checkpoint (flux, sd3: the transformer's, or a .gguf file)"
    )
    config: str | None = Field(None, description="diffusers configs for a single file (hub id or local folder)")
    quantize: Quantize | None = None
    offload: Offload = "none"
    licence: str | None = Field(None, max_length=200, description="the weights' licence, named by make check")
    variant: str | None = None
    loras: list[LoraEntry] = []
    steps: int = Field(30, ge=1, le=150)
    guidance: float = Field(5.0, ge=0, le=30)
    scheduler: str | None = None
    scheduler_options: dict[str, str | int | float | bool] = {}
    base_size: int = Field(1024, ge=256, le=2048, multiple_of=64)
    upscale_strength: float = Field(0.3, gt=0, le=1)
    # true: the family's ViT-H adapter (sdxl, sd15; the default there); false: none (the default for flux, sd3)
    ip_adapter: IpAdapterEntry | bool | None = None
    taste: TasteEntry = TasteEntry()
    video: VideoEntry | bool = True  # true: the built-in Wan image-to-video; false: no Animate

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str | None) -> str | None:
        if value is not None and value not in DIFFUSERS_SCHEDULERS:
            close = difflib.get_close_matches(value, DIFFUSERS_SCHEDULERS, n=1, cutoff=0.85)
            hint = f"did you mean {close[0]}?" if close else "name a class like EulerDiscreteScheduler"
            raise ValueError(f"diffusers has no scheduler class {value!r}; {hint}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PresetEntry:
        if (self.repo is None) == (self.checkpoint is None):
            raise ValueError("give either `repo` (a hub id or diffusers folder) or `checkpoint` (a .safetensors file)")
        if self.config is not None and self.checkpoint is None:
            raise ValueError("`config` only applies to a single-file `checkpoint`")
        return self


# Each problem of a family's fields: (field, message); every one is reported, one line each.
def _family_problems(entry: PresetEntry) -> list[tuple[str, str]]:
    problems = []
    transformer = entry.pipeline in TRANSFORMER_FAMILIES
    if transformer and entry.ip_adapter not in (None, False):
        problems.append(("ip_adapter", f"no IP-Adapter for {entry.pipeline} reads the taste space (OpenCLIP "
                                       "ViT-H): leave it out; --p steers this family by style words"))
    if transformer and not entry.licence:
        problems.append(("licence", f"name the weights' licence for `make check` (a {entry.pipeline} model's is "
                                    "its own: FLUX.1 [dev] and its fine-tunes are non-commercial, SD 3.5 is under "
                                    "the Stability AI Community License)"))
    if entry.quantize is not None and not transformer:
        problems.append(("quantize", f"quantised weights are for the flux and sd3 families; {entry.pipeline} "
                                     "fits a GPU in bf16 (README: GPU sizing)"))
    gguf = entry.checkpoint is not None and entry.checkpoint.endswith(".gguf")
    if gguf and not transformer:
        problems.append(("checkpoint", f"a .gguf file loads as a flux or sd3 transformer, not as {entry.pipeline}"))
    if gguf and entry.quantize is not None:
        problems.append(("quantize", "a .gguf checkpoint is quantised already: leave `quantize` out"))
    return problems


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a readable .safetensors file (or .gguf file; None if it is), without torch."""
    if not path.is_file():
        return "does not exist" if not path.exists() else "is not a file"
    if path.suffix == ".gguf":
        with path.open("rb") as f:
            return None if f.read(4) == b"GGUF" else "is not a GGUF file (it does not start with GGUF)"
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if not 2 <= size <= 100_000_000 or size + 8 > path.stat().st_size:
                return "is not a .safetensors file (its header is unreadable)"
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return "is not a .safetensors file (its header is unreadable)"
    if not isinstance(header, dict) or not any(k != "__metadata__" for k in header):
        return "is not a .safetensors file (it holds no tensors)"
    return None


def _resolve(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def _file_problems(entry: PresetEntry, base: Path) -> list[str]:
    """What is wrong with the files a preset names (checkpoint, LoRAs), one `field `x`: problem` each."""
    problems = []
    if entry.checkpoint is not None:
        single = _resolve(entry.checkpoint, base)
        if (problem := _safetensors_problem(single)) is not None:
            problems.append(f"field `checkpoint`: {single} {problem}")
    for i, lora in enumerate(entry.loras):
        if lora.path is not None:
            lora_path = _resolve(lora.path, base)
            if (problem := _safetensors_problem(lora_path)) is not None:
                problems.append(f"field `loras[{i}].path`: {lora_path} {problem}")
    return problems


def _to_preset(name: str, entry: PresetEntry, file: Path) -> Preset:
    """A checked entry (``_file_problems`` found nothing) as a Preset."""
    base = file.parent
    single_file = str(_resolve(entry.checkpoint, base)) if entry.checkpoint is not None else None
    loras = tuple(
        Lora(str(_resolve(lora.path, base)), lora.weight) if lora.path is not None
        else Lora(lora.repo, lora.weight, lora.weight_name)
        for lora in entry.loras
    )
    repo = entry.repo
    if repo is not None and (local := _resolve(repo, base)).is_dir():
        repo = str(local)
    config = entry.config
    if config is not None and (local := _resolve(config, base)).is_dir():
        config = str(local)
    adapter = entry.ip_adapter if entry.ip_adapter is not None else entry.pipeline in VIT_H_IP_ADAPTERS
    if adapter is True:
        ip = _vit_h(entry.pipeline) | {"ip_adapter_encoder": TASTE_OPENCLIP_MODEL}
    elif adapter is False:
        ip = {"ip_adapter_repo": None}
    else:
        ip = {
            "ip_adapter_repo": entry.ip_adapter.repo,
            "ip_adapter_subfolder": entry.ip_adapter.subfolder,
            "ip_adapter_weight": entry.ip_adapter.weight,
            "ip_adapter_encoder": entry.ip_adapter.image_encoder,
        }
    return Preset(
        name=name,
        description=entry.description or f"{entry.pipeline} preset from {file.name}",
        kind=entry.pipeline,
        base_repo=repo,
        single_file=single_file,
        # A single file's configs: the owner's, else the base model of its family.
        config_repo=(config or FAMILY_BASES[entry.pipeline]) if single_file else None,
        variant=entry.variant,
        loras=loras,
        scheduler=entry.scheduler,
        scheduler_options=dict(entry.scheduler_options),
        **ip,
        base_size=entry.base_size,
        steps=entry.steps,
        guidance_scale=entry.guidance,
        upscale_strength=entry.upscale_strength,
        taste_tau_max=entry.taste.tau_max,
        taste_lambda_max=entry.taste.lambda_max,
        quantize=entry.quantize,
        offload=entry.offload,
        licence=entry.licence or "",
        video=_video(entry.video, base),
        source=str(file),
    )


def _video(entry: VideoEntry | bool, base: Path) -> VideoModel | None:
    if entry is True:
        return WAN_I2V
    if entry is False:
        return None
    fields = entry.model_dump()
    if (local := _resolve(entry.repo, base)).is_dir():
        fields["repo"] = str(local)
    return VideoModel(**fields, description=f"image-to-video from {fields['repo']}")


def _describe(error: ValidationError, where: str) -> list[str]:
    """One line per problem pydantic found in one preset's table (`where` names the file and the preset)."""
    lines = []
    for e in error.errors():
        # Union branches add their type name to the path (ip_adapter.IpAdapterEntry...): drop them.
        loc = [str(x) for x in e["loc"] if not str(x)[:1].isupper() and x != "bool"]
        field_ = f", field `{'.'.join(loc)}`" if loc else ""
        lines.append(f"{where}{field_}: {e['msg']}")
    return list(dict.fromkeys(lines))


def read_presets(file: str | os.PathLike) -> list[Preset]:
    """The presets declared in a TOML file, validated. PresetFileError on any problem: every
    problem of every preset (its fields and the files it names), one line each."""
    file = Path(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise PresetFileError(f"{file}: cannot read the presets file ({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PresetFileError(f"{file}: not valid TOML: {error}") from None
    problems = [f"{file}: field `{key}`: Extra inputs are not permitted (presets go in [presets.NAME] tables)"
                for key in data if key != "presets"]
    tables = data.get("presets", {})
    if not isinstance(tables, dict):
        raise PresetFileError("\n".join([*problems, f"{file}: field `presets`: must be [presets.NAME] tables"]))
    builtin = {p.name for p in BUILTIN_PRESETS} | set(ALIASES)
    presets = []
    for name, table in tables.items():
        where = f"{file}: preset {name!r}"
        if not _NAME_RE.fullmatch(name):
            problems.append(f"{where}: a name is 1-32 lowercase letters, digits, '.', '_' or '-' (it is typed after --v)")
            continue
        if name in builtin:
            problems.append(f"{where}: that name is a built-in preset; choose another")
            continue
        try:
            entry = PresetEntry.model_validate(table)
        except ValidationError as error:
            problems += _describe(error, where)
            continue
        found = _file_problems(entry, file.parent) + [
            f"field `{field_}`: {message}" for field_, message in _family_problems(entry)
        ]
        problems += [f"{where}, {problem}" for problem in found]
        if not found:
            presets.append(_to_preset(name, entry, file))
    if problems:
        raise PresetFileError("\n".join(problems))
    return presets


def presets_file(data_dir: str | os.PathLike, configured: str | os.PathLike | None = None) -> Path | None:
    """The presets file in use: `configured` (TASTEMAKER_PRESETS; must exist), else
    `<data_dir>/presets.toml` when there is one, else None."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise PresetFileError(f"TASTEMAKER_PRESETS names {path}, which is not a file")
        return path
    default = Path(data_dir) / PRESETS_FILE_NAME
    return default if default.is_file() else None


def load_presets(settings: Any = None, *, file: str | os.PathLike | None = None) -> dict[str, Preset]:
    """Read the owner's presets (from `settings.presets_path`, or `file`), validate
    them, and install built-ins + file presets as this process's PRESETS.
    With neither, only the built-ins. Returns the registry."""
    path = Path(file) if file is not None else (settings.presets_path if settings is not None else None)
    merged = _registry([*BUILTIN_PRESETS, *(read_presets(path) if path is not None else [])])
    model = getattr(settings, "model", None)
    if model is not None and model not in merged:
        names = ", ".join(sorted(n for n, p in merged.items() if p.name == n))
        raise PresetFileError(f"TASTEMAKER_MODEL={model!r} is not a model preset: choose one of {names}")
    PRESETS.clear()
    PRESETS.update(merged)
    return PRESETS
