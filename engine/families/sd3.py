"""Stable Diffusion 3.5 (Medium, Large, Large Turbo): an MMDiT transformer, two CLIP text encoders
and T5-XXL, 16-channel latents, classifier-free guidance (none for Turbo).

The IP-Adapter released for SD 3.5 Large reads SigLIP patch features, a sequence no single
taste-space vector maps onto, so --p steers by the taste's style words (engine/generate.py)
and best-of-n at --q 2. --tile is refused: the transformer has no convolutions to pad.
"""

from __future__ import annotations

from typing import Any

from engine.families.base import COMPONENT, SCHEDULER, T5_TOKENIZER_FILES, TEXT_MODEL, TOKENIZER_FILES, Family

T5_TOKENS = 256  # the pipelines' default


class SD3(Family):
    name = "sd3"
    denoiser_name = "transformer"
    quantized_components = ("transformer", "text_encoder_3")
    has_ip_adapter = False
    components = {
        "transformer": COMPONENT,
        "vae": COMPONENT,
        "text_encoder": TEXT_MODEL,
        "tokenizer": (TOKENIZER_FILES, None),
        "text_encoder_2": TEXT_MODEL,
        "tokenizer_2": (TOKENIZER_FILES, None),
        "text_encoder_3": TEXT_MODEL,
        "tokenizer_3": (T5_TOKENIZER_FILES, None),
        "scheduler": SCHEDULER,
    }

    def pipeline_classes(self):
        from diffusers import StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline, StableDiffusion3Pipeline

        return StableDiffusion3Pipeline, StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline

    def transformer_class(self):
        from diffusers import SD3Transformer2DModel

        return SD3Transformer2DModel

    def uses_cfg(self, pipe, guidance: float) -> bool:
        return guidance > 1.0

    def encode(self, pipe, prompts, negatives, cfg, device) -> dict[str, Any]:
        pe, npe, ppe, nppe = pipe.encode_prompt(
            prompt=prompts, prompt_2=None, prompt_3=None, device=device, num_images_per_prompt=1,
            do_classifier_free_guidance=cfg, negative_prompt=negatives, max_sequence_length=T5_TOKENS,
        )
        kw = {"prompt_embeds": pe, "pooled_prompt_embeds": ppe}
        if cfg:
            kw.update(negative_prompt_embeds=npe, negative_pooled_prompt_embeds=nppe)
        return kw

    def img2img_size(self, width: int, height: int) -> dict[str, int]:
        return {"width": width, "height": height}


FAMILY = SD3()
