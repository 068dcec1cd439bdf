"""The prompt language: `/imagine` text -> a typed, validated `Request`.

    a lighthouse in a storm --ar 3:2 --seed 7 --no people, boats --p k3xq7ab::2 --s 250

Everything before the first parameter is the prompt text; each `--name` (or
`—name`, as phones autocorrect it) takes the text up to the next parameter as
its value. Every bad input raises `ParamError`, whose message is short markdown
naming the parameter, the value and what is allowed, ready to show a member.

Before parsing, `permutations()` turns one prompt into several: `a {red, blue}
bird --ar {1:1, 2:3}` is four prompts (braces nest; `\\,` is a comma inside a
choice). In the text, `a:: b::2` is a multi-prompt (`prompt_parts()`): each
part is encoded on its own and the embeddings are mixed by weight; a negative
weight pushes away from its part, as Midjourney's `::-0.5`.

`--p` takes codes (each optionally weighted, `k3xq7ab::2`), the word
`server` (the community's own taste: `--p server::1 k3xq7ab::2`), or nothing:
a bare `--p` is the member's default mix (their main profile's current code,
or the profiles `/prefer personalize` mixes), filled in with
`Request.with_default_mix` so the message shows the codes it stood for.

`--style raw` means the model as it is: the engine keeps the preset's own
guidance at every `--s` (no stylize boost), and the bot does not add the
member's default `--p` from /settings (an explicit `--p` still applies).

Pure Python (stdlib + pydantic): the bot imports this and never imports torch.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.jobs import MAX_CLIPS, MAX_IMAGE_WEIGHT, MAX_PROMPT_IMAGES, MAX_SEED

__all__ = [
    "CODE_RE", "CodeWeight", "ParamError", "Request", "dimensions", "expand", "is_code",
    "matching_key", "normalize", "parse", "permutations", "prompt_parts", "validate_option_name",
    "validate_option_value",
]

MAX_TEXT = 1500  # prompt text, without parameters
MAX_INPUT = 6000  # whole input, parameters included (Discord's option limit)
MAX_NEGATIVE = 1000  # the `--no` list, as written by canonical()
MAX_CODES = 8  # codes in one `--p`
SERVER = "server"  # `--p server`: the community's taste (engine/profiles.py SERVER)
MAX_URL = 2048  # a link's length; browsers and CDNs stop around here
MAX_OPTION_VALUE = 200
MAX_JOBS = 40  # jobs one prompt may make ({a, b} permutations x --repeat); a server sets its own cap up to this
MAX_NESTING = 8  # levels of `{` inside `{`
MAX_PARTS = 10  # parts of a multi-prompt `a:: b::2`, each encoded on its own
MAX_PART_WEIGHT = 100
STYLES = ("raw",)
MOTIONS = ("low", "high")
CLIP_COUNTS = tuple(str(n) for n in (1, 2, 4) if n <= MAX_CLIPS)  # --bs, as Midjourney's batch sizes
VIDEO_ONLY = ("motion", "loop", "end", "clips")  # parameters that need --video

CODE_RE = re.compile(r"[a-z2-7]{7}", re.IGNORECASE | re.ASCII)  # use with fullmatch
_MARK_RE = re.compile(r"(?<!\S)(?:--|\u2014)([A-Za-z]\S*)")  # `--name` / `—name`
_INT_RE = re.compile(r"[0-9]+")
_DEC_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_WEIGHT_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3})?|\.[0-9]{1,3}")
_ASPECT_RE = re.compile(r"([0-9]{1,6}):([0-9]{1,6})")
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
_PRESET_RE = re.compile(r"[a-z0-9_.-]{1,64}")
_OPTION_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# `::` ends a multi-prompt part; a number right after it (then a space or the end) is that part's weight.
_PART_RE = re.compile(r"::(?:(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?=\s|$))?")


class ParamError(ValueError):
    """Bad `/imagine` input. The message is markdown meant for the member (ephemeral)."""


# 0. Member text, normalised once ------------------------------------------------

# Code points that render as nothing outside the format category (Cf, dropped
# whole): Unicode's other default-ignorable ones (Hangul fillers, the combining
# grapheme joiner, variation selectors, Khmer inherent vowels, Mongolian
# selectors) and the braille blank, a favourite "empty" character.
_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0]
    + list(range(0x180B, 0x1810)) + list(range(0xFE00, 0xFE10)) + list(range(0xE0100, 0xE01F0))
)
_KEEP_CONTROLS = frozenset("\t\n\r")  # whitespace: split() turns it into spaces


def _visible(text: str) -> str:
    return "".join(
        c for c in text
        if ord(c) not in _INVISIBLE
        and (unicodedata.category(c) not in ("Cf", "Cc") or c in _KEEP_CONTROLS)
    )


def normalize(text: str) -> str:
    """Member text as the bot reads it: NFKC (full-width and other compatibility
    forms folded: `ｂａｄ` -> `bad`, `－－ｓ` -> `--s`), with format characters
    (zero-width, soft hyphen, bidi controls, tags), other invisible ones and
    control characters dropped. Idempotent; case and accents are kept.

    Dropped before NFKC too, so that a letter and a combining mark split by a
    zero-width character compose like the pair typed plainly."""
    return _visible(unicodedata.normalize("NFKC", _visible(text)))


_SEPARATED_LETTERS_RE = re.compile(r"(?<!\w)\w(?:[\W_]{1,3}\w)+(?!\w)")  # "b.a.d", "b a d", "b-a-d"


def matching_key(text: str) -> str:
    """Text folded for matching a banned word: normalize(), case folded, accents
    and other combining marks dropped (`BÄD` -> `bad`), and runs of single
    letters split by punctuation or spaces joined (`b.a.d` / `b a d` -> `bad`).
    Apply it to both sides of a comparison."""
    joined = _SEPARATED_LETTERS_RE.sub(lambda m: re.sub(r"[\W_]", "", m[0]), _bare(text))
    return " ".join(joined.split())


def _bare(text: str) -> str:
    """normalize(), case folded, accents and other combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", normalize(text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_LETTER_BEFORE, _LETTER_AFTER = r"(?<![^\W_])", r"(?![^\W_])"  # no letter or digit next to it


