"""The one decoder for images from outside: moodboard uploads, `--sref` links, and
what the worker reads back from jobs. PIL only (no torch), so the bot uses it too.

One set of limits for all: PNG, JPEG, WebP or GIF (its first frame), at most
MAX_BYTES, at most MAX_PIXELS read from the header before any pixel data is
decoded (PIL's own DecompressionBombError is a second line for headers it
refuses even to open). EXIF orientation is applied and transparency is
flattened onto white, so every caller sees the same RGB image.

Every problem is an ImageDecodeError whose message reads after the image's name
("`cat.png` " + message), so callers name the upload or link and show it as is.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 16_000_000
MAX_SIDE = 768  # re-encoded images are at most this big: OpenCLIP looks at 224 px anyway, and jobs stay small
CONTENT_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
FORMATS = tuple(CONTENT_TYPES.values())
KINDS = "PNG, JPEG, WebP or GIF"  # how the formats are named to members


class ImageDecodeError(ValueError):
    """Image bytes that cannot be used. The message follows the image's name:
    "is too big (9.1 MB): each image may be at most 8 MB."."""


def check_size(n_bytes: int) -> None:
    """The byte limit, also for what Discord or a server says before downloading."""
    if n_bytes > MAX_BYTES:
        raise ImageDecodeError(
            f"is too big ({n_bytes / 2**20:.1f} MB): each image may be at most {MAX_BYTES // 2**20} MB."
        )


def decode_image(data: bytes, *, max_side: int | None = None) -> Image.Image:
    """Image bytes -> an RGB PIL image, or ImageDecodeError saying why not.

    `max_side`: the caller shrinks the image to this anyway, so a big JPEG may be
    decoded at a reduced scale (never below max_side). The worker leaves it out:
    an init image keeps its exact size."""
    if not data:
        raise ImageDecodeError("is empty: no image data.")
    check_size(len(data))
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            # 1. The size from the header, before any pixel data is decoded.
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageDecodeError(
                    f"is {width}×{height} pixels ({width * height / 1e6:.1f} MP): "
                    f"images may have at most {MAX_PIXELS // 1_000_000} MP."
                )
            if max_side and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            # 2. Decode (a GIF or animated WebP: its first frame) and apply EXIF orientation.
            image.load()
            frame = ImageOps.exif_transpose(image)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            f"is far too large in pixels: images may have at most {MAX_PIXELS // 1_000_000} MP."
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"is not a {KINDS} image (its contents don't match).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # PIL's ways of saying "damaged"
        raise ImageDecodeError(f"could not be read as an image: it looks damaged or truncated ({error}).") from None
    # 3. Transparency onto white. CLIP and the IP-Adapter see RGB only, and the colour
    #    under a transparent pixel is arbitrary (often black): white is how a cut-out
    #    looks on a page, and how the member saw it.
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return frame.convert("RGB")


def reencode(data: bytes) -> bytes:
    """A member's image as a fresh PNG of at most MAX_SIDE px: no EXIF, text chunks
    or other metadata survive, and the job carries only what the worker needs."""
    image = decode_image(data, max_side=MAX_SIDE)
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def encode_png(image: Image.Image) -> bytes:
    """What the worker sends back (images, clip posters): PNG at zlib level 6."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()
