"""Image prompts in the prompt language: links before the description, --iw 0-3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.params import ParamError, parse


def test_leading_links_are_image_prompts_and_round_trip():
    r = parse("https://a.test/x.png http://b.test/y.jpg a cat --iw 2.5 --ar 3:2")
    assert r.image_links == ("https://a.test/x.png", "http://b.test/y.jpg")
    assert (r.text, r.image_weight, r.aspect) == ("a cat", 2.5, (3, 2))
    assert r.canonical() == "https://a.test/x.png http://b.test/y.jpg a cat --ar 3:2 --iw 2.5"
    assert parse(r.canonical()) == r
    assert "https://a.test/x.png" in r.member_text  # banned words see the links


def test_a_link_inside_the_description_is_text():
    r = parse("a cat like https://a.test/x.png")
    assert r.image_links == () and r.text == "a cat like https://a.test/x.png"


def test_links_alone_parse_with_an_empty_description():
    r = parse("https://a.test/x.png https://a.test/y.png --iw 0")
    assert r.text == "" and len(r.image_links) == 2 and r.image_weight == 0
    assert parse(r.canonical()) == r


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat --iw 4", "`--iw 4` is out of range: image weight takes 0–3"),
        ("a cat --iw -1", "`--iw -1` is not a number: image weight takes 0–3"),
        ("a cat --iw lots", "`--iw lots` is not a number: image weight takes 0–3"),
        ("a cat --iw 1 2", "Unexpected `2` after `--iw 1`"),
        (" ".join(f"https://a.test/{i}.png" for i in range(6)) + " a cat", "starts with 6 image links; a prompt takes at most 5"),
        ("https://a.test/" + "a" * 2100 + ".png a cat", "is too long (2119 characters): a link may be at most 2048"),
    ],
)
def test_bad_image_prompts_get_specific_errors(prompt, expected):
    with pytest.raises(ParamError) as info:
        parse(prompt)
    assert expected in str(info.value)


@given(st.floats(min_value=0, max_value=3, allow_nan=False).map(lambda x: round(x, 3)),
       st.lists(st.from_regex(r"https://[a-z]{1,8}\.test/[a-z0-9]{1,8}\.png", fullmatch=True), max_size=5))
def test_iw_and_links_round_trip(iw, links):
    r = parse(" ".join([*links, "a fox", f"--iw {iw}"]))
    assert r.image_weight == iw and r.image_links == tuple(links)
    assert parse(r.canonical()) == r
