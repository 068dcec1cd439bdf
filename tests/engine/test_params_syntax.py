"""Prompt syntax (issue 13): {a, b} permutations, --repeat, --stop, --style raw, multi-prompts."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.params import MAX_JOBS, ParamError, Request, parse, permutations, prompt_parts

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- permutations ----------------------------------------------------------------------------


def test_permutations_examples():
    assert permutations("a {red, blue} bird --ar {1:1, 2:3}") == [
        "a red bird --ar 1:1", "a red bird --ar 2:3", "a blue bird --ar 1:1", "a blue bird --ar 2:3",
    ]
    assert permutations("a {bird, {red, blue} fish}") == ["a bird", "a red fish", "a blue fish"]
    assert permutations("a {big\\, red, small} bird") == ["a big, red bird", "a small bird"]
    assert permutations("commas, outside braces, stay") == ["commas, outside braces, stay"]
    assert permutations("a {cat}") == ["a cat"]
    assert permutations("a {, very} big cat") == ["a big cat", "a very big cat"]
    assert permutations("ａ ｛red， blue｝ bird") == ["a red bird", "a blue bird"]  # full-width, as normalize() reads it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a {red, blue bird", "The `{` at character 3 is never closed"),
        ("a {{red}, blue", "The `{` at character 3 is never closed"),
        ("a red} bird", "The `}` at character 6 has no `{` before it"),
        ("x" + "{" * 9 + "}" * 9, "nests `{` more than 8 deep"),
        ("{a, b} {c, d} {e, f}", "This prompt makes 8 jobs with its `{…}` choices; this server allows at most 4"),
        ("{a,b}" * 40, "This prompt makes over a billion jobs"),
    ],
)
def test_permutation_errors_name_the_problem(text, message):
    with pytest.raises(ParamError, match=None) as caught:
        permutations(text, limit=4)
    assert message in str(caught.value)


choice = st.text(alphabet="abcxyz -:1", min_size=1, max_size=6).filter(lambda s: s.strip())
groups = st.lists(st.lists(choice, min_size=1, max_size=4), min_size=0, max_size=3)


@FAST
@given(groups, st.text(alphabet="abc ", max_size=4))
def test_one_prompt_per_combination_in_reading_order(choices, glue):
    text = glue.join("{" + ", ".join(group) + "}" for group in choices) or "plain"
    expected = [" ".join(glue.join(combo).split()) for combo in itertools.product(*[[c.strip() for c in g] for g in choices])]
    assert permutations(text, limit=10**6) == (expected if choices else ["plain"])
    assert len(permutations(text, limit=10**6)) == math.prod(len(g) for g in choices)


def _render(node) -> str:
    if isinstance(node, str):
        return node
    return "{" + ", ".join("".join(_render(n) for n in seq) for seq in node) + "}"


def _count(node) -> int:  # a group: the sum over its choices of the product along each
    if isinstance(node, str):
        return 1
    return sum(math.prod(_count(n) for n in seq) for seq in node)


nested = st.recursive(choice, lambda inner: st.lists(st.lists(inner, min_size=1, max_size=2), min_size=1, max_size=3),
                      max_leaves=10)


@FAST
@given(st.lists(nested, min_size=1, max_size=3))
def test_nested_braces_make_one_prompt_per_path(sequence):
    text = " ".join(_render(node) for node in sequence)
    n = math.prod(_count(node) for node in sequence)
    if sum(_depth(node) > 8 for node in sequence):
        with pytest.raises(ParamError, match="nests"):
            permutations(text, limit=10**6)
        return
    out = permutations(text, limit=10**6)
    assert len(out) == n
    assert all("{" not in p and "}" not in p for p in out)
    if n > 1:
        with pytest.raises(ParamError, match=f"makes {n} jobs"):
            permutations(text, limit=n - 1)


def _depth(node) -> int:
    if isinstance(node, str):
        return 0
    return 1 + max((_depth(n) for seq in node for n in seq), default=0)


@FAST
@given(st.text(max_size=60))
def test_any_text_permutes_or_raises_param_error(text):
    try:
        out = permutations(text, limit=MAX_JOBS)
    except ParamError as e:
        assert str(e).strip()
        return
    assert 1 <= len(out) <= MAX_JOBS


# -- --repeat, --stop, --style ---------------------------------------------------------------


def test_new_parameters_parse_and_round_trip():
    r = parse("a fox --stop 35 --style RAW --r 3")
    assert (r.stop, r.style, r.raw, r.repeat) == (35, "raw", True, 3)
    assert r.canonical() == "a fox --stop 35 --style raw --repeat 3"
    assert parse(r.canonical()) == r
    assert parse("a fox --repeat 2").repeat == 2
    assert Request(text="x").canonical() == "x"  # defaults stay out: stop 100, no style, repeat 1
    assert parse("x --stop 100").canonical() == "x"


@FAST
@given(st.integers(-5, 200))
def test_stop_range(n):
    if 10 <= n <= 100:
        assert parse(f"x --stop {n}").stop == n
    else:
        with pytest.raises(ParamError, match="stop takes 10–100"):
            parse(f"x --stop {n}")


@FAST
@given(st.integers(-3, 60), st.sampled_from(["--r", "--repeat", "—R"]))
def test_repeat_range(n, flag):
    if 1 <= n <= MAX_JOBS:
        assert parse(f"x {flag} {n}").repeat == n
    else:
        with pytest.raises(ParamError, match=f"repeat takes 1–{MAX_JOBS}"):
            parse(f"x {flag} {n}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x --style", "`--style` needs a value: style takes `raw`."),
        ("x --style vivid", "`--style vivid` is not a style: style takes `raw`."),
        ("x --style raw raw", "Unexpected `raw` after `--style raw`"),
        ("x --stop 9", "`--stop 9` is out of range"),
        ("x --r 2 --seed 7", "`--r 2` with `--seed 7` would make the same images 2 times: drop one of them."),
        ("x --r 1 --r 2", "`--r` is given twice"),
        ("x --repeat 1 --r 2", "(also as `--repeat`)"),
    ],
)
def test_new_parameter_errors(text, message):
    with pytest.raises(ParamError) as caught:
        parse(text)
    assert message in str(caught.value)


# -- multi-prompts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("space ship", (("space ship", 1.0),)),
        ("space:: ship", (("space", 1.0), ("ship", 1.0))),
        ("hot dog::1.5 food::-.5", (("hot dog", 1.5), ("food", -0.5))),
        ("a::2 b::3 c", (("a", 2.0), ("b", 3.0), ("c", 1.0))),
        ("a::", (("a", 1.0),)),
        ("12::30pm", (("12", 1.0), ("30pm", 1.0))),  # a number not followed by a space is text
    ],
)
def test_prompt_parts(text, parts):
    assert prompt_parts(text) == parts


weights = st.one_of(st.integers(-100, 100).map(str), st.floats(-100, 100, allow_nan=False).map(lambda f: f"{f:.2f}"))


@FAST
@given(st.lists(st.tuples(st.text(alphabet="abc xy", min_size=1, max_size=5).filter(str.strip), weights), min_size=1, max_size=12))
def test_multi_prompts_parse_or_fail_cleanly(parts):
    text = " ".join(f"{t}::{w}" for t, w in parts)
    try:
        got = prompt_parts(text)
    except ParamError as e:
        total = sum(float(w) for _, w in parts)
        assert len(parts) > 10 or total <= 0, str(e)
        return
    assert [t for t, _ in got] == [" ".join(t.split()) for t, _ in parts]
    assert [w for _, w in got] == [float(w) for _, w in parts]
    assert sum(w for _, w in got) > 0
    assert parse(text).text == " ".join(text.split())  # the text keeps its `::` for the engine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::2 cat", "The multi-prompt part before `::2` is empty"),
        ("a:: :: b", "The multi-prompt part before `::` is empty"),
        ("a::101", "`a::101` is out of range: a multi-prompt weight takes -100–100."),
        ("a::-1", "The multi-prompt weights add up to -1"),
        ("a::1 b::-1", "add up to 0"),
        (" ".join(f"p{i}::" for i in range(11)), "has 11 parts; the limit is 10"),
    ],
)
def test_multi_prompt_errors(text, message):
    with pytest.raises(ParamError) as caught:
        parse(text)
    assert message in str(caught.value)
