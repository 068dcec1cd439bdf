"""What Midjourney's image tools cost next to /imagine, and that they load no second model.

    .venv/bin/python bench/tools_bench.py                        # tiny preset on the CPU
    .venv/bin/python bench/tools_bench.py --preset sdxl-lightning --device cuda

In one run, on one loaded preset, side by side:

1. the median seconds of each job kind's own work (timings "generate" + "embed")
   over --runs jobs of 4 images with new seeds, and its ratio to an imagine job
   at the preset's native size. Each section below adds its tools' rows:
   outpaint (Zoom Out 2×, Pan, Make Square) and Vary (Region) here; blend is
   another section's (add yours to SECTIONS);
2. the worker's resident memory (RSS, and CUDA memory on a GPU) after the
   preset's first imagine job and again after every new job kind has run, with
   the number of distinct weight tensors the pipelines hold: the inpainting
   pipeline is made with from_pipe from the loaded components, so neither grows
   beyond the allocator's working memory.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import canvas  # noqa: E402
from engine.config import EngineSettings  # noqa: E402
from engine.generate import Engine  # noqa: E402
from engine.jobs import GenerateSpec, Job, JobKind  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk"
Section = Callable[[Engine, bytes], list[tuple[str, Job]]]


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def gpu_mb() -> float | None:
    import torch

    return torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else None


def weight_tensors(engine: Engine, *, all_pipelines: bool) -> int:
    """Distinct parameter tensors held by the txt2img pipeline, or by every pipeline (shared ones count once)."""
    m = engine.loaded
    seen = set()
    for pipe in (m.pipe, m.img2img, m.inpaint) if all_pipelines else (m.pipe,):
        for module in pipe.components.values():
            if hasattr(module, "parameters"):
                seen.update(id(p) for p in module.parameters())
    return len(seen)


def job(engine: Engine, kind: JobKind, **spec) -> Job:
    return Job(kind=kind, preset=engine.preset.name, generate=GenerateSpec(prompt=PROMPT, **spec))


def outpaint_section(engine: Engine, source: bytes) -> list[tuple[str, Job]]:
    """Zoom Out 2×, Pan ⬅ and Make Square (from a 3:2 image) and Vary (Region) on the source."""
    size = engine.preset.base_size
    image = Image.open(io.BytesIO(source))
    rows = []
    for name, out in (("outpaint: Zoom Out 2×", canvas.zoom(size, size, 2.0, size)),
                      ("outpaint: Pan ⬅", canvas.pan(size, size, "left", size))):
        rows.append((name, job(engine, JobKind.OUTPAINT, init_image=source, width=out.width, height=out.height,
                               source_box=out.box)))
    mask = io.BytesIO()
    canvas.region_mask(image, "subject").save(mask, format="PNG")
    rows.append(("variation: Vary (Region)", job(engine, JobKind.VARIATION, init_image=source, mask=mask.getvalue(),
                                                 strength=0.9, width=size, height=size)))
    return rows


def blend_section(engine: Engine, source: bytes) -> list[tuple[str, Job]]:
    """/blend of three images, and /imagine with one image prompt (--iw 1), at the preset's
    image-prompt scale λ_img(1) (bot/generation.py image_scale). (/describe is left out: it
    loads its captioner, CoCa, on first use by design; see the README.)"""
    from engine.profiles import calibration_for

    size = engine.preset.base_size
    image = Image.open(io.BytesIO(source))
    pngs = []
    for variant in (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image.rotate(90)):
        out = io.BytesIO()
        variant.save(out, format="PNG")
        pngs.append(out.getvalue())
    scale = calibration_for(engine.preset.name).scale_max
    blend = Job(kind=JobKind.BLEND, preset=engine.preset.name, generate=GenerateSpec(
        prompt="", width=size, height=size, prompt_images=pngs, ip_adapter_scale=scale))
    prompted = job(engine, JobKind.IMAGINE, width=size, height=size, prompt_images=pngs[:1], ip_adapter_scale=scale)
    return [("blend: 3 images", blend), ("imagine: 1 image prompt", prompted)]


SECTIONS: list[Section] = [outpaint_section, blend_section]


def main() -> int:
    settings = EngineSettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu" if settings.device == "auto" else settings.device)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="where the preset's files are (tiny: built in a temp dir)")
    args = ap.parse_args()

    data_dir = args.data_dir or (tempfile.mkdtemp(prefix="tools-bench-") if args.preset == "tiny" else settings.data_dir)
    engine = Engine(args.preset, device=args.device, data_dir=data_dir, dtype=settings.dtype)
    engine.load()
    size = engine.preset.base_size

    # 1. The baseline: an imagine job at the native size (the first one warms up), then memory.
    imagine = job(engine, JobKind.IMAGINE, width=size, height=size)
    source = engine.run(imagine.model_copy(update={"generate": imagine.generate.model_copy(update={"count": 1})})).images[0].png
    engine.run(imagine)
    before = (rss_mb(), gpu_mb(), weight_tensors(engine, all_pipelines=False))

    # 2. Every section's jobs, each warmed up once, then timed with new seeds.
    rows = [("imagine", imagine)] + [row for section in SECTIONS for row in section(engine, source)]
    for _, warm in rows[1:]:
        engine.run(warm)
    medians = {}
    for name, base in rows:
        seconds = []
        for run in range(args.runs):
            timed = base.model_copy(update={"generate": base.generate.model_copy(update={"seed": 100 + run})})
            result = engine.run(timed)
            seconds.append(result.timings["generate"] + result.timings["embed"])
        sizes = {(im.width, im.height) for im in result.images}
        medians[name] = (statistics.median(seconds), sizes)
    after = (rss_mb(), gpu_mb(), weight_tensors(engine, all_pipelines=True))

    # 3. Side by side.
    print(f"preset {engine.preset.name} on {engine.loaded.device}, {args.runs} runs of 4 images each, median seconds")
    base_s = medians["imagine"][0]
    print(f"{'job':<28} {'size':>11} {'seconds':>9} {'÷ imagine':>10}")
    for name, (s, sizes) in medians.items():
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
        print(f"{name:<28} {shown:>11} {s:>9.3f} {s / base_s:>9.2f}×")
    print()
    print(f"{'worker memory':<28} {'after imagine':>14} {'after all kinds':>16} {'change':>9}")
    print(f"{'RSS (MB)':<28} {before[0]:>14.0f} {after[0]:>16.0f} {after[0] - before[0]:>+9.0f}")
    if before[1] is not None:
        print(f"{'CUDA allocated (MB)':<28} {before[1]:>14.0f} {after[1]:>16.0f} {after[1] - before[1]:>+9.0f}")
    print(f"{'weight tensors (txt2img | all pipelines)':<28} {before[2]:>14} {after[2]:>16} {after[2] - before[2]:>+9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
