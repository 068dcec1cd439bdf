"""What a job posts to Discord: its grid or its single image, encoded to fit the upload limit.

The PNG originals stay on the bot's disk for U, downloads and the web. Discord gets:
- a grid: the images 2×2 as one JPEG of at most GRID_MAX_SIDE px (a phone zooms into it; a
  PNG grid of four 1024-px photos is 6-8 MB and 0.6 s of CPU to encode, a JPEG under 1 MB in
  10 ms), withheld images as grey tiles so the others keep their U/V numbers;
- a single image: its PNG when that fits, else the largest JPEG that does (the message then
  links the original on the web companion).

A video's clips (engine/mp4.py) share the limit equally, each re-encoded smaller only when its
share needs it (clips_for_result).

Torch-free: the worker makes the post beside the GPU (engine/worker.py) for the limit the job
names; the bot makes it only when the worker's won't do (the server's filter or limit changed
since, an older worker, /show in a channel with a smaller limit).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from engine import mp4, safety
from engine.jobs import Job, JobKind, JobResult, PostImage

DEFAULT_LIMIT = 10 * 2**20  # Discord's upload limit without boosts, and in DMs
REQUEST_MARGIN = 64 * 1024  # the rest of the upload (JSON, multipart headers) rides with the file
GRID_MAX_SIDE = 2048
JPEG_QUALITIES = (90, 82, 72, 60)  # tried in order, at each size
SHRINK = 0.75  # the next size when no quality fits
WITHHELD_TILE = (128, 128, 128)  # a blocked image's place in its grid
POSTED_KINDS = (JobKind.IMAGINE, JobKind.BLEND, JobKind.VARIATION, JobKind.UPSCALE, JobKind.OUTPAINT)
CLIP_BITRATE_SHARE = 0.9  # of a clip's share of the limit, as bits a second: H.264's rate control overshoots a little
CLIP_TRIES = 6  # bitrates tried (each 0.7 of the last) before the clip is made smaller


def for_result(job: Job, result: JobResult) -> PostImage | None:
    """The worker's post for a finished job (None for kinds Discord doesn't show, jobs
    without an upload limit, and results whose every image is withheld). Images scored
    at or over the job's nsfw_threshold (set where the server blocks) become grey tiles."""
    if job.kind not in POSTED_KINDS or job.upload_limit is None or not result.images:
        return None
    withheld = [
        i for i, image in enumerate(result.images, 1)
        if job.nsfw_threshold is not None and safety.flagged(image.nsfw, job.nsfw_threshold)
    ]
    return make([image.png for image in result.images], withheld, job.upload_limit)


def clips_for_result(job: Job, result: JobResult) -> list[bytes]:
    """The worker's posted clips: each MP4 fitted to its share of the job's upload limit; a clip
    flagged where the server blocks is b"" (withheld, as a grid's grey tile)."""
    if job.kind is not JobKind.VIDEO or job.upload_limit is None or not result.clips:
        return []
    withheld = {i for i, clip in enumerate(result.clips)
                if job.nsfw_threshold is not None and safety.flagged(clip.nsfw, job.nsfw_threshold)}
    shown = [clip.mp4 for i, clip in enumerate(result.clips) if i not in withheld]
    fitted = iter(fit_clips(shown, job.upload_limit))
    return [b"" if i in withheld else next(fitted) for i in range(len(result.clips))]


def fit_clips(clips: Sequence[bytes], limit: int) -> list[bytes]:
    """MP4 clips that together fit `limit` bytes (one upload): each as it is when it fits its equal
    share, else re-encoded at a lower bitrate, then smaller. ValueError when even a tiny one won't fit."""
    if not clips:
        return []
    share = (limit - REQUEST_MARGIN) // len(clips)
    return [clip if len(clip) <= share else fit_clip(clip, share) for clip in clips]


