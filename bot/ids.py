"""Ids and page numbers from outside the bot (URLs, query strings, JSON, custom_ids): one parser.

The length is bounded before anything is converted: Python refuses `int()` of a
digit string longer than 4300 characters (a ValueError, before any range check
could run), and `\\d` and `str.isdigit` also accept other scripts' digits and
superscripts. So an id is ASCII digits that fit SQLite's INTEGER, no sign, no
leading zero; anything else is "not found". The button templates (bot/views)
use the same patterns.
"""

from __future__ import annotations

import re

# 18 digits at most: a row id always fits SQLite's INTEGER (2**63 - 1 has 19 digits).
ROW_ID = r"[1-9][0-9]{0,17}"
# A Discord snowflake (a member, a server): compared, never looked up; below 2**63 for ages yet.
USER_ID = r"[1-9][0-9]{0,18}"
MAX_PAGE = 10_000  # Explore's pages: ?page= past this is not found

_ROW_ID_RE, _USER_ID_RE, _PAGE_RE = re.compile(ROW_ID), re.compile(USER_ID), re.compile(r"0|[1-9][0-9]{0,4}")


def _number(pattern: re.Pattern[str], text: object, maximum: int) -> int | None:
    if not isinstance(text, str) or pattern.fullmatch(text) is None:  # the length first: the pattern bounds it
        return None
    number = int(text)
    return number if number <= maximum else None


def row_id(text: object) -> int | None:
    """A database row's id (an image, a pair, a pending prompt), or None."""
    return _number(_ROW_ID_RE, text, 2**63 - 1)


def snowflake(text: object) -> int | None:
    """A Discord id (a server, a member), or None."""
    return _number(_USER_ID_RE, text, 2**63 - 1)


def page(text: object) -> int | None:
    """A page number, 0 to MAX_PAGE, or None."""
    return _number(_PAGE_RE, text, MAX_PAGE)


def role_ids(user: object) -> tuple[int, ...]:
    """A member's roles on the server of an interaction (none in DMs): what role quotas read."""
    return tuple(role.id for role in getattr(user, "roles", ()))
