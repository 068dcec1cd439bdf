"""SDXL: a UNet with two CLIP text encoders (pooled embeddings too), 4-channel latents.

Taste: the plain ViT-H IP-Adapter for SDXL (h94/IP-Adapter `ip-adapter_sdxl_vit-h`) reads the taste space itself.
"""

from __future__ import annotations

from typing import Any

from engine.families.base import COMPONENT, SCHEDULER, TEXT_MODEL, TOKENIZER_FILES, Family


class SDXL(Family):
    name = "sdxl"
    components = {
        "unet": COMPONENT,
        "vae": COMPONENT,
        "text_encoder": TEXT_MODEL,
        "tokenizer": (TOKENIZER_FILES, None),
        "scheduler": SCHEDULER,
        "text_encoder_2": TEXT_MODEL,
        "tokenizer_2": (TOKENIZER_FILES, None),
    }
    latent_rgb = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
    latent_rgb_bias = (0.1084, -0.0175, -0.0011)

    def pipeline_classes(self):
        from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline

        return StableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline

    def encode(self, pipe, prompts, negatives, cfg, device) -> dict[str, Any]:
        pe, npe, ppe, nppe = pipe.encode_prompt(
            prompt=prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
            negative_prompt=negatives,
        )
        kw = {"prompt_embeds": pe, "pooled_prompt_embeds": ppe}
        if cfg:
            kw.update(negative_prompt_embeds=npe, negative_pooled_prompt_embeds=nppe)
        return kw


FAMILY = SDXL()
