"""The prompt language: parsing, errors, canonical form, expansion, dimensions."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.params import (
    CODE_RE,
    CodeWeight,
    ParamError,
    Request,
    dimensions,
    expand,
    is_code,
    banned_in,
    matching_key,
    normalize,
    parse,
    validate_option_name,
    validate_option_value,
)

PRESETS = ("tiny", "sdxl-turbo", "sd15")


# --- the basics ---------------------------------------------------------------

def test_issue_example():
    r = parse("a lighthouse in a storm --ar 3:2 --seed 7")
    assert r.text == "a lighthouse in a storm"
    assert r.aspect == (3, 2)
    assert r.seed == 7
    assert r.canonical() == "a lighthouse in a storm --ar 3:2 --seed 7"


def test_defaults_without_parameters():
    r = parse("  a   cat\non a mat  ")
    assert r == Request(text="a cat on a mat")
    assert (r.negative, r.aspect, r.seed, r.chaos, r.stylize) == ((), (1, 1), None, 0, None)
    assert (r.personalize, r.quality, r.tile, r.sref, r.preset) == (None, 1.0, False, None, None)
    assert r.canonical() == "a cat on a mat"


def test_apostrophes_and_lone_dashes_stay_in_the_text():
    r = parse("it's a dog's life -- well-known, x--y — really --s 50")
    assert r.text == "it's a dog's life -- well-known, x--y — really"
    assert r.stylize == 50


@pytest.mark.parametrize(
    ("flag", "value", "field", "expected"),
    [
        ("ar", "16:9", "aspect", (16, 9)),
        ("aspect", "16:9", "aspect", (16, 9)),
        ("seed", "42", "seed", 42),
        ("s", "250", "stylize", 250),
        ("stylize", "250", "stylize", 250),
        ("c", "30", "chaos", 30),
        ("chaos", "30", "chaos", 30),
        ("p", "k3xq7ab", "personalize", (CodeWeight(code="k3xq7ab"),)),
        ("personalize", "k3xq7ab", "personalize", (CodeWeight(code="k3xq7ab"),)),
        ("q", "2", "quality", 2.0),
        ("quality", "2", "quality", 2.0),
        ("v", "sd15", "preset", "sd15"),
        ("version", "sd15", "preset", "sd15"),
        ("no", "red", "negative", ("red",)),
        ("tile", "", "tile", True),
        ("sref", "k3xq7ab", "sref", "k3xq7ab"),
    ],
)
def test_long_and_short_forms_em_dash_and_case(flag, value, field, expected):
    for marker in ("--", "—"):
        for name in (flag, flag.upper(), flag.capitalize()):
            r = parse(f"a fox {marker}{name} {value}".rstrip(), PRESETS)
            assert getattr(r, field) == expected, (marker, name)
            assert r.text == "a fox"


def test_all_parameters_together_and_canonical_order():
    r = parse(
        "a fox —V SD15 --tile --q .5 --c 10 --S 300 --P K3XQ7AB::2 m4zz2qa::0.25 "
        "--no  people ,boats,, --seed 0007 --sref HTTPS://example.com/a.png --AR 1920:1080",
        PRESETS,
    )
    assert r.aspect == (16, 9)  # reduced
    assert r.seed == 7
    assert r.negative == ("people", "boats")
    assert r.personalize == (CodeWeight(code="k3xq7ab", weight=2), CodeWeight(code="m4zz2qa", weight=0.25))
    assert (r.stylize, r.chaos, r.quality, r.tile, r.preset) == (300, 10, 0.5, True, "sd15")
    assert r.sref == "HTTPS://example.com/a.png"
    assert r.canonical() == (
        "a fox --ar 16:9 --seed 7 --no people, boats --p k3xq7ab::2 m4zz2qa::0.25 --s 300 --c 10 "
        "--q .5 --tile --sref HTTPS://example.com/a.png --v sd15"
    )


@pytest.mark.parametrize("q,expected", [(".5", 0.5), ("0.5", 0.5), ("1", 1.0), ("1.0", 1.0), ("2", 2.0), ("2.", 2.0)])
def test_quality_spellings(q, expected):
    assert parse(f"x --q {q}").quality == expected


def test_negative_lists():
    assert parse("x --no a").negative == ("a",)
    assert parse("x --no a, b ,c").negative == ("a", "b", "c")
    assert parse("x --no blurry  text,\nlow   quality --s 5").negative == ("blurry text", "low quality")


def test_personalize_bare_codes_and_weights():
    bare = parse("x --p")
    assert bare.personalize == (CodeWeight(code=None, weight=1.0),)
    assert bare.uses_current_code
    assert bare.canonical() == "x --p"
    assert parse("x --p --s 20").personalize == (CodeWeight(code=None),)
    r = parse("x --p abcdefg::2 hijklmn::.5, ABC2345::100")
    assert [(c.code, c.weight) for c in r.personalize] == [("abcdefg", 2.0), ("hijklmn", 0.5), ("abc2345", 100.0)]
    assert parse("x --p abcdefg::1").canonical() == "x --p abcdefg"
    assert parse("x").personalize is None and not parse("x").uses_current_code


def test_with_current_code_fills_bare_p():
    r = parse("x --p --s 300").with_current_code("K3XQ7AB")
    assert r.personalize == (CodeWeight(code="k3xq7ab"),)
    assert r.canonical() == "x --p k3xq7ab --s 300"
    explicit = parse("x --p abcdefg")
    assert explicit.with_current_code("k3xq7ab") is explicit
    with pytest.raises(ValueError):
        parse("x --p").with_current_code("nope")


def test_p_server_is_the_communitys_taste_in_any_case_and_mixes_by_weight():
    r = parse("a cat --p SERVER")
    assert r.personalize == (CodeWeight(code="server"),) and not r.uses_current_code
    assert r.canonical() == "a cat --p server"
    mixed = parse("a cat --p Server::1 k3xq7ab::2")
    assert [(c.code, c.weight) for c in mixed.personalize] == [("server", 1.0), ("k3xq7ab", 2.0)]
    assert mixed.canonical() == "a cat --p server k3xq7ab::2"
    assert parse(parse("x --p server::2 k3xq7ab").canonical()) == parse("x --p server::2 k3xq7ab")
    assert not is_code("server")  # a word of --p, not a code (--sref takes codes and links only)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("x --p serve", ["`--p serve`", "`serve` is not a code", "`server` is the community's taste"]),
        ("x --p server::0", ["`--p server::0` has a bad weight `0`", "like `server::2`"]),
        ("x --p server::x k3xq7ab", ["`--p server::x` has a bad weight `x`"]),
        ("x --p server SERVER", ["`--p server`", "`server` is given twice"]),
        ("x --p ::2", ["`--p ::2`", "nothing is not a code"]),
    ],
)
def test_p_server_errors_name_the_flag_and_value(text, fragments):
    with pytest.raises(ParamError) as info:
        parse(text)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_with_default_mix_fills_bare_p_with_the_mix_and_its_weights():
    bare = parse("x --p --s 300")
    mixed = bare.with_default_mix([("K3XQ7AB", 2.0), ("m4zz2qa", 1.0)])
    assert mixed.personalize == (CodeWeight(code="k3xq7ab", weight=2.0), CodeWeight(code="m4zz2qa"))
    assert mixed.canonical() == "x --p k3xq7ab::2 m4zz2qa --s 300"
    assert parse(mixed.canonical()) == mixed  # a reroll runs the same mix
    # one profile: its weight doesn't matter alone, so the bare --p's is kept
    assert bare.with_default_mix([("k3xq7ab", 3.0)]).canonical() == "x --p k3xq7ab --s 300"
    # tiny weights still parse back
    assert parse(bare.with_default_mix([("k3xq7ab", 1.0), ("m4zz2qa", 1e-6)]).canonical()).personalize[1].weight == 0.001
    assert bare.with_default_mix([("server", 1.0), ("k3xq7ab", 1.0)]).canonical() == "x --p server k3xq7ab --s 300"
    explicit = parse("x --p abcdefg")
    assert explicit.with_default_mix([("k3xq7ab", 1.0)]) is explicit
    for bad in ([], [("nope", 1.0)], [("k3xq7ab", 0.0)], [("k3xq7ab", float("nan"))]):
        with pytest.raises(ValueError):
            bare.with_default_mix(bad)


def test_codes():
    assert is_code("abcdefg") and is_code("ABC2345") and is_code("a2b3c4d")
    lookalikes = ("abcde\u017fg", "abcde\u212ag")  # long s and Kelvin sign fold to s/k under re.I
    for bad in ("abcdef", "abcdefgh", "abcdef1", "abcdef8", "abc-efg", "", None, 1234567, *lookalikes):
        assert not is_code(bad), bad
    assert CODE_RE.fullmatch("zzzz777")


def test_sref_code_and_url():
    assert parse("x --sref ABCDEFG").sref == "abcdefg"
    assert parse("x --sref http://a.b/c?d=e").sref == "http://a.b/c?d=e"


def test_presets_any_name_when_none_given():
    assert parse("x --v SDXL-Turbo_1.0").preset == "sdxl-turbo_1.0"
    assert parse("x --v TINY", PRESETS).preset == "tiny"


# --- errors: each names the parameter, the value and what is allowed ------------

@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("x --s 5000", ["`--s 5000` is out of range", "stylize takes 0–1000"]),
        ("x --stylize -5", ["`--stylize -5` is not a whole number", "0–1000"]),
        ("x --chaos 101", ["`--chaos 101` is out of range", "chaos takes 0–100"]),
        ("x --seed 4294967296", ["`--seed 4294967296` is out of range", "0–4294967295"]),
        ("x --seed 1e5", ["`--seed 1e5` is not a whole number", "0–4294967295"]),
        ("x --seed " + "9" * 5000, ["`--seed 9999", "out of range"]),
        ("x --ar 5:1", ["`--ar 5:1` is out of range", "1:4 to 4:1"]),
        ("x --aspect 1:5", ["`--aspect 1:5` is out of range", "1:4 to 4:1"]),
        ("x --ar 0:1", ["`--ar 0:1`", "positive whole numbers", "1:4 to 4:1"]),
        ("x --ar 16x9", ["`--ar 16x9`", "W:H"]),
        ("x --q 3", ["`--q 3` is out of range", "quality takes `.5`, `1` or `2`"]),
        ("x --q high", ["`--q high` is not a number", "`.5`, `1` or `2`"]),
        ("x --foo 3", ["`--foo` is not a parameter", "Known:", "`--ar`", "`--sref`"]),
        ("x --stylise 3", ["`--stylise` is not a parameter", "Did you mean `--stylize`?"]),
        ("x --s 10 --stylize 20", ["`--stylize` is given twice", "`--s`"]),
        ("x --seed 1 --SEED 2", ["`--SEED` is given twice", "once"]),
        ("x --seed", ["`--seed` needs a value", "0–4294967295"]),
        ("x --ar --s 5", ["`--ar` needs a value", "W:H"]),
        ("x --no , ,", ["`--no` needs a value", "comma-separated"]),
        ("--ar 3:2 --s 100", ["no description", "Describe the image"]),
        ("", ["no description"]),
        ("   \n ", ["no description"]),
        ("a" * 1501, ["1501 characters", "limit is 1500"]),
        ("x --p abc", ["`--p abc`", "`abc` is not a code", "7 characters"]),
        ("x --p abcdefg1", ["`abcdefg1` is not a code"]),
        ("x --p abcdefg::0", ["`--p abcdefg::0` has a bad weight `0`", "above 0 and at most 100"]),
        ("x --p abcdefg::101", ["bad weight `101`", "at most 100"]),
        ("x --p abcdefg::", ["bad weight nothing"]),
        ("x --p abcdefg::two", ["bad weight `two`"]),
        ("x --p abcdefg ABCDEFG", ["`abcdefg` is given twice"]),
        ("x --p " + " ".join(["abcdefg"] * 9), ["got 9 codes", "at most 8"]),
        ("x --tile yes", ["`--tile` takes no value", "`yes`"]),
        ("x --sref ftp://a.b", ["`--sref ftp://a.b` is not a code or a link", "http(s)"]),
        ("x --v sdxl", ["`--v sdxl` is not a model", "`tiny`", "`sd15`"]),
        ("x --ar 3:2 in the rain", ["Unexpected `in the rain` after `--ar 3:2`", "end of the prompt"]),
        ("x --s 1`0", ["`--s 1'0`"]),  # backticks cannot break the markdown
        ("x " * 3001, ["limit is 6000"]),
        ("ab\ud800 --s 5", ["broken character at position 3"]),
    ],
)
def test_errors_are_specific(text, fragments):
    with pytest.raises(ParamError) as info:
        parse(text, PRESETS)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert len(message) < 400


def test_param_error_is_a_value_error():
    assert issubclass(ParamError, ValueError)


def test_em_dash_errors_show_double_dash():
    with pytest.raises(ParamError, match="`--s 5000`"):
        parse("x —s 5000")


# --- canonical form, copies and JSON ---------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "a lighthouse in a storm --ar 3:2 --seed 7",
        "a  fox —ar 2:3 --no a,b --p --s 0 --c 0 --q 1",
        "x --p abcdefg::1.125 hijklmn::0.001 --tile --sref https://e.x/a.png --v tiny --seed 4294967295",
        "a cat -- --ar 4:1",
    ],
)
def test_canonical_round_trip(text):
    r = parse(text, PRESETS)
    again = parse(r.canonical(), PRESETS)
    assert again == r
    assert again.canonical() == r.canonical()
    assert Request.model_validate_json(r.model_dump_json()) == r


def test_canonical_drops_defaults_only():
    assert parse("x --c 0 --q 1.0 --ar 2:2").canonical() == "x"
    assert parse("x --s 100").canonical() == "x --s 100"  # explicit stylize is kept


def test_with_validates():
    r = parse("x --s 10")
    assert r.with_(stylize=900, text="y").canonical() == "y --s 900"
    assert r.stylize == 10  # frozen original unchanged
    with pytest.raises(ValueError):
        r.with_(stylize=5000)
    with pytest.raises(ValueError):
        r.with_(stylise=5)
    with pytest.raises(ValueError):
        r.with_(quality=3.0)
    with pytest.raises(Exception):
        r.text = "z"  # type: ignore[misc]
    assert hash(r) == hash(parse("x --stylize 10"))


# --- expansion --------------------------------------------------------------------

def test_expand_options_and_suffix():
    opts = {"Film": "35mm film grain --ar 3:2", "fast": "--q .5 --s 50"}
    out = expand("a cat --film --FAST --seed 3", opts, "moody --c 20")
    assert out == "a cat 35mm film grain moody --ar 3:2 --q .5 --s 50 --seed 3 --c 20"
    r = parse(out)
    assert (r.text, r.aspect, r.quality, r.stylize, r.seed, r.chaos) == (
        "a cat 35mm film grain moody", (3, 2), 0.5, 50, 3, 20)


def test_expand_prompt_wins_over_suffix_even_through_aliases():
    out = expand("a cat --stylize 400 —AR 2:3", {}, "--s 50 --ar 16:9 --tile")
    r = parse(out)
    assert (r.stylize, r.aspect, r.tile) == (400, (2, 3), True)


def test_expand_is_one_pass_and_leaves_unknowns_to_parse():
    opts = {"a": "--b", "b": "--s 5"}
    out = expand("x --a", opts, "")
    with pytest.raises(ParamError, match="`--b` is not a parameter"):
        parse(out)
    with pytest.raises(ParamError, match="`--nope`"):
        parse(expand("x --nope", opts, ""))


def test_expand_ignores_options_that_shadow_builtins_and_keeps_plain_text():
    assert expand("x --s 5", {"s": "--s 999"}, "") == "x --s 5"
    assert expand("a dog's day  --ar 3:2", {}, "") == "a dog's day --ar 3:2"
    assert expand("a dog", None, "  ") == "a dog"
    assert expand("a --mine dog", {"mine": "red"}, "") == "a red dog"


def test_option_names():
    assert validate_option_name("Cinematic_2") == "cinematic_2"
    assert validate_option_name("--film") == "film"
    for bad in ("", "a" * 33, "has space", "émoji", "2fast", "a.b"):
        with pytest.raises(ParamError, match="not a valid option name"):
            validate_option_name(bad)
    for builtin in ("ar", "S", "stylize", "no", "tile", "version", "--p"):
        with pytest.raises(ParamError, match="built-in parameter"):
            validate_option_name(builtin)


def test_option_values():
    assert validate_option_value("  --ar 16:9   --s 250 ") == "--ar 16:9 --s 250"
    assert validate_option_value("film grain, soft light") == "film grain, soft light"
    assert validate_option_value("film --tile") == "film --tile"
    with pytest.raises(ParamError, match="`--s 5000` is out of range"):
        validate_option_value("--s 5000")
    with pytest.raises(ParamError, match="`--other` is not a parameter"):
        validate_option_value("--other")
    with pytest.raises(ParamError, match="limit is 200"):
        validate_option_value("a" * 201)
    with pytest.raises(ParamError, match="needs a value"):
        validate_option_value("   ")
    with pytest.raises(ParamError, match="not a model"):
        validate_option_value("--v big", PRESETS)


# --- dimensions -------------------------------------------------------------------

def test_dimensions_examples():
    assert dimensions((1, 1), 1024) == (1024, 1024)
    assert dimensions((16, 9), 1024) == (1344, 768)
    assert dimensions((9, 16), 1024) == (768, 1344)
    assert dimensions((3, 2), 128) == (192, 128)
    assert dimensions((1, 1), 64) == (64, 64)
    w, h = dimensions((3, 2), 1024)
    assert abs(w / h - 1.5) < 0.05 and h == 832


@pytest.mark.parametrize("base", [256, 512, 768, 1024, 1536])
@pytest.mark.parametrize("aspect", [(1, 1), (3, 2), (2, 3), (4, 3), (16, 9), (9, 16), (21, 9), (4, 1), (1, 4), (5, 4)])
def test_dimensions_properties(aspect, base):
    w, h = dimensions(aspect, base)
    assert w % 64 == 0 and h % 64 == 0 and w >= 64 and h >= 64
    ratio = aspect[0] / aspect[1]
    assert abs(math.log(w / h / ratio)) < 0.12, (w, h)
    assert abs(math.log(w * h / base**2)) <= math.log(1.5) + 1e-9, (w, h)
    assert dimensions(aspect[::-1], base) == (h, w)


def test_dimensions_rejects_nonsense():
    with pytest.raises(ValueError):
        dimensions((0, 1), 1024)
    with pytest.raises(ValueError):
        dimensions((1, 1), 32)


# --- properties: anything parses or fails cleanly, and what parses round-trips ------

GOOD = {  # a few valid values per parameter, so that many generated prompts parse
    "ar": ["3:2", "16 : 9", "1:4", "2:2"], "seed": ["7", "007", "4294967295"], "no": ["x, y", "a,,b", "it's"],
    "p": ["", "abcdefg", "ABC2345::2 abcdefg::.005", "abcdefg hijklmn::100"], "s": ["0", "100", "1000"],
    "c": ["0", "50"], "q": [".5", "1.0", "2"], "tile": [""], "sref": ["abcdefg", "https://e.x/a.png"],
    "v": ["tiny", "sd15"],
}
ALIASES = {"aspect": "ar", "personalize": "p", "stylize": "s", "chaos": "c", "quality": "q", "version": "v"}
BAD = ["5:1", "0:3", "-1", "4294967296", "1001", "abc", "abcdefg::0", "::", "::3", "3", ",", "`", "--",
       "—", "\u00a0", "x y", "Ω"]
WORDS = ["a", "cat", "it's", "lighthouse", "--", "—", "-", "x--y", "::", ",", "🐈", "Ω", "--no", "—s"]
SPACE = [" ", "  ", "\n", "\t", "\u00a0", "\u2003"]


@st.composite
def parameter(draw) -> str:
    rare = draw(st.integers(0, 4)) == 0  # one parameter in five is odd
    name = draw(st.sampled_from([*ALIASES, "foo", "noo", "AR", "S", "Tile"] if rare else list(GOOD)))
    values = GOOD.get(ALIASES.get(name.lower(), name.lower()), [])
    value = draw(st.sampled_from(values) if values and draw(st.integers(0, 4)) else st.sampled_from(BAD))
    dash = draw(st.sampled_from(["--", "—", "-", "---"] if rare else ["--"]))
    return f"{draw(st.sampled_from(SPACE))}{dash}{name}{draw(st.sampled_from(SPACE + ['']))}{value}"


prose = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=3)), max_size=6).map(" ".join)
promptish = st.builds(lambda head, params, tail: head + "".join(params) + tail,
                      prose, st.lists(parameter(), max_size=4), st.sampled_from(["", "", "", "", " ", " tail"]))


def _check(text: str, presets=()) -> None:
    try:
        r = parse(text, presets)
    except ParamError as e:
        assert str(e).strip()
        return
    c = r.canonical()
    assert parse(c, presets) == r, c
    assert parse(c, presets).canonical() == c
    assert Request.model_validate_json(r.model_dump_json()) == r


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text())
def test_any_text_parses_or_raises_param_error(text):
    _check(text)


@FAST
@given(promptish, st.sampled_from([(), PRESETS]))
def test_parameter_like_text_parses_or_raises_param_error(text, presets):
    _check(text, presets)


@FAST
@given(promptish, st.dictionaries(st.sampled_from(["film", "fast", "ar", "Mine"]), promptish, max_size=3), promptish)
def test_expand_then_parse_fails_only_with_param_error(text, options, suffix):
    _check(expand(text, options, suffix))


def _parses(text: str) -> Request | None:
    try:
        return parse(text)
    except ParamError:
        return None


def test_the_fragment_strategy_reaches_valid_parameters():
    """Guard against property tests that only ever see errors: count what parses (deterministic)."""
    fields = ("aspect", "seed", "negative", "personalize", "stylize", "chaos", "quality", "tile", "sref", "preset")
    seen: Counter[str] = Counter()

    @settings(max_examples=400, derandomize=True, database=None, deadline=None)
    @given(promptish)
    def collect(text):
        r = _parses(text)
        seen["ok" if r else "error"] += 1
        for f in fields:
            if r is not None and getattr(r, f) != Request.model_fields[f].default:
                seen[f] += 1

    collect()
    assert seen["ok"] >= 40 and seen["error"] >= 40, seen
    assert all(seen[f] >= 1 for f in fields), seen


# --- member text, normalised: rules that can't be dodged ---------------------------

# Each renders as nothing: zero-width space / non-joiner / joiner, word joiner, soft
# hyphen, BOM, bidi controls (embedding, override, isolate, mark), Mongolian vowel
# separator, a tag letter, the combining grapheme joiner, a variation selector,
# Hangul fillers, the braille blank, a C0 control.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u202a", "\u202e", "\u2066",
             "\u2069", "\u200f", "\u061c", "\u180e", "\U000e0041", "\u034f", "\ufe0f", "\u115f", "\u3164",
             "\uffa0", "\u2800", "\x00", "\x1b"]


def fullwidth(text: str) -> str:
    """ASCII as a phone's full-width keyboard types it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