def banned_in(word: str, text: str) -> bool:
    """Whether a banned word, as a server owner wrote it, occurs in a member's text, both
    folded by matching_key: as a whole word (`ass` is not in `class`), or where the word
    starts or ends with `*`, also as the end, start or inside of a longer one (`*ass*` is).
    Spelled out, its letters count wherever they run (`a g.o.r.e fest` has `gore`)."""
    return first_banned([word], text) is not None


def first_banned(words: Iterable[str], text: str) -> str | None:
    """The first of a server's banned words (banned_in) in a member's text, or None; the text is
    folded once, however many words the owner banned."""
    folded = matching_key(text)
    # A run of single letters has no word edges to go by: `a g o r e` may be "a gore".
    runs = [re.sub(r"[\W_]", "", run[0]) for run in _SEPARATED_LETTERS_RE.finditer(_bare(text))]
    for word in words:
        key = matching_key(word.strip("*"))
        if not key:
            continue
        before = "" if word.startswith("*") else _LETTER_BEFORE
        after = "" if word.endswith("*") else _LETTER_AFTER
        letters = key.replace(" ", "")
        if re.search(before + re.escape(key) + after, folded) or any(letters in run for run in runs):
            return word
    return None


def is_code(s: object) -> bool:
    """True for a profile code: 7 base32 characters (`[a-z2-7]`), any case."""
    return isinstance(s, str) and CODE_RE.fullmatch(s) is not None


# 1. The typed request -------------------------------------------------------

