"""Model presets: which weights a worker loads and how it drives them.

Pure data, no torch: the bot imports this module to validate `--v PRESET`
and to read the per-preset taste calibration (tau_max, lambda_max).

A real preset names hub ids; its files download into the standard hub cache
on first use on a machine with internet (`python -m engine.worker --check`
reports what is missing). The `tiny` preset is built locally from configs
with random seeded weights (engine/models.py: build_tiny) and then loaded
through exactly the same from_pretrained / load_ip_adapter /
open_clip.create_model_and_transforms calls as a real preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PipelineKind = Literal["sdxl", "sd15", "tiny"]

# The tiny preset's OpenCLIP architecture name, registered with open_clip at
# load time from the config that build_tiny writes.
TINY_OPENCLIP_MODEL = "tastemaker-tiny-clip"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    kind: PipelineKind
    # Diffusion weights: a hub repo id (real presets). `tiny` builds its own.
    base_repo: str | None = None
    unet_repo: str | None = None  # optional UNet override (repo with a diffusers UNet)
    unet_subfolder: str | None = None
    variant: str | None = "fp16"  # weight-file variant to fetch (cast to the run dtype on load)
    # IP-Adapter (the plain ViT-H variant, not "plus"): repo, subfolder, weight file.
    ip_adapter_repo: str | None = None
    ip_adapter_subfolder: str = ""
    ip_adapter_weight: str = ""
    # OpenCLIP: the embedding space of taste vectors and the IP-Adapter image encoder.
    openclip_model: str = "ViT-H-14"
    openclip_pretrained: str = "laion2b_s32b_b79k"
    embed_dim: int = 1024
    # Sampling.
    base_size: int = 1024  # pixels per side at 1:1
    steps: int = 4
    guidance_scale: float = 0.0  # <= 1 means no classifier-free guidance (turbo-style models)
    upscale_strength: float = 0.3  # img2img strength of the x2 "hires fix"
    # Taste calibration (DESIGN "Conditioning with strength s"): tau(s) and lambda(s)
    # reach these at s = 1000; the bot maps s onto them. Not yet measured on real
    # weights: bench/steer_bench.py --preset NAME on a GPU prints the values to set.
    taste_tau_max: float = 3.0
    taste_lambda_max: float = 0.8

    @property
    def uses_cfg(self) -> bool:
        """True when the preset samples with classifier-free guidance."""
        return self.guidance_scale > 1.0

    @property
    def has_ip_adapter(self) -> bool:
        return self.kind == "tiny" or self.ip_adapter_repo is not None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="sdxl-turbo",
            description="SDXL Turbo: SDXL-class, 4 steps without guidance, 512 px (default)",
            kind="sdxl",
            base_repo="stabilityai/sdxl-turbo",
            ip_adapter_repo="h94/IP-Adapter",
            ip_adapter_subfolder="sdxl_models",
            ip_adapter_weight="ip-adapter_sdxl_vit-h.safetensors",
            base_size=512,  # SDXL Turbo was distilled at 512x512; upscale x2 gives 1024
            steps=4,
            guidance_scale=0.0,
            upscale_strength=0.3,
            taste_tau_max=3.0,
            taste_lambda_max=0.7,
        ),
        Preset(
            name="sd15",
            description="Stable Diffusion 1.5: smaller and lighter, 25 steps (DPM-Solver++) with guidance, 512 px",
            kind="sd15",
            base_repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
            ip_adapter_repo="h94/IP-Adapter",
            ip_adapter_subfolder="models",
            ip_adapter_weight="ip-adapter_sd15.safetensors",
            base_size=512,
            steps=25,
            guidance_scale=7.0,
            upscale_strength=0.35,
            taste_tau_max=3.0,
            taste_lambda_max=0.8,
        ),
        Preset(
            name="tiny",
            description="Tiny random-weight model built locally (tests and offline trials; makes noise)",
            kind="tiny",
            variant=None,
            openclip_model=TINY_OPENCLIP_MODEL,
            openclip_pretrained="",  # build_tiny's weight file
            embed_dim=64,
            base_size=128,
            steps=4,
            guidance_scale=3.0,  # exercises the classifier-free-guidance path
            upscale_strength=0.5,
            taste_tau_max=3.0,
            taste_lambda_max=1.0,
        ),
    )
}

DEFAULT_PRESET = "sdxl-turbo"


class UnknownPresetError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


def get_preset(name: str) -> Preset:
    """The preset called `name`; a clear error listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(
            f"unknown model preset {name!r}: choose one of {', '.join(sorted(PRESETS))}"
        ) from None