@pytest.mark.parametrize("blank", [*INVISIBLE, "".join(INVISIBLE), "\u200b \u200b\n\u3000"])
def test_a_prompt_of_invisible_characters_is_refused_like_an_empty_one(blank):
    with pytest.raises(ParamError) as empty:
        parse("")
    with pytest.raises(ParamError) as invisible:
        parse(blank)
    assert str(invisible.value) == str(empty.value)
    with pytest.raises(ParamError, match="no description"):
        parse(blank + " --ar 3:2")


def test_full_width_and_invisible_characters_read_as_what_they_look_like():
    assert parse(fullwidth("a red fox --ar 3:2 --s 250")) == parse("a red fox --ar 3:2 --s 250")
    assert parse("a\u200b fox -\u00ad-a\u200dr 3\u2060:2") == parse("a fox --ar 3:2")
    assert parse("\u202ekcab\u202c fox") == parse("kcab fox")
    assert normalize("\ufb01ne \u2460 x\u00b2") == "fine 1 x2"  # ligature, circled and superscript digits
    assert normalize("cafe\u200b\u0301") == "café"  # the mark composes as if typed plainly
    assert normalize("Straße\t\nÉcole") == "Straße\t\nÉcole"  # case, accents and whitespace stay


def test_expand_normalises_options_and_suffix():
    assert expand("a fox --ｆｉｌｍ", {"film": "grain\u200b --ａｒ 3:2"}, "--\u200bs 50") == "a fox grain --ar 3:2 --s 50"
    assert validate_option_value("soft\u00adlight --ｓ 250") == "softlight --s 250"


