"""--sref URL on the worker: style images become the IP-Adapter conditioning (tiny preset, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.images import decode_image
from engine.jobs import JobError


def by_hand(engine, pngs: list[bytes]) -> np.ndarray:
    """Mean of the unit-normalised OpenCLIP embeddings, rescaled to their mean norm."""
    e = engine.loaded.embedder.embed_images([decode_image(p) for p in pngs]).astype(np.float64)
    norms = np.linalg.norm(e, axis=1)
    mean = (e / norms[:, None]).mean(axis=0)
    return mean * (norms.mean() / np.linalg.norm(mean))


def test_a_style_image_steers_like_its_embedding(engine, gen, base_grid):
    style = gen.imagine(engine, prompt="a neon city at night", seed=21, count=1).images[0].png

    styled = gen.imagine(engine, seed=5, count=2, style_images=[style], ip_adapter_scale=0.8)
    assert all(a != b for a, b in zip(gen.pngs(styled), gen.pngs(base_grid)))

    reference = [float(x) for x in by_hand(engine, [style])]
    same = gen.imagine(engine, seed=5, count=2, conditioning=reference, ip_adapter_scale=0.8)
    assert gen.pngs(styled) == gen.pngs(same)


def test_style_images_combine_with_a_taste_conditioning(engine, gen):
    styles = [gen.imagine(engine, prompt=p, seed=3, count=1).images[0].png for p in ("a red barn", "blue waves")]
    taste = np.asarray(gen.random_vector(64, seed=4))
    ref = by_hand(engine, styles)
    both = taste / np.linalg.norm(taste) + ref / np.linalg.norm(ref)
    combined = [float(x) for x in np.linalg.norm(taste) * both / np.linalg.norm(both)]

    mixed = gen.imagine(engine, seed=5, count=2, style_images=styles, conditioning=list(taste), ip_adapter_scale=0.8)
    by_vector = gen.imagine(engine, seed=5, count=2, conditioning=combined, ip_adapter_scale=0.8)
    assert gen.pngs(mixed) == gen.pngs(by_vector)


def test_a_corrupt_style_image_fails_at_once(engine, gen):
    with pytest.raises(JobError, match="style image 1") as info:
        engine.run(gen.job(style_images=[b"not an image"], ip_adapter_scale=0.8))
    assert info.value.retryable is False