class CodeWeight(BaseModel):
    """One `--p` entry: a code, SERVER (the community's taste), or None for a bare
    `--p` (the member's default mix, filled in with `Request.with_default_mix`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str | None = None
    weight: float = Field(1.0, gt=0, le=100)


class Request(BaseModel):
    """A parsed `/imagine` prompt. Defaults are what a prompt without parameters means."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str
    negative: tuple[str, ...] = ()
    aspect: tuple[int, int] = (1, 1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    chaos: int = Field(0, ge=0, le=100)
    stylize: int | None = Field(None, ge=0, le=1000)  # None: the member's default
    personalize: tuple[CodeWeight, ...] | None = None  # None: not asked for
    quality: float = 1.0
    tile: bool = False
    sref: str | None = None
    preset: str | None = None
    stop: int = Field(100, ge=10, le=100)  # % of the denoising run before decoding
    style: str | None = None  # "raw": no stylize boost, no default --p
    repeat: int = Field(1, ge=1, le=MAX_JOBS)  # jobs from this prompt; the bot queues each with repeat 1
    image_links: tuple[str, ...] = Field((), max_length=MAX_PROMPT_IMAGES)  # image prompts: links before the text
    image_weight: float = Field(1.0, ge=0, le=MAX_IMAGE_WEIGHT)  # --iw
    # Animate (--video): a start frame (an attachment or the first image link) becomes clips.
    video: bool = False
    motion: str | None = None  # "low" (the default) or "high"
    loop: bool = False  # the clip ends on its start frame
    end: str | None = None  # --end URL: the clip ends on this image
    clips: int | None = Field(None, ge=1, le=MAX_CLIPS)  # --bs: clips to make (within the server's choice)

    @property
    def raw(self) -> bool:
        return self.style == "raw"

    @property
    def links(self) -> tuple[str, ...]:
        """The image links the bot fetches for it: image prompts, a `--sref` link and `--end`."""
        sref = [self.sref] if self.sref and not is_code(self.sref) else []
        return (*self.image_links, *sref, *([self.end] if self.end else []))

    @field_validator("quality")
    @classmethod
    def _quality_ok(cls, q: float) -> float:
        if q not in (0.5, 1.0, 2.0):
            raise ValueError("quality must be 0.5, 1 or 2")
        return q

    @field_validator("aspect")
    @classmethod
    def _aspect_ok(cls, a: tuple[int, int]) -> tuple[int, int]:
        if min(a) <= 0:
            raise ValueError("aspect must be positive")
        return a

    def canonical(self) -> str:
        """The prompt with only non-default parameters, in a fixed order; parses back to self."""
        parts = [*self.image_links, self.text]
        written = set()
        for spec in _SPECS:
            value = getattr(self, spec.field)
            if value != Request.model_fields[spec.field].default and spec.field not in written:
                parts.append(f"--{spec.names[0]} {spec.render(value)}".rstrip())
                written.add(spec.field)
        return " ".join(p for p in parts if p)

    def with_(self, **changes: Any) -> Request:
        """A validated copy with some fields changed."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @property
    def member_text(self) -> str:
        """Every word of the member's that is shown back: the description, the `--no`
        terms, image links and a `--sref` link (not parameter names, codes or numbers)."""
        return " ".join([*self.image_links, self.text, *self.negative, *([self.sref] if self.sref else [])])

    @property
    def uses_current_code(self) -> bool:
        """True when a bare `--p` asks for the member's default mix (their current code)."""
        return any(cw.code is None for cw in self.personalize or ())

    def with_current_code(self, code: str) -> Request:
        """Fill a bare `--p` with the member's current code (shown back to them)."""
        return self.with_default_mix([(code, 1.0)])

    def with_default_mix(self, picks: Sequence[tuple[str, float]]) -> Request:
        """Fill a bare `--p` with the codes and weights of the member's default mix
        (engine/profiles.py default_picks), shown back to them: `--p` with a mix of
        main::2 and a moodboard becomes `--p k3xq7ab::2 m4zz2qa`. A lone pick
        keeps the bare `--p`'s weight. ValueError for a pick that is not a code."""
        if not picks:
            raise ValueError("a default mix needs at least one code")
        for code, weight in picks:
            if not (is_code(code) or code.lower() == SERVER) or not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"not a code and weight: {code!r}, {weight!r}")
        if not self.uses_current_code:
            return self
        merged: dict[str, float] = {}
        for cw in self.personalize or ():
            mix = [(cw.code, 1.0)] if cw.code is not None else [(c.lower(), w) for c, w in picks]
            for code, weight in mix:
                shown = cw.weight if len(mix) == 1 else cw.weight * weight
                merged[code] = merged.get(code, 0.0) + shown
        filled = tuple(CodeWeight(code=code, weight=min(100.0, max(0.001, round(weight, 3))))
                       for code, weight in merged.items())
        return self.with_(personalize=filled)


# 2. Tokenizing: prose, then `--name value` segments ---------------------------

@dataclass(frozen=True)
class _Seg:
    raw: str  # the marker as written: "—AR"
    flag: str  # as shown in messages: "--AR"
    name: str  # looked up: "ar"
    value: str  # text up to the next marker, stripped


def _tokenize(text: str) -> tuple[str, list[_Seg]]:
    marks = list(_MARK_RE.finditer(text))
    prose = text[: marks[0].start()] if marks else text
    segs = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        segs.append(_Seg(m.group(0), "--" + m.group(1), m.group(1).lower(), text[m.end():end].strip()))
    return prose, segs


def _q(*parts: str) -> str:
    """Inline markdown code for a flag/value, kept short and unbreakable."""
    s = " ".join(" ".join(parts).split()).replace("`", "'")
    if len(s) > 60:
        s = s[:57] + "…"
    return f"`{s}`" if s else "nothing"


