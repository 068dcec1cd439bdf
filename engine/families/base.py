"""The Family base class: the SD-like defaults each family module overrides (see engine/families/__init__.py)."""

from __future__ import annotations

from typing import Any

import torch

# component -> (config file(s), weight stem or None for tokenizers/schedulers), as --check looks for them
TOKENIZER_FILES = ("vocab.json", "tokenizer.json")
T5_TOKENIZER_FILES = ("spiece.model", "tokenizer.json")
COMPONENT = (("config.json",), "diffusion_pytorch_model")
TEXT_MODEL = (("config.json",), "model")
SCHEDULER = (("scheduler_config.json",), None)


class Family:
    """The SD-like defaults (a UNet, 4-channel latents, CLIP text encoders); subclasses override."""

    name = ""
    denoiser_name = "unet"
    # What `quantize` quantises: the denoiser, and the T5 text encoder where there is one.
    quantized_components: tuple[str, ...] = ("unet",)
    components: dict[str, tuple[tuple[str, ...], str | None]] = {}
    has_ip_adapter = True  # a ViT-H IP-Adapter exists for it (loaded through diffusers' load_ip_adapter)

    def pipeline_classes(self) -> tuple[type, type, type]:
        """(txt2img, img2img, inpaint)."""
        raise NotImplementedError

    def transformer_class(self) -> type | None:
        """The model class a single-file (or GGUF) transformer loads as; None: whole-pipeline single files."""
        return None

    def load_kwargs(self) -> dict[str, Any]:
        return {}

    def denoiser(self, pipe) -> torch.nn.Module:
        return getattr(pipe, self.denoiser_name)

    def uses_cfg(self, pipe, guidance: float) -> bool:
        """The pipelines' own rule (do_classifier_free_guidance)."""
        return guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None

    def encode(self, pipe, prompts: list[str], negatives: list[str] | None, cfg: bool, device) -> dict[str, Any]:
        """The pipeline's embedding keyword arguments (per-image tensors only; batch first)."""
        raise NotImplementedError

    def img2img_size(self, width: int, height: int) -> dict[str, int]:
        """SD's img2img draws at the image's size; the transformer pipelines take it explicitly."""
        return {}

    # -- latents ---------------------------------------------------------------------------

    def latent_shape(self, pipe, batch: int, width: int, height: int) -> tuple[int, int, int, int]:
        f = pipe.vae_scale_factor
        return (batch, self.denoiser(pipe).config.in_channels, height // f, width // f)

    def pack(self, pipe, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents in the layout the pipeline takes."""
        return latents

    def unpack(self, pipe, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """The pipeline's latents as (B, C, h, w) (previews)."""
        return latents

    # Linear latent -> RGB (rows: latent channels; columns: R, G, B) for cheap previews;
    # None: the VAE decodes a downsampled copy instead.
    latent_rgb: tuple[tuple[float, ...], ...] | None = None
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def preview_rgb(self, pipe, latents: torch.Tensor, max_px: int) -> torch.Tensor:
        """Up to 4 images as (n, 3, h, w) in [-1, 1], from (B, C, h, w) latents."""
        lat = latents[:4].detach().float().cpu()
        if self.latent_rgb is not None:
            m = torch.tensor(self.latent_rgb, dtype=torch.float32)
            rgb = torch.einsum("bchw,cr->brhw", lat[:, : m.shape[0]], m)
            return rgb + torch.tensor(self.latent_rgb_bias).view(1, 3, 1, 1)
        # No published linear map for 16-channel latents: decode a copy shrunk to the preview's size.
        f = pipe.vae_scale_factor
        side = max(1, max_px // f)
        scale = side / max(lat.shape[-2:])
        if scale < 1:
            size = (max(1, round(lat.shape[-2] * scale)), max(1, round(lat.shape[-1] * scale)))
            lat = torch.nn.functional.interpolate(lat, size=size, mode="area")
        vae = pipe.vae
        config = vae.config
        lat = lat / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)
        with torch.inference_mode():
            image = vae.decode(lat.to(vae.device, vae.dtype), return_dict=False)[0]
        return image.float().cpu()
