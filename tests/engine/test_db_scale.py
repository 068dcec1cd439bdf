"""bench/db_scale.py at a small scale: the whole bench (fill, the migration, the taste index,
the prior's refit, every member-facing read over the real web server) runs in seconds, so it
can't rot before the next full-size run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READS = ("/info's reads", "next /rank pair", "a vote", "the vote's refit", "/codes' reads", "/explore newest",
         "/explore most liked", "/explore For you", "web Explore page", "web image page", "a new code")


def test_db_scale_runs_small_and_times_every_read():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "bench/db_scale.py", "--scale", "0.002", "--samples", "8", "--session", "2"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for read in READS:
        row = next((line for line in lines if line.startswith(read + " ")), None)
        assert row is not None and len(row.split()) > 4, f"no timing for {read!r}:\n{out.stdout}"
    assert " on it: " in out.stdout and "community prior refit" in out.stdout  # the migration's time
    assert "taste index of the images" in out.stdout and "ran in" in out.stdout
