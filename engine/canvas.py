"""Where the single-image tools draw: outpaint canvases and Vary (Region) masks.

Torch-free (PIL and numpy): the bot computes a tool's geometry before it queues
the job, and the worker builds the canvas and mask from it.

* **Outpaint** (Zoom Out, Pan, Make Square). The source keeps its pixels on a
  bigger *logical* canvas: Zoom Out ×f puts it in the middle of a canvas f times
  its size, Pan adds half a side in one direction, Make Square pads the short
  side. The output grows with the canvas up to `MAX_AREA_OF_NATIVE` times the
  preset's native area (1.5× its side: 1536² for SDXL, 192² for tiny); a canvas
  past that, or past the spec's MAX_SIDE or MAX_PIXELS, is scaled down as a whole (the source with it), as
  Midjourney keeps a zoom-out at its own size. Sides snap to SIZE_MULTIPLE.
* **Seams.** The mask also covers the outer `OVERLAP` pixels of the source, so
  the model redraws the seam; afterwards the source is pasted back through the
  mask blurred by `FEATHER`, so every pixel away from the seam is the source's own.
* **Vary (Region).** A half (left, right, top, bottom), the centre (the middle
  rectangle with half the area), or the subject's centre: the same rectangle
  centred on the saliency-weighted centroid of the image (frequency-tuned
  saliency, Achanta et al. 2009: each pixel's distance from the image's mean
  colour after a light blur, computed in RGB on a ≤64 px thumbnail; squared, so
  that the most distinct area dominates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from engine.jobs import MAX_PIXELS, MAX_SIDE, MIN_SIDE, SIZE_MULTIPLE

MAX_AREA_OF_NATIVE = 2.25  # outpaints grow to at most 1.5x the preset's native side
OVERLAP = 16  # pixels of the source's edge redrawn with the new area (two latent pixels)
FEATHER = 6  # blur radius of the paste-back mask
ZOOM_MIN, ZOOM_MAX = 1.0, 2.0  # Custom Zoom: above ZOOM_MIN, up to ZOOM_MAX (Midjourney's --zoom range)
PANS = ("left", "right", "up", "down")
REGIONS = {
    "left": "Left half",
    "right": "Right half",
    "top": "Top half",
    "bottom": "Bottom half",
    "centre": "Centre",
    "subject": "Subject's centre",
}
_HALF_AREA_SIDE = 1 / math.sqrt(2)  # a centred rectangle with half the image's area


class CanvasError(ValueError):
    """A tool that can't apply to this image (its message is fit for the member)."""


@dataclass(frozen=True)
class Outpaint:
    """The output size and where the (scaled) source sits on it: (left, top, width, height)."""

    width: int
    height: int
    box: tuple[int, int, int, int]


# -- outpaint geometry -----------------------------------------------------------


def zoom(width: int, height: int, factor: float, base: int) -> Outpaint:
    if not (ZOOM_MIN < factor <= ZOOM_MAX):
        raise CanvasError(f"a zoom factor is above {ZOOM_MIN:g} and at most {ZOOM_MAX:g}")
    cw, ch = width * factor, height * factor
    return _fit(cw, ch, ((cw - width) / 2, (ch - height) / 2, width, height), base)


def pan(width: int, height: int, direction: str, base: int) -> Outpaint:
    if direction not in PANS:
        raise CanvasError(f"pan goes {', '.join(PANS)}")
    if direction in ("left", "right"):
        extra = _snap(width / 2)
        left = extra if direction == "left" else 0
        return _fit(width + extra, height, (left, 0, width, height), base)
    extra = _snap(height / 2)
    top = extra if direction == "up" else 0
    return _fit(width, height + extra, (0, top, width, height), base)


def square(width: int, height: int, base: int) -> Outpaint:
    if width == height:
        raise CanvasError("the image is already square")
    side = max(width, height)
    return _fit(side, side, ((side - width) / 2, (side - height) / 2, width, height), base)


def _snap(x: float) -> int:
    return min(MAX_SIDE, max(MIN_SIDE, round(x / SIZE_MULTIPLE) * SIZE_MULTIPLE))


