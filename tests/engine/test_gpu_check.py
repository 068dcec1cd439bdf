"""bench/gpu_check.py --smoke: the GPU check's code runs for every family (tiny sizes,
the CPU), so it can't rot before the next GPU is at hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_smoke_runs_every_job_and_prints_the_ratios():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--smoke"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for job in ("imagine 2x2", "--p s=0", "--p s=100", "--p s=1000", "variation x4", "upscale x2", "zoom out 1.5x",
                "preview every step"):
        assert job in out.stdout
    assert "previews every step / none" in out.stdout and "--p s=1000 / s=0" in out.stdout
    # every family, the transformer ones in full precision and quantised (torchao int8)
    for family in ("gpu_check sdxl:", "gpu_check flux:", "gpu_check sd3:"):
        assert family in out.stdout
    assert out.stdout.count("int8: loaded in") == 2 and out.stdout.count("fp32 / int8 seconds per job") == 2
    assert "loaded in" in out.stdout and "gpu_check done" in out.stdout
    # Animate's step: one clip through Engine.run on the Wan 2.2 layout, and its ratio to a grid.
    assert "video clip 80x48, 9 frames, 2 steps" in out.stdout  # a 3:2 start frame at the tiny layout's 64 px and "one clip / one 2x2 grid" in out.stdout
