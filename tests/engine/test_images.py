"""engine.images: the one decoder for images from outside, on real image bytes."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from engine import images
from engine.images import ImageDecodeError, decode_image, reencode


def encode(image: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""
    data = bytearray(encode(Image.new("RGB", (8, 8), "red"), "PNG"))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP", "GIF"])
def test_every_format_decodes_to_rgb(format):
    decoded = decode_image(encode(Image.new("RGB", (40, 30), (0, 0, 255)), format))
    assert decoded.mode == "RGB" and decoded.size == (40, 30)
    red, green, blue = decoded.getpixel((20, 15))
    assert blue > 200 and red < 60 and green < 60


def test_a_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 3
    red, green, blue = decode_image(data).getpixel((8, 8))
    assert red > 200 and green < 60 and blue < 60


def test_transparency_is_flattened_onto_white():
    clear = encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG")
    assert decode_image(clear).getpixel((0, 0)) == (255, 255, 255)
    half = encode(Image.new("RGBA", (8, 8), (0, 0, 0, 128)), "PNG")
    assert decode_image(half).getpixel((0, 0)) == (127, 127, 127)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    assert decode_image(encode(palette, "PNG", transparency=0)).getpixel((0, 0)) == (255, 255, 255)
    assert decode_image(encode(Image.new("L", (8, 8), 128), "PNG")).mode == "RGB"


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(Image.new("RGB", (40, 20), "white"), "JPEG", exif=exif)
    assert decode_image(data).size == (20, 40)


def test_refusals_say_what_is_wrong():
    truncated = encode(Image.new("RGB", (64, 64), "purple"), "PNG")[:-30]
    for data, expected in [
        (b"", "is empty"),
        (b"GIF89a-not-really", "is not a PNG, JPEG, WebP or GIF image"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "is not a PNG, JPEG, WebP or GIF image"),
        (truncated, "could not be read as an image: it looks damaged or truncated"),
        (png_claiming(5000, 4000), "is 5000×4000 pixels (20.0 MP): images may have at most 16 MP."),
        (png_claiming(40000, 40000), "is far too large in pixels"),
        (b"\x89PNG" + bytes(images.MAX_BYTES), "is too big (8.0 MB): each image may be at most 8 MB."),
    ]:
        with pytest.raises(ImageDecodeError) as refused:
            decode_image(data)
        assert expected in str(refused.value), (expected, str(refused.value))


def test_the_pixel_limit_is_read_from_the_header_before_decoding(monkeypatch):
    def must_not_decode(self):
        raise AssertionError("pixel data decoded")

    bomb = png_claiming(5000, 4000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    with pytest.raises(ImageDecodeError, match="5000×4000"):
        decode_image(bomb)


def test_reencode_makes_a_small_metadata_free_png():
    exif = Image.Exif()
    exif[0x010E] = "a secret description"
    big = Image.new("RGBA", (3000, 1500), (255, 0, 0, 255))
    data = reencode(encode(big, "PNG", exif=exif))
    again = Image.open(io.BytesIO(data))
    assert again.format == "PNG" and again.mode == "RGB"
    assert again.size == (images.MAX_SIDE, images.MAX_SIDE // 2)
    assert not again.getexif() and "exif" not in again.info
    assert b"secret" not in data
    small = Image.open(io.BytesIO(reencode(encode(Image.new("RGB", (40, 30), "navy"), "JPEG"))))
    assert small.size == (40, 30)  # never enlarged