# 3. One converter per kind of value ------------------------------------------

@dataclass(frozen=True)
class _Spec:
    field: str  # Request field
    title: str  # name in messages: "stylize takes 0–1000"
    names: tuple[str, ...]  # canonical flag first
    allowed: str
    convert: Callable[[_Seg, _Spec, Collection[str]], Any]
    render: Callable[[Any], str]  # value -> text after the flag in canonical()


def _fail(seg: _Seg, spec: _Spec, value: str, why: str) -> ParamError:
    return ParamError(f"{_q(seg.flag, value)} {why}: {spec.title} takes {spec.allowed}.")


def _one(seg: _Seg, spec: _Spec) -> str:
    tokens = seg.value.split()
    if not tokens:
        raise ParamError(f"{_q(seg.flag)} needs a value: {spec.title} takes {spec.allowed}.")
    if len(tokens) > 1:
        raise ParamError(f"Unexpected {_q(*tokens[1:])} after {_q(seg.flag, tokens[0])}. "
                         "Parameters go at the end of the prompt, after the description.")
    return tokens[0]


def _integer(lo: int, hi: int) -> Callable[[_Seg, _Spec, Collection[str]], int]:
    def convert(seg: _Seg, spec: _Spec, presets: Collection[str]) -> int:
        tok = _one(seg, spec)
        if not _INT_RE.fullmatch(tok):
            raise _fail(seg, spec, tok, "is not a whole number")
        n = int(tok) if len(tok.lstrip("0")) <= 12 else hi + 1  # no int() of huge strings
        if not lo <= n <= hi:
            raise _fail(seg, spec, tok, "is out of range")
        return n
    return convert


def _aspect(seg: _Seg, spec: _Spec, presets: Collection[str]) -> tuple[int, int]:
    tok = _one(replace(seg, value=re.sub(r"\s*:\s*", ":", seg.value)), spec)
    m = _ASPECT_RE.fullmatch(tok)
    w, h = (int(m[1]), int(m[2])) if m else (0, 0)
    if not w or not h:
        raise _fail(seg, spec, tok, "is not a ratio of positive whole numbers")
    if w > 4 * h or h > 4 * w:
        raise _fail(seg, spec, tok, "is out of range")
    g = math.gcd(w, h)
    return w // g, h // g


def _negative(seg: _Seg, spec: _Spec, presets: Collection[str]) -> tuple[str, ...]:
    terms = tuple(t for t in (" ".join(p.split()) for p in seg.value.split(",")) if t)
    if not terms:
        raise ParamError(f"{_q(seg.flag)} needs a value: {spec.title} takes {spec.allowed}.")
    if (n := len(", ".join(terms))) > MAX_NEGATIVE:
        raise ParamError(f"{_q(seg.flag)} is too long ({n} characters); the limit is {MAX_NEGATIVE}.")
    return terms


def _personalize(seg: _Seg, spec: _Spec, presets: Collection[str]) -> tuple[CodeWeight, ...]:
    tokens = seg.value.replace(",", " ").split()
    if not tokens:
        return (CodeWeight(code=None),)
    if len(tokens) > MAX_CODES:
        raise ParamError(f"{_q(seg.flag)} got {len(tokens)} codes: {spec.title} takes at most {MAX_CODES}.")
    out: list[CodeWeight] = []
    for tok in tokens:
        code, sep, weight = tok.partition("::")
        if not (is_code(code) or code.lower() == SERVER):
            raise ParamError(f"{_q(seg.flag, tok)}: {_q(code)} is not a code. Codes are 7 characters of "
                             f"a–z and 2–7, like `k3xq7ab`; `{SERVER}` is the community's taste.")
        code = code.lower()
        if any(cw.code == code for cw in out):
            raise ParamError(f"{_q(seg.flag, code)}: the code `{code}` is given twice. List each code once.")
        if sep and not (_WEIGHT_RE.fullmatch(weight) and 0 < float(weight) <= 100):
            raise ParamError(f"{_q(seg.flag, tok)} has a bad weight {_q(weight)}: a weight is a "
                             f"number above 0 and at most 100, like `{code}::2`.")
        out.append(CodeWeight(code=code, weight=float(weight) if sep else 1.0))
    return tuple(out)


