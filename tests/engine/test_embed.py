"""engine.embed: OpenCLIP embeddings (the tiny preset's model); decoding is tested in test_images.py."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.jobs import EmbedSpec, Job, JobError, JobKind


def _png(color=(200, 30, 30), size=(96, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_embed_job_returns_image_and_text_embeddings(engine):
    a, b = _png(), _png((20, 200, 90))
    job = Job(kind=JobKind.EMBED, preset="tiny", embed=EmbedSpec(images=[a, b, a], texts=["watercolor", "neon", "3D render"]))
    result = engine.run(job)
    img, txt = np.asarray(result.image_embeddings), np.asarray(result.text_embeddings)
    assert img.shape == (3, 64) and txt.shape == (3, 64)
    assert np.array_equal(img[0], img[2])  # the same image twice gives the same vector
    assert not np.allclose(img[0], img[1])
    assert not np.allclose(txt[0], txt[1])
    assert result.images == [] and "embed" in result.timings


def test_embed_job_with_only_texts_or_bad_images(engine):
    only_texts = engine.run(Job(kind=JobKind.EMBED, preset="tiny", embed=EmbedSpec(texts=["soft light"])))
    assert np.asarray(only_texts.text_embeddings).shape == (1, 64) and only_texts.image_embeddings == []
    for spec in (EmbedSpec(), EmbedSpec(images=[b"\x89PNG broken"])):
        with pytest.raises(JobError) as info:
            engine.run(Job(kind=JobKind.EMBED, preset="tiny", embed=spec))
        assert info.value.retryable is False


def test_embedder_bytes_and_pil_agree(engine):
    embedder = engine.loaded.embedder
    data = _png((10, 120, 240))
    from_bytes = embedder.embed_images([data, data])
    from_pil = embedder.embed_images([Image.open(io.BytesIO(data)), Image.open(io.BytesIO(data))])
    assert from_bytes.dtype == np.float32 and from_bytes.shape == (2, embedder.dim)
    assert np.array_equal(from_bytes, from_pil)
    assert embedder.embed_images([]).shape == (0, embedder.dim)
    texts = embedder.embed_texts(["a", "b", "c"])
    assert texts.shape == (3, embedder.dim) and texts.dtype == np.float32
    # Batching does not change results beyond float noise.
    small_batches = embedder.embed_images([data] * 3, batch_size=2)
    assert np.allclose(small_batches, embedder.embed_images([data] * 3), atol=1e-5)


def test_embeddings_match_generated_images(engine, base_grid):
    again = engine.loaded.embedder.embed_images([im.png for im in base_grid.images])
    assert np.allclose(again, np.asarray([im.embedding for im in base_grid.images]), atol=1e-5)

