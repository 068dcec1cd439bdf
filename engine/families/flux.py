"""FLUX.1 ([schnell], [dev] and fine-tunes in its architecture): a 12 B rectified-flow transformer,
CLIP-L (pooled) and T5-XXL text encoders, 16-channel latents packed 2x2 into tokens.

Guidance is distilled: [schnell] takes none, [dev] takes it as an input of the transformer
(`guidance_embeds`), so no negative batch is drawn and `--no` has no effect, as on the
guidance-free SDXL presets. No IP-Adapter for FLUX reads the taste space, so --p steers by
the taste's style words (engine/generate.py) and best-of-n at --q 2. --tile is refused: the
transformer has no convolutions to pad circularly.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.families.base import COMPONENT, SCHEDULER, T5_TOKENIZER_FILES, TEXT_MODEL, TOKENIZER_FILES, Family


class Flux(Family):
    name = "flux"
    denoiser_name = "transformer"
    quantized_components = ("transformer", "text_encoder_2")
    has_ip_adapter = False
    components = {
        "transformer": COMPONENT,
        "vae": COMPONENT,
        "text_encoder": TEXT_MODEL,
        "tokenizer": (TOKENIZER_FILES, None),
        "text_encoder_2": TEXT_MODEL,
        "tokenizer_2": (T5_TOKENIZER_FILES, None),
        "scheduler": SCHEDULER,
    }

    def pipeline_classes(self):
        from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline, FluxPipeline

        return FluxPipeline, FluxImg2ImgPipeline, FluxInpaintPipeline

    def transformer_class(self):
        from diffusers import FluxTransformer2DModel

        return FluxTransformer2DModel

    def uses_cfg(self, pipe, guidance: float) -> bool:
        return False

    @staticmethod
    def text_tokens(pipe) -> int:
        """T5 tokens: [schnell] was trained with 256, [dev] (guidance embedded) with 512."""
        return 512 if pipe.transformer.config.guidance_embeds else 256

    def encode(self, pipe, prompts, negatives, cfg, device) -> dict[str, Any]:
        pe, ppe, _ = pipe.encode_prompt(
            prompt=prompts, device=device, num_images_per_prompt=1, max_sequence_length=self.text_tokens(pipe)
        )
        return {"prompt_embeds": pe, "pooled_prompt_embeds": ppe}

    def img2img_size(self, width: int, height: int) -> dict[str, int]:
        return {"width": width, "height": height}

    def latent_shape(self, pipe, batch, width, height):
        f = pipe.vae_scale_factor * 2  # the VAE's 8x, then 2x2 patches
        return (batch, pipe.transformer.config.in_channels // 4, 2 * (height // f), 2 * (width // f))

    def pack(self, pipe, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        return pipe._pack_latents(latents, b, c, h, w)

    def unpack(self, pipe, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        return pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)


FAMILY = Flux()
