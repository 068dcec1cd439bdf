"""bot/ids.py: the one parser for ids and page numbers from outside (URLs, JSON, custom_ids)."""

from __future__ import annotations

import re

import pytest

from bot import ids


@pytest.mark.parametrize("text", ["9" * 5000, "9" * 19, str(2**63), "0", "-1", "+1", "007", " 1", "1 ", "1.0",
                                  "\u0661\u0662", "\u00b2", "１", "", None, 12, True])
def test_anything_but_a_row_id_is_none(text):
    assert ids.row_id(text) is None


def test_row_ids_snowflakes_and_pages():
    assert ids.row_id("1") == 1 and ids.row_id("9" * 18) == int("9" * 18)
    assert ids.snowflake(str(2**63 - 1)) == 2**63 - 1 and ids.snowflake(str(2**63)) is None
    assert ids.snowflake("9" * 5000) is None
    assert [ids.page(p) for p in ("0", "1", str(ids.MAX_PAGE), str(ids.MAX_PAGE + 1), "01", "9" * 5000)] == [
        0, 1, ids.MAX_PAGE, None, None, None]


def test_button_templates_use_the_same_patterns():
    """A custom_id's id is what row_id accepts, and no more."""
    for text in ("1", "9" * 18, "9" * 19, "0", "007", "\u0661"):
        assert (re.fullmatch(ids.ROW_ID, text) is not None) == (ids.row_id(text) is not None), text