def _quality(seg: _Seg, spec: _Spec, presets: Collection[str]) -> float:
    tok = _one(seg, spec)
    if not _DEC_RE.fullmatch(tok):
        raise _fail(seg, spec, tok, "is not a number")
    if (q := float(tok)) not in (0.5, 1.0, 2.0):
        raise _fail(seg, spec, tok, "is out of range")
    return q


def _tile(seg: _Seg, spec: _Spec, presets: Collection[str]) -> bool:
    if seg.value:
        raise ParamError(f"{_q(seg.flag)} takes no value, but got {_q(seg.value)}. "
                         "Parameters go at the end of the prompt, after the description.")
    return True


def _word_in(words: Collection[str], noun: str):
    """A parameter that takes one of `words` (any case): `--style raw`, `--motion high`."""

    def parse(seg: _Seg, spec: _Spec, presets: Collection[str]) -> str:
        tok = _one(seg, spec)
        if tok.lower() not in words:
            raise _fail(seg, spec, tok, f"is not a {noun}")
        return tok.lower()

    return parse


def _image_weight(seg: _Seg, spec: _Spec, presets: Collection[str]) -> float:
    tok = _one(seg, spec)
    if not _DEC_RE.fullmatch(tok) or len(tok) > 12:
        raise _fail(seg, spec, tok, "is not a number")
    if not 0 <= (iw := float(tok)) <= MAX_IMAGE_WEIGHT:
        raise _fail(seg, spec, tok, "is out of range")
    return iw


def _raw(seg: _Seg, spec: _Spec, presets: Collection[str]) -> str:
    _tile(seg, spec, presets)  # a flag: no value
    return "raw"


def _clips(seg: _Seg, spec: _Spec, presets: Collection[str]) -> int:
    tok = _one(seg, spec)
    if tok not in CLIP_COUNTS:
        raise _fail(seg, spec, tok, "is not a number of clips" if not _INT_RE.fullmatch(tok) else "is out of range")
    return int(tok)


def _end(seg: _Seg, spec: _Spec, presets: Collection[str]) -> str:
    tok = _one(seg, spec)
    if not _URL_RE.fullmatch(tok):
        raise _fail(seg, spec, tok, "is not a link")
    if len(tok) > MAX_URL:
        raise ParamError(f"{_q(seg.flag, tok)} is too long ({len(tok)} characters): a link may be at most {MAX_URL}.")
    return tok


def _leading_links(body: str) -> tuple[tuple[str, ...], str]:
    """Image prompts: the http(s) links before the description, as in Midjourney."""
    words = body.split(" ")
    links = []
    while words and _URL_RE.fullmatch(words[0]):
        link = words.pop(0)
        if len(link) > MAX_URL:
            raise ParamError(f"The image link {_q(link)} is too long ({len(link)} characters): "
                             f"a link may be at most {MAX_URL}.")
        links.append(link)
    if len(links) > MAX_PROMPT_IMAGES:
        raise ParamError(f"Your prompt starts with {len(links)} image links; a prompt takes at most {MAX_PROMPT_IMAGES}.")
    return tuple(links), " ".join(words)


def _sref(seg: _Seg, spec: _Spec, presets: Collection[str]) -> str:
    tok = _one(seg, spec)
    if is_code(tok):
        return tok.lower()
    if _URL_RE.fullmatch(tok):
        if len(tok) > MAX_URL:
            raise ParamError(f"{_q(seg.flag, tok)} is too long ({len(tok)} characters): "
                             f"a link may be at most {MAX_URL}.")
        return tok
    raise _fail(seg, spec, tok, "is not a code or a link")


def _preset(seg: _Seg, spec: _Spec, presets: Collection[str]) -> str:
    tok = _one(seg, spec)
    if presets:
        known = {p.lower(): p for p in presets}
        if tok.lower() in known:
            return known[tok.lower()]
        names = ", ".join(f"`{p}`" for p in sorted(presets))
        raise ParamError(f"{_q(seg.flag, tok)} is not a model: {spec.title} takes one of {names}.")
    if not _PRESET_RE.fullmatch(tok.lower()):
        raise _fail(seg, spec, tok, "is not a model name")
    return tok.lower()


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _render_p(codes: tuple[CodeWeight, ...]) -> str:
    return " ".join(cw.code + ("" if cw.weight == 1 else f"::{_num(cw.weight)}")
                    for cw in codes if cw.code)