@pytest.mark.parametrize(
    ("written", "banned"),
    [
        ("a BAD idea", "bad"), ("a ｂａｄ idea", "bad"), ("a b\u200ba\u00add idea", "bad"), ("a bäd idea", "bad"),
        ("a b\u0336a\u0336d\u0336 idea", "bad"), ("a b.a.d idea", "bad"), ("a B - A - D idea", "bad"),
        ("a b_a_d idea", "bad"), ("GROSS", "Gross"), ("STRASSE", "straße"), ("blood  ＢＡＴＨ", "blood bath"),
    ],
)
def test_matching_key_folds_the_usual_bypasses(written, banned):
    assert matching_key(banned) in matching_key(written)


@pytest.mark.parametrize(("written", "banned"), [("a cat", "acat"), ("tab addition", "bad"), ("a b c", "abd")])
def test_matching_key_joins_single_letters_only(written, banned):
    assert matching_key(banned) not in matching_key(written)


@pytest.mark.parametrize(
    ("word", "written", "found"),
    [
        ("ass", "a class photo", False), ("ass", "an ass", True), ("ass", "an A.S.S here", True), ("ass", "ass_hat", True),
        ("*ass*", "a class photo", True), ("*ass", "a bass", True), ("*ass", "assets", False), ("ass*", "assets", True),
        ("ass*", "a bass", False), ("blood bath", "a BLOOD  ＢＡＴＨ", True), ("blood bath", "bloodbath", False),
        ("gore", "https://e.x/gore.png", True), ("**", "anything", False), ("gore", "a g.o.r.e fest", True),
        ("gore", "a G O R E fest", True), ("bad", "tab addition", False),
    ],
)
def test_banned_words_match_whole_words_unless_a_star_says_otherwise(word, written, found):
    assert banned_in(word, written) is found


