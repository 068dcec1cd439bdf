"""Model families: what differs between SD 1.5, SDXL, FLUX and SD 3.5 (DESIGN "Model families").

A preset names its family (`Preset.kind`; the tiny preset is SD 1.5's layout).
Each family supplies its diffusers pipelines per job kind (txt2img, img2img,
inpaint: the last two made `from_pipe` of the first, sharing every module),
how prompts become embeddings, the latents' layout, previews, the components
`quantize` applies to, and the files `--check` looks for. `engine/generate.py`
keeps the one sample -> embed -> result path and asks the family for these.

How each family applies a taste (`Preset.steering`, pure data the bot reads):
SD 1.5 and SDXL through their ViT-H IP-Adapter (`ip_adapter_embeds` here);
FLUX and SD 3.5, which have no IP-Adapter reading the taste space, through the
taste's style words mixed into the prompt (generate.py, every family alike);
and best-of-n by the member's scorer at `--q 2` on all of them.

Only the worker imports this package (torch).
"""

from __future__ import annotations

from engine.families import flux, sd3, sd15, sdxl
from engine.families.base import Family
from engine.presets import Preset

FAMILIES: dict[str, Family] = {
    "sd15": sd15.FAMILY, "tiny": sd15.FAMILY, "sdxl": sdxl.FAMILY, "flux": flux.FAMILY, "sd3": sd3.FAMILY,
}


def family_for(preset: Preset) -> Family:
    """The family of a preset (tiny is SD 1.5's layout)."""
    return FAMILIES[preset.kind]