def _fit(cw: float, ch: float, box: tuple[float, float, float, float], base: int) -> Outpaint:
    """The logical canvas (cw, ch) with the source at `box`, scaled into the area and side limits."""
    # 1. One scale for the whole canvas: never up, down to the area budget and the spec's limits.
    area = min(MAX_AREA_OF_NATIVE * base * base, MAX_PIXELS * 0.9)  # room for snapping up
    scale = min(1.0, math.sqrt(area / (cw * ch)), MAX_SIDE / cw, MAX_SIDE / ch)
    width, height = _snap(cw * scale), _snap(ch * scale)
    # 2. The source keeps its aspect ratio and its relative place on the snapped canvas.
    u = min(width / cw, height / ch)
    left, top, bw, bh = box
    w, h = max(1, min(width, round(bw * u))), max(1, min(height, round(bh * u)))
    ax = left / (cw - bw) if cw > bw else 0.5
    ay = top / (ch - bh) if ch > bh else 0.5
    placed = (round((width - w) * ax), round((height - h) * ay), w, h)
    if (w, h) == (width, height):
        raise CanvasError("that leaves nothing new to draw at this image's size")
    return Outpaint(width=width, height=height, box=placed)


# -- outpaint inputs and paste-back (the worker) --------------------------------------


def outpaint_inputs(source: Image.Image, width: int, height: int, box: tuple[int, int, int, int]) -> tuple[Image.Image, Image.Image]:
    """The init canvas (the source scaled into `box` on mid grey) and the mask (white:
    draw), which also covers the source's outer OVERLAP pixels so the seam is redrawn."""
    left, top, w, h = box
    canvas = Image.new("RGB", (width, height), (127, 127, 127))
    canvas.paste(source.convert("RGB").resize((w, h), Image.Resampling.LANCZOS), (left, top))
    mask = Image.new("L", (width, height), 255)
    # Only the sides that touch new area get the overlap; a side on the canvas edge keeps its pixels.
    inner = (
        left + (OVERLAP if left > 0 else 0),
        top + (OVERLAP if top > 0 else 0),
        left + w - (OVERLAP if left + w < width else 0),
        top + h - (OVERLAP if top + h < height else 0),
    )
    if inner[2] > inner[0] and inner[3] > inner[1]:
        ImageDraw.Draw(mask).rectangle((inner[0], inner[1], inner[2] - 1, inner[3] - 1), fill=0)
    return canvas, mask


def paste_back(result: Image.Image, source: Image.Image, mask: Image.Image) -> Image.Image:
    """The result with the source's own pixels wherever the mask kept them, blended over a feathered seam."""
    keep = ImageOps.invert(mask.convert("L")).filter(ImageFilter.GaussianBlur(FEATHER))
    return Image.composite(source.convert("RGB"), result.convert("RGB"), keep)


def mask_is_empty(mask: Image.Image) -> bool:
    return mask.convert("L").point(lambda v: 255 if v >= 128 else 0).getbbox() is None


# -- Vary (Region) -------------------------------------------------------------------


def region_mask(image: Image.Image, region: str) -> Image.Image:
    """White over the region to redraw, black elsewhere, at the image's size."""
    if region not in REGIONS:
        raise CanvasError(f"the regions are {', '.join(REGIONS)}")
    width, height = image.size
    if region == "left":
        rect = (0, 0, width // 2, height)
    elif region == "right":
        rect = (width - width // 2, 0, width, height)
    elif region == "top":
        rect = (0, 0, width, height // 2)
    elif region == "bottom":
        rect = (0, height - height // 2, width, height)
    else:
        cx, cy = subject_centre(image) if region == "subject" else (0.5, 0.5)
        w, h = round(width * _HALF_AREA_SIDE), round(height * _HALF_AREA_SIDE)
        left = min(max(round(cx * width - w / 2), 0), width - w)
        top = min(max(round(cy * height - h / 2), 0), height - h)
        rect = (left, top, left + w, top + h)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=255)
    return mask


def subject_centre(image: Image.Image) -> tuple[float, float]:
    """The saliency-weighted centroid as fractions of the width and height (see the module docstring)."""
    small = image.convert("RGB")
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    pixels = np.asarray(small.filter(ImageFilter.GaussianBlur(1)), dtype=np.float64)
    saliency = np.linalg.norm(pixels - pixels.reshape(-1, 3).mean(axis=0), axis=2) ** 2
    total = saliency.sum()
    if total <= 1e-9:  # a flat image has no subject: the centre
        return 0.5, 0.5
    h, w = saliency.shape
    ys, xs = np.mgrid[0:h, 0:w]
    return float((saliency * (xs + 0.5)).sum() / total / w), float((saliency * (ys + 0.5)).sum() / total / h)