@FAST
@given(st.text())
def test_normalize_is_idempotent_and_parse_reads_normalized_text(text):
    once = normalize(text)
    assert normalize(once) == once
    assert not any(c in once for c in INVISIBLE)
    assert _parses(text) == _parses(once)


@FAST
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)), st.data())
def test_hiding_or_widening_ascii_changes_nothing(text, data):
    assert normalize(fullwidth(text)) == text
    hidden = "".join(c + data.draw(st.sampled_from(["", "", *INVISIBLE])) for c in text)
    assert normalize(hidden) == text
    assert _parses(hidden) == _parses(text)


@FAST
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12), st.data())
def test_an_obfuscated_banned_word_still_matches(word, data):
    disguised = []
    for c in word:
        c = data.draw(st.sampled_from([c, c.upper(), fullwidth(c), c + "\u0301", c + "\u0336"]))
        disguised.append(c + data.draw(st.sampled_from(["", "", *INVISIBLE])))
    written = f"a {''.join(disguised)} in the rain"
    assert matching_key(word) in matching_key(written)
    assert banned_in(word, written)  # a whole word, however disguised


def test_member_text_is_every_word_shown_back_but_no_parameter_names():
    r = parse("a fox --no rain, fog --ar 3:2 --sref https://e.x/a.png --tile --p abcdefg")
    assert r.member_text == "a fox rain fog https://e.x/a.png"