# Order here is the order of canonical(); the first name is the one it writes.
_SPECS: tuple[_Spec, ...] = (
    _Spec("aspect", "aspect", ("ar", "aspect"), "W:H from 1:4 to 4:1, like `3:2`",
          _aspect, lambda a: f"{a[0]}:{a[1]}"),
    _Spec("seed", "seed", ("seed",), f"0–{MAX_SEED}", _integer(0, MAX_SEED), str),
    _Spec("negative", "the negative prompt", ("no",), "a comma-separated list, like `--no text, blur`",
          _negative, ", ".join),
    _Spec("personalize", "personalize", ("p", "personalize"),
          f"up to {MAX_CODES} codes or `{SERVER}`, each optionally weighted: `--p k3xq7ab::2 m4zz2qa`",
          _personalize, _render_p),
    _Spec("stylize", "stylize", ("s", "stylize"), "0–1000", _integer(0, 1000), str),
    _Spec("chaos", "chaos", ("c", "chaos"), "0–100", _integer(0, 100), str),
    _Spec("quality", "quality", ("q", "quality"), "`.5`, `1` or `2`", _quality,
          lambda q: _num(q).removeprefix("0")),
    _Spec("stop", "stop", ("stop",), "10–100 (% of the steps)", _integer(10, 100), str),
    _Spec("style", "style", ("style",), "`raw`", _word_in(STYLES, "style"), str),
    _Spec("style", "raw", ("raw",), "no value (it is `--style raw`)", _raw, str),
    _Spec("repeat", "repeat", ("repeat", "r"), f"1–{MAX_JOBS}", _integer(1, MAX_JOBS), str),
    _Spec("tile", "tile", ("tile",), "no value", _tile, lambda _: ""),
    _Spec("sref", "sref", ("sref",), "a 7-character code or an http(s) image link", _sref, str),
    _Spec("image_weight", "image weight", ("iw",), f"0–{MAX_IMAGE_WEIGHT:g}, like `--iw 1.5`", _image_weight, _num),
    _Spec("preset", "version", ("v", "version"), "a model name like `tiny`", _preset, str),
    _Spec("video", "video", ("video",), "no value", _tile, lambda _: ""),
    _Spec("motion", "motion", ("motion",), "`low` or `high`", _word_in(MOTIONS, "motion"), str),
    _Spec("loop", "loop", ("loop",), "no value", _tile, lambda _: ""),
    _Spec("end", "end frame", ("end",), "an http(s) image link", _end, str),
    _Spec("clips", "batch size", ("bs",), "`1`, `2` or `4` (clips)", _clips, str),
)
_BY_NAME: dict[str, _Spec] = {name: spec for spec in _SPECS for name in spec.names}


# 4. Public functions -----------------------------------------------------------

