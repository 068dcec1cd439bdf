"""Stable Diffusion 1.5 (and the tiny preset, its layout): a UNet, one CLIP text encoder, 4-channel latents.

Taste: the plain ViT-H IP-Adapter (h94/IP-Adapter `ip-adapter_sd15`) reads the taste space itself.
"""

from __future__ import annotations

from typing import Any

from engine.families.base import COMPONENT, SCHEDULER, TEXT_MODEL, TOKENIZER_FILES, Family


class SD15(Family):
    name = "sd15"
    components = {
        "unet": COMPONENT,
        "vae": COMPONENT,
        "text_encoder": TEXT_MODEL,
        "tokenizer": (TOKENIZER_FILES, None),
        "scheduler": SCHEDULER,
    }
    # Keturn's linear fit of SD's VAE (as ComfyUI and A1111 use it).
    latent_rgb = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))

    def pipeline_classes(self):
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline

        return StableDiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    def load_kwargs(self) -> dict[str, Any]:
        # The bot does its own moderation (banned words, allowed channels, the NSFW check);
        # SD 1.5's safety checker would cost another CLIP model on the GPU.
        return {"safety_checker": None, "requires_safety_checker": False}

    def encode(self, pipe, prompts, negatives, cfg, device) -> dict[str, Any]:
        pe, npe = pipe.encode_prompt(prompts, device, 1, cfg, negative_prompt=negatives)
        kw = {"prompt_embeds": pe}
        if cfg:
            kw["negative_prompt_embeds"] = npe
        return kw


FAMILY = SD15()