def fit_clip(clip: bytes, budget: int) -> bytes:
    info = mp4.read(clip)
    frames = list(mp4.frames(clip))
    while True:
        bitrate = budget * 8 / info.duration * CLIP_BITRATE_SHARE
        for _ in range(CLIP_TRIES):
            data = mp4.write(frames, round(info.fps), max(10_000, round(bitrate)))
            if len(data) <= budget:
                return data
            bitrate *= 0.7
        height, width = frames[0].shape[:2]
        if max(width, height) < 64:
            raise ValueError(f"no encoding of the clip fits in {budget} bytes")
        size = (max(2, round(width * SHRINK / 2) * 2), max(2, round(height * SHRINK / 2) * 2))
        frames = [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS)) for f in frames]


def make(pngs: Sequence[bytes], withheld: Sequence[int], limit: int) -> PostImage | None:
    """A grid (several images) or a single image, fitted to `limit` bytes; None when nothing may be shown."""
    if len(withheld) >= len(pngs):
        return None
    if len(pngs) == 1:
        return single(pngs[0], limit)
    tiles = [
        Image.new("RGB", _size(png), WITHHELD_TILE) if i in withheld else _open(png)
        for i, png in enumerate(pngs, 1)
    ]
    return PostImage(data=fit(compose(tiles), limit), format="jpeg", withheld=sorted(withheld), limit=limit)


def single(png: bytes, limit: int) -> PostImage:
    """One image: its own PNG if it fits, else the largest JPEG that does."""
    if len(png) <= limit - REQUEST_MARGIN:
        return PostImage(data=png, format="png", limit=limit)
    return PostImage(data=fit(_open(png), limit), format="jpeg", limit=limit)


def side_by_side(left: bytes, right: bytes, limit: int = DEFAULT_LIMIT, gap: int = 8) -> bytes:
    """A pair to choose between (/rank, /tune): two images at one height with a gap, as a JPEG."""
    a, b = _open(left), _open(right)
    height = min(a.height, b.height, GRID_MAX_SIDE // 2)
    a = a.resize((round(a.width * height / a.height), height), Image.Resampling.LANCZOS)
    b = b.resize((round(b.width * height / b.height), height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (a.width + gap + b.width, height), (47, 49, 54))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + gap, 0))
    return fit(canvas, limit)


def refit(data: bytes, limit: int) -> bytes:
    """A post (or an original) re-encoded within a smaller limit: /show where uploads are smaller,
    a server whose limit fell since the job was queued."""
    return fit(_open(data), limit)


def fitted_file(path: Path, limit: int | None) -> tuple[bytes, str]:
    """A stored post or original, and its extension: as it is when it fits `limit` (None: no
    limit known), else re-encoded to fit."""
    data = path.read_bytes()
    if limit is None or len(data) <= limit - REQUEST_MARGIN:
        return data, "png" if path.suffix == ".png" else "jpg"
    return refit(data, limit), "jpg"


def compose(tiles: Sequence[Image.Image]) -> Image.Image:
    """Up to four images, 2×2, at the first one's size, scaled to GRID_MAX_SIDE at most."""
    width, height = tiles[0].size
    columns = 2 if len(tiles) > 1 else 1
    rows = (len(tiles) + columns - 1) // columns
    scale = min(1.0, GRID_MAX_SIDE / max(width * columns, height * rows))
    tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = Image.new("RGB", (tile_w * columns, tile_h * rows), "black")
    for index, tile in enumerate(tiles):
        if tile.size != (tile_w, tile_h):
            tile = tile.resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        canvas.paste(tile, ((index % columns) * tile_w, (index // columns) * tile_h))
    return canvas


def fit(image: Image.Image, limit: int) -> bytes:
    """The best JPEG of `image` within `limit` bytes: falling quality, then smaller sizes.
    Raises ValueError when even a tiny one won't fit."""
    budget = limit - REQUEST_MARGIN
    while True:
        for quality in JPEG_QUALITIES:
            data = _jpeg(image, quality)
            if len(data) <= budget:
                return data
        if max(image.size) < 64:
            raise ValueError(f"no encoding of the image fits in {limit} bytes")
        image = image.resize((max(1, round(image.width * SHRINK)), max(1, round(image.height * SHRINK))),
                             Image.Resampling.LANCZOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, subsampling=0)  # 4:4:4: art has sharp coloured edges that 4:2:0 smears
    return out.getvalue()


def _open(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def _size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size