@pytest.mark.parametrize(
    "text,message",
    [
        ("a fox --motion high", "`--motion` animates an image: add `--video`"),
        ("a fox --bs 2", "`--bs` animates an image: add `--video`"),
        ("a fox --video --motion fast", "`--motion fast` is not a motion: motion takes `low` or `high`."),
        ("a fox --video --bs 3", "`--bs 3` is out of range: batch size takes `1`, `2` or `4` (clips)."),
        ("a fox --video --end foo", "`--end foo` is not a link: end frame takes an http(s) image link."),
        ("a fox --video --loop --end https://example.org/a.png", "use one of them"),
        ("a fox --video now", "`--video` takes no value, but got `now`"),
        ("a fox --raw --style raw", "`--style` is given twice (also as `--raw`)"),
    ],
)
def test_video_parameters_are_checked_with_the_others(text, message):
    with pytest.raises(ParamError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_video_parameters_parse_and_write_back():
    request = parse("https://example.org/a.png a fox running --video --motion high --bs 2 --raw --end https://example.org/b.png")
    assert (request.video, request.motion, request.clips, request.raw, request.end) == (
        True, "high", 2, True, "https://example.org/b.png")
    assert request.links == ("https://example.org/a.png", "https://example.org/b.png")
    assert parse(request.canonical()) == request
