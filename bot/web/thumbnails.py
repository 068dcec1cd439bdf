"""Thumbnails: WebP copies of stored images sized for where a page shows them.

Made on first request and kept under ``<data dir>/thumbs/<size>/`` beside the path
of their original (``thumbs/384/images/<job>/1.webp``), encoded in a thread so the
bot's loop never waits on Pillow, one encode per file even when many requests
ask at once. Their URLs carry a version made from the original's path, so an
image id that SQLite hands out again after a deletion never shows a browser's
cached copy of the old picture: every URL names one picture forever, and is
served as ``immutable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from PIL import Image

SMALL, LARGE = 384, 768  # long side: tiles and strips; Rank's pair and the image page
SIZES = (SMALL, LARGE)
THUMBS = "thumbs"  # under the data dir; remade on demand, so backups leave it out
WEBP_QUALITY = 75  # cwebp's default: about 115 KB for a detailed 1024-px picture at 768 (bench/web_bytes.py)


def version(relative: str) -> str:
    """A short tag of the original's path (unique per picture: job ids are never reused)."""
    return hashlib.sha1(relative.encode()).hexdigest()[:10]


def image_url(image_id: int, relative: str, size: int) -> str:
    return f"/img/{image_id}/{size}/{version(relative)}.webp"


def pool_url(pool_image_id: int, relative: str, size: int) -> str:
    return f"/img/pool/{pool_image_id}/{size}/{version(relative)}.webp"


def thumb_path(root: Path, relative: str, size: int) -> Path:
    return root / THUMBS / str(size) / Path(relative).with_suffix(".webp")


def encode(source: Path, target: Path, size: int) -> None:
    """Write a WebP of ``source`` at most ``size`` px on its long side (never enlarged), atomically."""
    with Image.open(source) as image:
        image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGB")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        image.save(partial, "WEBP", quality=WEBP_QUALITY, method=4)
    os.replace(partial, target)


class Thumbnails:
    """The thumbnail cache of one data dir."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir).resolve()
        self._encoding: dict[Path, asyncio.Lock] = {}
        self.encoded = 0  # files made by this process (the bench and tests read it)

    async def get(self, relative: str, size: int) -> Path | None:
        """The thumbnail of a stored file (its path as the database has it), made if
        needed; None when the original is not a file under the data dir."""
        if size not in SIZES:
            return None
        source = (self.root / relative).resolve()
        if not source.is_relative_to(self.root):
            return None
        target = thumb_path(self.root, relative, size)
        if target.is_file():
            return target
        lock = self._encoding.setdefault(target, asyncio.Lock())
        try:
            async with lock:  # a second request for the same file waits for the first's encode
                if not target.is_file():
                    if not source.is_file():
                        return None
                    await asyncio.to_thread(encode, source, target, size)
                    self.encoded += 1
        finally:
            if not lock.locked():
                self._encoding.pop(target, None)
        return target
