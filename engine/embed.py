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


def _coca_sampling_without_beam_search() -> None:
    """open_clip's CoCa imports transformers' BeamSearchScorer, which transformers 5
    removed, and then refuses to generate at all. Sampling (top-p, top-k) needs only
    the logits warpers, which are still there: hand them to open_clip."""
    import transformers
    from open_clip import coca_model

    if coca_model._has_transformers:
        return
    for name in ("LogitsProcessorList", "TopPLogitsWarper", "TopKLogitsWarper", "RepetitionPenaltyLogitsProcessor",
                 "MinLengthLogitsProcessor", "MaxLengthCriteria", "StoppingCriteriaList"):
        setattr(coca_model, name, getattr(transformers, name))
    coca_model.GENERATION_TYPES = {"top_p": transformers.TopPLogitsWarper, "top_k": transformers.TopKLogitsWarper}
    coca_model._has_transformers = True


class Captioner:
    """OpenCLIP's CoCa: an image in, sampled captions out (for /describe)."""

    SEQ_LEN = 30  # tokens per caption, start and end included
    TOP_P = 0.5  # nucleus sampling: varied captions that stay on the likely words

    def __init__(self, model, preprocess, device, name: str = ""):
        import torch

        self.model = model.eval()
        self.preprocess = preprocess
        self.device = torch.device(device)
        self.name = name

    @classmethod
    def load(cls, model_name: str = "coca_ViT-L-14", pretrained: str = "mscoco_finetuned_laion2b_s13b_b90k",
             device="cpu") -> Captioner:
        """Load through `open_clip.create_model_and_transforms`, like the Embedder."""
        import open_clip
        import torch

        _coca_sampling_without_beam_search()
        device = torch.device(device)
        precision = "fp16" if device.type == "cuda" else "fp32"
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained or None, precision=precision, device=device
        )
        label = f"{model_name}/{os.path.basename(pretrained) if os.path.isfile(pretrained) else pretrained}"
        return cls(model, preprocess, device, name=label)

    def captions(self, image: Image.Image, count: int, seed: int) -> list[str]:
        """`count` captions of one image, sampled with `seed` (same seed, same device: same captions)."""
        import open_clip
        import torch

        pixels = self.preprocess(image.convert("RGB")).unsqueeze(0).repeat(count, 1, 1, 1)
        pixels = pixels.to(self.device, next(self.model.parameters()).dtype)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():  # seeded without touching the global stream
            torch.manual_seed(seed)
            tokens = self.model.generate(pixels, generation_type="top_p", top_p=self.TOP_P, seq_len=self.SEQ_LEN)
        texts = [open_clip.decode(row) for row in tokens.cpu()]
        # what follows the first end token is padding
        return [" ".join(t.split("<end_of_text>")[0].replace("<start_of_text>", " ").split()) for t in texts]
