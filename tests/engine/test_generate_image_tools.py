"""Image prompts (--iw), /blend and /describe on the worker (tiny preset, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.images import decode_image
from engine.jobs import DescribeSpec, GenerateSpec, Job, JobError, JobKind


def reference(engine, pngs: list[bytes]) -> np.ndarray:
    """Mean of the unit-normalised OpenCLIP embeddings, rescaled to their mean norm."""
    e = engine.loaded.embedder.embed_images([decode_image(p) for p in pngs]).astype(np.float64)
    norms = np.linalg.norm(e, axis=1)
    mean = (e / norms[:, None]).mean(axis=0)
    return mean * (norms.mean() / np.linalg.norm(mean))


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def pictures(engine, gen) -> list[bytes]:
    return [gen.imagine(engine, prompt=p, seed=9, count=1).images[0].png for p in ("a red barn", "blue waves", "a forest")]


def test_an_image_prompt_steers_like_its_embedding(engine, gen, pictures, base_grid):
    prompted = gen.imagine(engine, seed=5, count=2, prompt_images=pictures[:1], ip_adapter_scale=0.8)
    assert all(a != b for a, b in zip(gen.pngs(prompted), gen.pngs(base_grid), strict=True))

    by_vector = gen.imagine(engine, seed=5, count=2, conditioning=list(reference(engine, pictures[:1])), ip_adapter_scale=0.8)
    assert gen.pngs(prompted) == gen.pngs(by_vector)


def test_the_documented_rule_weights_image_prompts_by_iw(engine, gen, pictures):
    """n·normalize(Σ w·u/|u|): taste weight 1 at the taste's norm, the sref weight 1, image prompts weight iw."""
    taste = np.asarray(gen.random_vector(64, seed=4))
    p, r = reference(engine, pictures[:2]), reference(engine, pictures[2:])
    iw = 2.5
    total = unit(taste) + unit(r) + iw * unit(p)
    expected = [float(x) for x in np.linalg.norm(taste) * unit(total)]

    mixed = gen.imagine(engine, seed=5, count=2, conditioning=list(taste), style_images=pictures[2:],
                        prompt_images=pictures[:2], image_weight=iw, ip_adapter_scale=0.8)
    by_vector = gen.imagine(engine, seed=5, count=2, conditioning=expected, ip_adapter_scale=0.8)
    assert gen.pngs(mixed) == gen.pngs(by_vector)

    # Without a taste, the weighted mean of the references' norms.
    from engine.generate import combine_conditioning

    e_p = engine.loaded.embedder.embed_images([decode_image(x) for x in pictures[:2]])
    e_r = engine.loaded.embedder.embed_images([decode_image(x) for x in pictures[2:]])
    both = np.asarray(combine_conditioning(None, [(e_r, 1.0), (e_p, iw)]))
    assert np.allclose(unit(both), unit(unit(r) + iw * unit(p)))
    assert np.isclose(np.linalg.norm(both), (np.linalg.norm(r) + iw * np.linalg.norm(p)) / (1 + iw))


def test_iw_0_leaves_the_image_prompt_out(engine, gen, pictures, base_grid):
    ignored = gen.imagine(engine, seed=5, count=2, prompt_images=pictures[:1], image_weight=0, ip_adapter_scale=0.8)
    assert gen.pngs(ignored) == gen.pngs(base_grid)


def test_a_blend_is_a_grid_from_its_images_combined(engine, gen, pictures):
    job = Job(kind=JobKind.BLEND, preset="tiny",
              generate=GenerateSpec(prompt="", width=128, height=192, seed=3, prompt_images=pictures, ip_adapter_scale=0.8))
    result = engine.run(job)
    assert [gen.png_size(im.png) for im in result.images] == [(128, 192)] * 4
    assert all(im.nsfw is not None and len(im.embedding) == 64 for im in result.images)

    same = gen.imagine(engine, prompt="", width=128, height=192, seed=3,
                       conditioning=list(reference(engine, pictures)), ip_adapter_scale=0.8)
    assert gen.pngs(result) == gen.pngs(same)


def test_a_blend_of_one_image_and_a_corrupt_image_prompt_fail_at_once(engine, gen, pictures):
    with pytest.raises(JobError, match="a blend needs 2 to 5 images, not 1"):
        engine.run(Job(kind=JobKind.BLEND, preset="tiny", generate=GenerateSpec(prompt="", prompt_images=pictures[:1])))
    with pytest.raises(JobError, match="image prompt 2") as info:
        engine.run(gen.job(prompt_images=[pictures[0], b"not an image"], ip_adapter_scale=0.8))
    assert info.value.retryable is False


