"""OpenCLIP embeddings: the taste space (DESIGN "Taste model").

The default is ViT-H-14 `laion2b_s32b_b79k` (1024-d), the space the ViT-H
IP-Adapters read, so a taste vector can steer generation directly. Tests use
the tiny preset's OpenCLIP; both load through
`open_clip.create_model_and_transforms`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.images import decode_image


class Embedder:
    """An OpenCLIP model with its preprocessing and tokenizer."""

    def __init__(self, model, preprocess, tokenizer, device, name: str = ""):
        import torch

        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.name = name
        self.dim = int(getattr(model, "embed_dim", 0) or self._probe_dim())

    @classmethod
    def load(cls, model_name: str = "ViT-H-14", pretrained: str = "laion2b_s32b_b79k", device="cpu") -> Embedder:
        """Load through `open_clip.create_model_and_transforms` (a hub tag or a weight file)."""
        import open_clip
        import torch

        device = torch.device(device)
        precision = "fp16" if device.type == "cuda" else "fp32"
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained or None, precision=precision, device=device
        )
        tokenizer = open_clip.get_tokenizer(model_name)
        label = f"{model_name}/{os.path.basename(pretrained) if os.path.isfile(pretrained) else pretrained}"
        return cls(model, preprocess, tokenizer, device, name=label)

    def _probe_dim(self) -> int:
        return int(self.embed_texts([""]).shape[1])

    def _dtype(self):
        return next(self.model.parameters()).dtype

    def embed_images(self, images: Sequence[Image.Image | bytes], batch_size: int = 16) -> np.ndarray:
        """Image embeddings, (n, dim) float32, not normalized. Bytes are decoded safely."""
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pil = [decode_image(x) if isinstance(x, (bytes, bytearray, memoryview)) else x.convert("RGB") for x in chunk]
            pixels = torch.stack([self.preprocess(im) for im in pil]).to(self.device, self._dtype())
            with torch.inference_mode():
                feats = self.model.encode_image(pixels)
            out.append(feats.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Text embeddings, (n, dim) float32, not normalized."""
        import torch

        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        out: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            with torch.inference_mode():
                feats = self.model.encode_text(tokens)
            out.append(feats.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)