def parse(text: str, presets: Collection[str] = ()) -> Request:
    """Parse a prompt (already expanded). `presets` names the valid `--v` values; empty = any name.

    The text is normalize()d first, so invisible characters count for nothing:
    a prompt made only of them has no description."""
    if len(text) > MAX_INPUT:
        raise ParamError(f"Your prompt is {len(text)} characters long; the limit is {MAX_INPUT}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates: cannot be stored or sent as JSON
        raise ParamError(f"Your prompt has a broken character at position {e.start + 1}.") from None
    text = normalize(text)
    prose, segs = _tokenize(text)
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field -> flag as first written
    for seg in segs:
        spec = _BY_NAME.get(seg.name)
        if spec is None:
            close = difflib.get_close_matches(seg.name, list(_BY_NAME), n=1)
            hint = f" Did you mean `--{close[0]}`?" if close else ""
            known = ", ".join(f"`--{s.names[0]}`" for s in _SPECS)
            raise ParamError(f"{_q(seg.flag)} is not a parameter.{hint} Known: {known}.")
        if spec.field in given:
            first = given[spec.field]
            also = "" if first.lower() == seg.flag.lower() else f" (also as {_q(first)})"
            raise ParamError(f"{_q(seg.flag)} is given twice{also}. Use each parameter once.")
        given[spec.field] = seg.flag
        values[spec.field] = spec.convert(seg, spec, presets)
    links, body = _leading_links(" ".join(prose.split()))
    if not body and not links:
        raise ParamError("Your prompt has no description. Describe the image first, "
                         "then add parameters: `a lighthouse in a storm --ar 3:2`.")
    if len(body) > MAX_TEXT:
        raise ParamError(f"Your prompt is {len(body)} characters long; the limit is {MAX_TEXT} "
                         "(not counting parameters).")
    if body:
        prompt_parts(body)  # a bad multi-prompt fails here, not on a worker
    if values.get("repeat", 1) > 1 and values.get("seed") is not None:
        raise ParamError(f"{_q(given['repeat'], str(values['repeat']))} with {_q(given['seed'], str(values['seed']))} "
                         f"would make the same images {values['repeat']} times: drop one of them.")
    if not values.get("video"):
        for name in VIDEO_ONLY:
            if name in given:
                raise ParamError(f"{_q(given[name])} animates an image: add `--video` (with an image attached, "
                                 "or its link at the start of the prompt).")
    if values.get("loop") and values.get("end"):
        raise ParamError(f"{_q(given['loop'])} ends the clip on its start frame and {_q(given['end'])} on another "
                         "image: use one of them.")
    if links:
        values["image_links"] = links
    return Request(text=body, **values)


def prompt_parts(text: str) -> tuple[tuple[str, float], ...]:
    """A multi-prompt's parts and weights: `space:: ship::2` -> (("space", 1.0), ("ship", 2.0)).

    Text without `::` is one part of weight 1. A part's weight follows its `::`
    (1 when no number does); the text after the last `::` is a part of weight 1.
    Weights run from -100 to 100 and must add up to more than 0, as in Midjourney."""
    if "::" not in text:
        return ((text, 1.0),)
    parts: list[tuple[str, float]] = []
    start = 0
    for m in _PART_RE.finditer(text):
        part, weight = " ".join(text[start:m.start()].split()), m[1]
        start = m.end()
        if not part:
            raise ParamError(f"The multi-prompt part before {_q(m[0])} is empty: write text before each `::`, "
                             "like `space:: ship::2`.")
        w = float(weight) if weight else 1.0
        if abs(w) > MAX_PART_WEIGHT:
            raise ParamError(f"{_q(part[-20:] + m[0])} is out of range: a multi-prompt weight takes "
                             f"-{MAX_PART_WEIGHT}–{MAX_PART_WEIGHT}.")
        parts.append((part, w))
    if tail := " ".join(text[start:].split()):
        parts.append((tail, 1.0))
    if len(parts) > MAX_PARTS:
        raise ParamError(f"Your multi-prompt has {len(parts)} parts; the limit is {MAX_PARTS}.")
    if (total := sum(w for _, w in parts)) <= 0:
        raise ParamError(f"The multi-prompt weights add up to {_num(total)}: they must add up to more than 0 "
                         "(a negative part only pushes away from what the others draw).")
    return tuple(parts)


# 5. Permutations: {a, b} makes one prompt per choice -------------------------------

_Seq = list  # of str and _Group
_Group = list  # of _Seq: the choices of one {…}


def _braces(text: str) -> _Seq:
    """text -> a sequence of literal strings and groups of choices (nested)."""
    stack: list[tuple[_Seq, _Group, int]] = []  # (outer sequence, the open group, where its `{` is)
    seq: _Seq = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text.startswith("\\,", i) and stack:  # an escaped comma inside a choice
            literal.append(",")
            i += 2
            continue
        if c in "{,}" and (c != "," or stack):
            seq.append("".join(literal))
            literal = []
            if c == "{":
                if len(stack) >= MAX_NESTING:
                    raise ParamError(f"Your prompt nests `{{` more than {MAX_NESTING} deep.")
                stack.append((seq, [], i))
                seq = []
            elif not stack:
                raise ParamError(f"The `}}` at character {i + 1} has no `{{` before it. "
                                 "Braces list choices: `a {red, blue} bird`.")
            else:
                outer, group, _ = stack[-1]
                group.append(seq)
                seq = []
                if c == "}":
                    stack.pop()
                    outer.append(group)
                    seq = outer
        else:
            literal.append(c)
        i += 1
    if stack:
        raise ParamError(f"The `{{` at character {stack[-1][2] + 1} is never closed. "
                         "Braces list choices: `a {red, blue} bird`.")
    seq.append("".join(literal))
    return seq


def _count(item: _Seq | _Group | str, group: bool = False) -> int:
    if isinstance(item, str):
        return 1
    if group:
        return sum(_count(choice) for choice in item)
    return math.prod(_count(part, group=not isinstance(part, str)) for part in item)


def _texts(seq: _Seq) -> list[str]:
    out = [""]
    for part in seq:
        if isinstance(part, str):
            out = [prefix + part for prefix in out]
        else:  # a group: each choice (stripped, as `{a, b}` reads) in turn
            choices = [text.strip() for choice in part for text in _texts(choice)]
            out = [prefix + choice for prefix in out for choice in choices]
    return out


def permutations(text: str, limit: int = MAX_JOBS) -> list[str]:
    """One prompt per combination of `{…}` choices, in reading order:
    `a {red, blue} bird --ar {1:1, 2:3}` -> 4 prompts. Braces nest; `\\,` is a
    literal comma inside a choice. More than `limit` prompts is a ParamError.
    A prompt without braces is returned as it is (normalize()d)."""
    text = normalize(text)
    if not any(c in text for c in "{}"):
        return [text]
    tree = _braces(text)
    n = _count(tree)
    if n > limit:
        shown = f"{n:,}" if n < 10**9 else "over a billion"
        raise ParamError(f"This prompt makes {shown} jobs with its `{{…}}` choices; this server allows at most "
                         f"{limit} from one prompt.")
    return [" ".join(t.split()) for t in _texts(tree)]


def expand(text: str, options: Mapping[str, str] | None = None, suffix: str = "") -> str:
    """Replace the member's custom `--NAME` options by their values and append their suffix.

    One pass (an option's value is not expanded again). Prose from option values and
    the suffix joins the description; parameters follow it. A suffix parameter the
    prompt already sets is dropped, so what the member typed wins. All three are
    normalize()d first, so `－－ａｒ` or `--a\u200br` is the parameter it looks like.
    """
    text, suffix = normalize(text), normalize(suffix)
    opts = {k.lower(): normalize(v) for k, v in (options or {}).items() if k.lower() not in _BY_NAME}
    prose: list[str] = []

    def split(source: str) -> list[_Seg]:
        head, segs = _tokenize(source)
        prose.append(head)
        out: list[_Seg] = []
        for seg in segs:
            if seg.name in opts:
                value_head, value_segs = _tokenize(opts[seg.name])
                prose.extend((value_head, seg.value))
                out.extend(value_segs)
            else:
                out.append(seg)
        return out

    mine = split(text)
    fields = {_BY_NAME[s.name].field for s in mine if s.name in _BY_NAME}
    extra = [s for s in split(suffix) if s.name not in _BY_NAME or _BY_NAME[s.name].field not in fields]
    parts = [" ".join(" ".join(prose).split())] + [f"{s.raw} {s.value}".strip() for s in mine + extra]
    return " ".join(p for p in parts if p)


def validate_option_name(name: str) -> str:
    """Check a `/prefer option set` name; returns it normalised (lower case, no leading `--`)."""
    n = re.sub(r"^(?:--|\u2014)", "", name.strip()).lower()
    if not _OPTION_RE.fullmatch(n):
        raise ParamError(f"{_q(name)} is not a valid option name: use 1–32 characters of "
                         "a–z, 0–9, `_` and `-`, starting with a letter.")
    if n in _BY_NAME:
        raise ParamError(f"`--{n}` is a built-in parameter; pick another name for your option.")
    return n


def validate_option_value(value: str, presets: Collection[str] = ()) -> str:
    """Check a custom option's value (parameters, prose or both); returns it whitespace-normalised."""
    v = " ".join(normalize(value).split())
    if not v:
        raise ParamError("An option needs a value, like `--ar 16:9 --s 250`.")
    if len(v) > MAX_OPTION_VALUE:
        raise ParamError(f"The option value is {len(v)} characters long; the limit is {MAX_OPTION_VALUE}.")
    parse(f"x {v}", presets)
    return v


def dimensions(aspect: tuple[int, int], base: int) -> tuple[int, int]:
    """(width, height): multiples of 64 with about base*base pixels, ratio close to aspect.

    Ratio error counts four times as much as area error (both in log space), so
    small bases keep the shape (3:2 at base 128 -> 192x128) and large ones land on
    the usual buckets (16:9 at 1024 -> 1344x768).
    """
    w, h = aspect
    if w <= 0 or h <= 0 or base < 64:
        raise ValueError(f"bad aspect {aspect!r} or base {base!r}")
    if w < h:
        return dimensions((h, w), base)[::-1]
    ratio, area = w / h, base * base / 4096  # area in 64x64 units
    best: tuple[float, int, int] | None = None
    for hu in range(1, int(base / 64 / math.sqrt(ratio)) * 2 + 3):
        for wu in {max(1, math.floor(hu * ratio)), math.ceil(hu * ratio)}:
            cost = abs(math.log(wu / hu / ratio)) + 0.25 * abs(math.log(wu * hu / area))
            cand = (round(cost, 9), wu, hu)
            best = cand if best is None or cand < best else best
    assert best is not None
    return best[1] * 64, best[2] * 64
