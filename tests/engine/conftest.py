"""Fixtures for the generation and embedding tests: the tiny preset on the CPU.

The tiny preset is built once per session (tests/conftest.py: tiny_models)
and loaded through the same from_pretrained / load_ip_adapter / open_clip
calls as a real preset. torch is imported only inside fixtures and helpers,
so the other tests in this folder do not pay for it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.jobs import GenerateSpec, Job, JobKind, JobResult

# One intra-op thread: on a small shared CI box (2 cores, other test processes
# running) two threads spin-wait against each other and the tiny models ran
# 7-30x slower than with one. TASTEMAKER_TEST_THREADS overrides.
TORCH_THREADS = int(os.environ.get("TASTEMAKER_TEST_THREADS", "1"))
# Also before torch is first imported (the tiny build in tests/conftest.py may come first).
os.environ.setdefault("OMP_NUM_THREADS", str(TORCH_THREADS))


def _modest_threads() -> None:
    import torch

    torch.set_num_threads(TORCH_THREADS)


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_models: Path) -> Path:
    """A data dir with the tiny preset built (once per session)."""
    _modest_threads()
    return tiny_models


@pytest.fixture(scope="session")
def engine(tiny_data_dir: Path):
    """The tiny preset, loaded once, on the CPU."""
    from engine.generate import Engine

    eng = Engine("tiny", device="cpu", data_dir=tiny_data_dir)
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def gen() -> SimpleNamespace:
    """The helpers below, for test modules (importing `conftest` by name is ambiguous here)."""
    return SimpleNamespace(
        job=gen_job, imagine=imagine, pngs=pngs, png_size=png_size, random_vector=random_vector
    )


@pytest.fixture(scope="session")
def base_grid(engine) -> JobResult:
    """A plain 128x128 imagine (seed 5, 2 images) that several tests compare against.

    Exact (PNG byte) comparisons use the same count: on the CPU a batch of one
    can differ from a batch of several by a rounding step in a few pixels.
    """
    return imagine(engine, seed=5, count=2)


# -- helpers ---------------------------------------------------------------------


def gen_job(kind: JobKind | str = JobKind.IMAGINE, preset: str = "tiny", **spec) -> Job:
    spec.setdefault("prompt", "a lighthouse on a cliff")
    spec.setdefault("width", 128)
    spec.setdefault("height", 128)
    return Job(kind=kind, preset=preset, generate=GenerateSpec(**spec))


def imagine(engine, report=None, should_stop=None, **spec) -> JobResult:
    return engine.run(gen_job(JobKind.IMAGINE, **spec), report, should_stop)


def pngs(result: JobResult) -> list[bytes]:
    return [im.png for im in result.images]


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return im.size


def random_vector(dim: int, seed: int = 0, scale: float = 3.0) -> list[float]:
    import numpy as np

    return [float(x) for x in np.random.default_rng(seed).standard_normal(dim) * scale]
