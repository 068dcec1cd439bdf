"""engine.jobs: a spec's ranges are pydantic constraints, so a bad spec is refused where it is built."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine import params
from engine.jobs import MAX_SEED, GenerateSpec, Job, JobKind, PoolSpec
from engine.presets import PRESETS


@pytest.mark.parametrize(
    "field,value",
    [
        ("width", 100),  # not a multiple of 64
        ("height", 4160),  # over MAX_SIDE
        ("width", 0),
        ("seed", -1),
        ("seed", MAX_SEED + 1),
        ("count", 0),
        ("count", 17),
        ("chaos", 101),
        ("stylize", 1001),
        ("quality", 0.0),
        ("quality", float("nan")),
        ("strength", 1.5),
        ("ip_adapter_scale", -0.1),
        ("ip_adapter_scale", float("inf")),
        ("conditioning", []),
        ("conditioning", [1.0, float("nan")]),
        ("rerank_direction", [0.0, 0.0]),
        ("candidates", 65),
        ("style_images", [b"png"] * 5),
    ],
)
def test_out_of_range_generate_spec_is_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        GenerateSpec(prompt="a fox", **{field: value})
    assert field in str(info.value)


def test_a_spec_over_the_pixel_budget_is_refused_whatever_its_shape():
    GenerateSpec(prompt="a fox", width=1408, height=2816)  # an upscale of a 1:4 image at 1024 px
    with pytest.raises(ValidationError, match="more than 4,500,000 pixels"):
        GenerateSpec(prompt="a fox", width=2560, height=2048)


def test_fewer_candidates_than_images_is_refused():
    with pytest.raises(ValidationError, match="candidates 3 is fewer than count 4"):
        GenerateSpec(prompt="a fox", candidates=3)
    assert GenerateSpec(prompt="a fox", candidates=4, rerank_direction=[1.0]).candidates == 4


@pytest.mark.parametrize("field,value", [("styles", []), ("styles", ["s"] * 65), ("width", 96), ("seed", MAX_SEED + 1)])
def test_out_of_range_pool_spec_is_refused_naming_the_field(field, value):
    kwargs = {"prompt": "a fox", "styles": ["watercolor"], field: value}
    with pytest.raises(ValidationError) as info:
        PoolSpec(**kwargs)
    assert field in str(info.value)


def test_a_refused_spec_is_refused_from_the_wire_too():
    """A worker elsewhere validates what it receives with the same constraints."""
    good = Job(kind=JobKind.IMAGINE, preset="tiny", generate=GenerateSpec(prompt="a fox", seed=MAX_SEED))
    assert Job.from_json(good.to_json()) == good
    with pytest.raises(ValidationError, match="seed"):
        Job.from_json(good.to_json().replace(f'"seed":{MAX_SEED}', f'"seed":{MAX_SEED + 1}'))


def test_every_prompt_size_makes_a_valid_spec():
    """--ar from 1:4 to 4:1 on every preset, and the x2 upscale of each, fit the spec's ranges."""
    for preset in PRESETS.values():
        for w in range(1, 5):
            for h in range(1, 5):
                width, height = params.dimensions((w, h), preset.base_size)
                GenerateSpec(prompt="a fox", width=width, height=height, seed=MAX_SEED)
                GenerateSpec(prompt="a fox", width=2 * width, height=2 * height, count=1)  # a variation of an upscale


def test_the_prompt_seed_range_is_the_spec_seed_range():
    assert params.parse("a fox --seed 4294967295").seed == MAX_SEED
    with pytest.raises(params.ParamError):
        params.parse("a fox --seed 4294967296")
