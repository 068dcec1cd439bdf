"""Outpaint (Zoom Out, Pan, Make Square) and Vary (Region): the canvas geometry
(engine/canvas.py) and the real tiny inpainting pipeline on the CPU."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from pydantic import ValidationError

from engine import canvas
from engine.jobs import MAX_SIDE, SIZE_MULTIPLE, GenerateSpec, JobError, JobKind

SIDES = st.integers(1, MAX_SIDE // SIZE_MULTIPLE).map(lambda n: n * SIZE_MULTIPLE)
BASES = st.sampled_from([128, 512, 1024])


# -- geometry ---------------------------------------------------------------------


def test_zoom_pan_and_square_on_the_tiny_size():
    # 128 px source, tiny preset (native 128): the canvas may grow to 192 px a side
    assert canvas.zoom(128, 128, 2.0, 128) == canvas.Outpaint(192, 192, (48, 48, 96, 96))
    assert canvas.zoom(128, 128, 1.5, 128) == canvas.Outpaint(192, 192, (32, 32, 128, 128))  # source kept 1:1
    assert canvas.pan(128, 128, "left", 128) == canvas.Outpaint(192, 128, (64, 0, 128, 128))
    assert canvas.pan(128, 128, "right", 128) == canvas.Outpaint(192, 128, (0, 0, 128, 128))
    assert canvas.pan(128, 128, "up", 128) == canvas.Outpaint(128, 192, (0, 64, 128, 128))
    assert canvas.pan(128, 128, "down", 128) == canvas.Outpaint(128, 192, (0, 0, 128, 128))
    assert canvas.square(192, 128, 128) == canvas.Outpaint(192, 192, (0, 32, 192, 128))


def test_real_sizes_grow_to_one_and_a_half_native_sides_then_scale_down():
    assert canvas.zoom(1024, 1024, 1.5, 1024) == canvas.Outpaint(1536, 1536, (256, 256, 1024, 1024))
    assert canvas.zoom(1024, 1024, 2.0, 1024) == canvas.Outpaint(1536, 1536, (384, 384, 768, 768))
    assert canvas.zoom(2048, 2048, 2.0, 1024) == canvas.Outpaint(1536, 1536, (384, 384, 768, 768))
    assert canvas.pan(1024, 1024, "left", 1024) == canvas.Outpaint(1536, 1024, (512, 0, 1024, 1024))
    assert canvas.square(1344, 768, 1024).width == canvas.square(1344, 768, 1024).height == 1344


@pytest.mark.parametrize("factor", [1.0, 0.5, 2.01, float("nan")])
def test_zoom_factor_out_of_range_is_refused(factor):
    with pytest.raises(canvas.CanvasError, match="above 1 and at most 2"):
        canvas.zoom(128, 128, factor, 128)


def test_a_square_image_cant_be_made_square_and_pans_have_four_directions():
    with pytest.raises(canvas.CanvasError, match="already square"):
        canvas.square(128, 128, 128)
    with pytest.raises(canvas.CanvasError, match="left, right, up, down"):
        canvas.pan(128, 128, "sideways", 128)


@settings(max_examples=300, deadline=None)
@given(w=SIDES, h=SIDES, base=BASES, tool=st.sampled_from(["zoom2", "zoom1.5", "zoom1.1", "left", "up", "square"]))
def test_every_canvas_fits_the_spec_limits_and_keeps_the_source_shape(w, h, base, tool):
    try:
        if tool.startswith("zoom"):
            out = canvas.zoom(w, h, float(tool[4:]), base)
        elif tool == "square":
            out = canvas.square(w, h, base)
        else:
            out = canvas.pan(w, h, tool, base)
    except canvas.CanvasError:
        assert tool == "square" and w == h or tool == "zoom1.1"  # too little to add at a small size
        return
    left, top, bw, bh = out.box
    # a valid spec (GenerateSpec checks the sides and that the box is inside and smaller)
    GenerateSpec(prompt="x", width=out.width, height=out.height, source_box=out.box)
    budget = canvas.MAX_AREA_OF_NATIVE * base * base
    assert out.width * out.height <= budget * 1.5 or min(out.width, out.height) == SIZE_MULTIPLE  # snapped up
    # the source keeps its aspect ratio up to rounding
    assert abs(bw / bh - w / h) <= (w / h) * (1.5 / min(bw, bh))


def test_region_masks_cover_the_named_part():
    image = Image.new("RGB", (192, 128), (90, 90, 90))
    for region, expected in {"left": (0, 0, 96, 128), "right": (96, 0, 192, 128),
                             "top": (0, 0, 192, 64), "bottom": (0, 64, 192, 128)}.items():
        assert canvas.region_mask(image, region).getbbox() == expected
    centre = np.asarray(canvas.region_mask(image, "centre")) > 0
    assert abs(centre.mean() - 0.5) < 0.02
    assert canvas.region_mask(image, "centre").getbbox() == (28, 18, 164, 109)


def test_the_subjects_centre_follows_the_salient_part():
    image = Image.new("RGB", (256, 256), (120, 130, 125))
    ImageDraw.Draw(image).ellipse((150, 20, 230, 100), fill=(250, 40, 30))  # a red ball, top right
    cx, cy = canvas.subject_centre(image)
    assert 0.68 < cx < 0.84 and 0.1 < cy < 0.28
    left, top, right, bottom = canvas.region_mask(image, "subject").getbbox()
    assert left <= 150 and right >= 230 and top <= 20 and bottom >= 100  # the ball is inside the region
    assert canvas.subject_centre(Image.new("RGB", (64, 64), (9, 9, 9))) == (0.5, 0.5)


# -- the tiny pipeline ---------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def source(engine, gen) -> bytes:
    return gen.imagine(engine, seed=21, count=1).images[0].png


def test_the_inpainting_pipeline_shares_the_loaded_modules(engine):
    m = engine.loaded
    assert type(m.inpaint).__name__ == "StableDiffusionInpaintPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(m.inpaint, name) is getattr(m.pipe, name), name


def test_zoom_out_draws_around_the_source_and_keeps_its_pixels(engine, gen, source):
    out = canvas.zoom(128, 128, 2.0, 128)
    result = engine.run(gen.job(JobKind.OUTPAINT, init_image=source, width=out.width, height=out.height,
                                source_box=out.box, seed=4))
    assert [(im.width, im.height) for im in result.images] == [(192, 192)] * 4
    assert [gen.png_size(p) for p in gen.pngs(result)] == [(192, 192)] * 4
    assert [im.seed for im in result.images] == [4, 5, 6, 7]
    assert all(im.nsfw is not None and len(im.embedding) == 64 for im in result.images)
    left, top, w, h = out.box
    scaled = np.asarray(Image.open(io.BytesIO(source)).convert("RGB").resize((w, h), Image.Resampling.LANCZOS)).astype(int)
    seam = canvas.OVERLAP + 3 * canvas.FEATHER
    for png in gen.pngs(result):
        pixels = _pixels(png)
        # away from the seam the source is pasted back exactly
        inner = pixels[top + seam : top + h - seam, left + seam : left + w - seam]
        assert np.array_equal(inner, scaled[seam : h - seam, seam : w - seam])
        # the border was drawn: not the grey fill
        assert np.abs(pixels[:top, :] - 127).mean() > 5
    borders = [_pixels(p)[:top].tobytes() for p in gen.pngs(result)]
    assert len(set(borders)) == 4  # each seed draws its own


def test_pan_and_square_give_the_wider_taller_canvas(engine, gen):
    wide = gen.imagine(engine, width=192, height=128, count=1, seed=8).images[0].png
    pan = canvas.pan(192, 128, "up", 128)
    square = canvas.square(192, 128, 128)
    for out in (pan, square):
        result = engine.run(gen.job(JobKind.OUTPAINT, init_image=wide, width=out.width, height=out.height,
                                    source_box=out.box, count=1))
        assert gen.png_size(result.images[0].png) == (out.width, out.height)
    assert (pan.width, pan.height) == (192, 192) and square.box == (0, 32, 192, 128)


def test_vary_region_redraws_only_the_region(engine, gen, source):
    image = Image.open(io.BytesIO(source))
    mask = canvas.region_mask(image, "left")
    result = engine.run(gen.job(JobKind.VARIATION, init_image=source, mask=_png(mask), strength=0.9, count=2, seed=1))
    original = _pixels(source)
    seam = 3 * canvas.FEATHER
    for png in gen.pngs(result):
        pixels = _pixels(png)
        assert pixels.shape == (128, 128, 3)
        assert np.array_equal(pixels[:, 64 + seam :], original[:, 64 + seam :])  # the right half is the source's
        assert np.abs(pixels[:, : 64 - seam] - original[:, : 64 - seam]).mean() > 5  # the left half was redrawn


def test_sdxl_layout_outpaints_too(sdxl_engine_outpaint, gen):
    src = gen.imagine(sdxl_engine_outpaint, width=128, height=128, count=1, seed=2).images[0].png
    out = canvas.pan(128, 128, "right", 128)
    result = sdxl_engine_outpaint.run(gen.job(JobKind.OUTPAINT, init_image=src, width=out.width, height=out.height,
                                              source_box=out.box, count=1))
    assert type(sdxl_engine_outpaint.loaded.inpaint).__name__ == "StableDiffusionXLInpaintPipeline"
    assert gen.png_size(result.images[0].png) == (192, 128)


@pytest.fixture(scope="module")
def sdxl_engine_outpaint(tiny_data_dir):
    from engine import models
    from engine.generate import Engine

    eng = Engine(models.tiny_sdxl_preset(tiny_data_dir), device="cpu", data_dir=tiny_data_dir)
    yield eng
    eng.close()


def test_bad_masks_and_boxes_fail_clearly(engine, gen, source):
    with pytest.raises(JobError, match="the mask is 64x64; the image is 128x128"):
        engine.run(gen.job(JobKind.VARIATION, init_image=source, strength=0.9, mask=_png(Image.new("L", (64, 64), 255))))
    with pytest.raises(JobError, match="selects nothing"):
        engine.run(gen.job(JobKind.VARIATION, init_image=source, strength=0.9, mask=_png(Image.new("L", (128, 128), 0))))
    with pytest.raises(JobError, match="mask: "):
        engine.run(gen.job(JobKind.VARIATION, init_image=source, strength=0.9, mask=b"not an image"))
    with pytest.raises(JobError, match="needs a source_box"):
        engine.run(gen.job(JobKind.OUTPAINT, init_image=source, width=192, height=192))
    with pytest.raises(ValidationError, match="not inside"):
        gen.job(JobKind.OUTPAINT, init_image=source, width=192, height=192, source_box=(100, 0, 128, 128))
    with pytest.raises(ValidationError, match="nothing to outpaint"):
        gen.job(JobKind.OUTPAINT, init_image=source, width=128, height=128, source_box=(0, 0, 128, 128))


def test_upscale_creative_redraws_more_than_subtle(engine, gen, source):
    """Subtle is the preset's upscale strength (tiny: 0.5), Creative twice it, at most 0.75
    (bot/generation.py): the same seed strays further from the plain ×2 enlargement."""
    plain = np.asarray(Image.open(io.BytesIO(source)).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)).astype(int)
    subtle = engine.run(gen.job(JobKind.UPSCALE, init_image=source, seed=3))
    creative = engine.run(gen.job(JobKind.UPSCALE, init_image=source, seed=3, strength=0.75))
    distance = [np.abs(_pixels(result.images[0].png) - plain).mean() for result in (subtle, creative)]
    assert gen.png_size(creative.images[0].png) == (256, 256)
    assert distance[1] > distance[0] > 0
