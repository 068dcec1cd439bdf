"""What the NSFW check costs, next to what it checks: one 2x2 grid.

    .venv/bin/python bench/nsfw_bench.py                          # tiny preset on the CPU
    .venv/bin/python bench/nsfw_bench.py --preset sdxl-turbo      # a GPU with the weights

In one run, side by side, for --runs imagine jobs of 4 images (a new seed each):

1. generation: the job's own work, sampling plus the CLIP embeddings
   (timings "generate" + "embed"), on the preset's device;
2. the check: open_nsfw on the job's 4 images (timings "nsfw"), always on the
   CPU (engine/safety.py), in the same job.

It prints the medians and check / generation as a ratio. The classifier resizes
every image to 256 px first, so its cost hardly depends on the output size;
the last line times it on four 1024 px images (sdxl-turbo's size) to show that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import safety  # noqa: E402
from engine.config import EngineSettings  # noqa: E402
from engine.generate import Engine  # noqa: E402
from engine.jobs import GenerateSpec, Job, JobKind  # noqa: E402


def main() -> int:
    settings = EngineSettings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu" if settings.device == "auto" else settings.device)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-dir", default=None, help="where the preset's files are (tiny: built in a temp dir)")
    args = ap.parse_args()

    data_dir = args.data_dir or (tempfile.mkdtemp(prefix="nsfw-bench-") if args.preset == "tiny" else settings.data_dir)
    engine = Engine(args.preset, device=args.device, data_dir=data_dir, dtype=settings.dtype)
    engine.load()  # the preset and the classifier, before any timing
    size = engine.preset.base_size
    job = Job(kind=JobKind.IMAGINE, preset=args.preset, generate=GenerateSpec(prompt="a lighthouse on a cliff", width=size, height=size))
    engine.run(job)  # warm-up: first-call costs of both models

    generate, check = [], []
    for run in range(args.runs):
        spec = job.generate.model_copy(update={"seed": 1000 + run})
        result = engine.run(job.model_copy(update={"generate": spec}))
        generate.append(result.timings["generate"] + result.timings["embed"])
        check.append(result.timings["nsfw"])

    gen_s, check_s = statistics.median(generate), statistics.median(check)
    print(f"preset {args.preset} on {args.device}, {size}x{size}, 4 images per grid, median of {args.runs} grids")
    print(f"  generation (sample + embed)   {gen_s * 1000:9.1f} ms")
    print(f"  NSFW check (CPU, 4 images)    {check_s * 1000:9.1f} ms")
    print(f"  check / generation            {check_s / gen_s:9.3f}")

    big = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)) for i in range(4)]
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        safety.nsfw_scores(big)
        times.append(time.perf_counter() - t0)
    print(f"  NSFW check, 4 images 1024 px  {statistics.median(times) * 1000:9.1f} ms")
    if engine.preset.kind == "tiny" or args.device == "cpu":
        print("generation here is the tiny preset on the CPU; a real preset on a GPU makes a grid in well under")
        print("a second, so there the check's share is much larger: run this with --preset on a GPU worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