def test_a_flagged_image_prompt_fails_the_job(engine, gen, pictures):
    with pytest.raises(JobError, match="image prompt 1 was flagged"):
        engine.run(gen.job(prompt_images=pictures[:1], ip_adapter_scale=0.8).model_copy(update={"nsfw_threshold": 0.0}))


STYLES = ["watercolor", "oil painting", "pencil sketch", "neon palette", "3D render", "pixel art", "ink wash", "collage"]


def describe(engine, png: bytes, seed: int):
    job = Job(kind=JobKind.DESCRIBE, preset="tiny", describe=DescribeSpec(image=png, styles=STYLES, seed=seed))
    return engine.run(job)


def test_describe_makes_four_prompts_from_coca_and_ranked_style_words(engine, pictures):
    result = describe(engine, pictures[0], seed=1)
    assert len(result.prompts) == 4 and len(set(result.prompts)) == 4
    # Style words ranked by cosine with the image: prompt i ends with those ranked i and i + 4.
    img = unit(engine.loaded.embedder.embed_images([decode_image(pictures[0])])[0])
    words = engine.loaded.embedder.embed_texts(STYLES).astype(np.float64)
    ranked = [STYLES[i] for i in np.argsort(-(words / np.linalg.norm(words, axis=1, keepdims=True)) @ img, kind="stable")]
    for i, prompt in enumerate(result.prompts):
        assert prompt.endswith(f", {ranked[i]}, {ranked[i + 4]}")
        # random-weight CoCa: gibberish, but never the prompt language's syntax
        assert not any(mark in prompt for mark in ("--", "::", "{", "}", "http"))
    assert engine.captioner is not None  # loaded once, kept

    assert describe(engine, pictures[0], seed=1).prompts == result.prompts
    # A new seed, new prompts (random-weight CoCa's gibberish can repeat for one seed: one of three differs)
    assert any(describe(engine, pictures[0], seed=seed).prompts != result.prompts for seed in (2, 3, 4))


def test_the_tiny_coca_reads_the_image(engine, pictures):
    """Its captions depend on the picture: a decoder left with an uninitialised projection gave
    every image the same captions on one machine and NaN probabilities on another."""
    describe(engine, pictures[0], seed=1)  # loads the captioner
    captioner = engine.captioner
    noise = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8)) for i in range(3)]
    captions = [tuple(captioner.captions(image, 2, seed=1)) for image in noise]
    assert all(all(c) for c in captions) and len(set(captions)) == len(noise)
    weights = [v for v in captioner.model.state_dict().values() if v.is_floating_point()]
    assert all(bool(v.isfinite().all()) for v in weights)


def test_describe_refuses_a_bad_image(engine):
    with pytest.raises(JobError, match="the image is not a PNG, JPEG, WebP or GIF image"):
        describe(engine, b"GIF87a nope", seed=1)


def test_describe_prompt_drops_prompt_syntax():
    from engine.generate import describe_prompt

    assert describe_prompt("a cat --ar 3:2 {x, y} a::2 https://x.test/a.png", ["watercolor"]) == (
        "a cat ar 3 2 x, y a 2 https x.test a.png, watercolor"
    )
    assert describe_prompt("  ", []) == "an image"


def test_describe_prompt_is_the_text_imagine_will_run():
    """A caption's invisible or compatibility characters (a Hangul filler, a zero-width space,
    full-width letters) are read as the bot reads member text, so the prompt shown is the one run."""
    from engine import params
    from engine.generate import describe_prompt

    prompt = describe_prompt("honored \u3164commissioned \u200bｆｏｘ", ["watercolor"])
    assert prompt == "honored commissioned fox, watercolor"
    assert params.normalize(prompt) == prompt


def test_check_lists_the_describe_captioner_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    from engine import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    [item] = [i for i in models.check("fast", tmp_path) if i.name.startswith("describe captioner")]
    assert item.name == "describe captioner coca_ViT-L-14/mscoco_finetuned_laion2b_s13b_b90k"
    assert not item.present and "laion/mscoco_finetuned_CoCa-ViT-L-14-laion2B-s13B-b90k" in item.detail
