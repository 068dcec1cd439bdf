"""A bench double for a GPU worker's runner: images at the job's real size, at a GPU's pace.

Not a preset and never a model. It exists so the bot and Discord's limits can be measured at the
default preset's sizes (1024 px) on a machine without a GPU: the bot is configured with the real
default preset (so its jobs ask for 1024-px images), and the real worker loop (engine/worker.py:
leases, progress, the post it fits to the upload limit, the queue) runs this runner in place of
engine.generate.Engine. The pixels are synthetic: "photo" is smooth noise at several scales plus
grain, which compresses as photos do (a 1024-px PNG of about 1.8 MB); "noise" is the worst case
for any encoder (a 1024-px PNG of about 3.1 MB). Used by bench/community_load.py and the busy-server
flow tests.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from engine.jobs import ImageOut, Job, JobCancelled, JobKind, JobResult

TEXTURES = 6  # distinct images per size, reused: making them is not what is measured


class GPUDouble:
    def __init__(self, seconds_per_job: float = 1.0, texture: str = "photo", embed_dim: int = 1024, nsfw: float = 0.01):
        self.seconds_per_job = seconds_per_job
        self.texture = texture
        self.embed_dim = embed_dim
        self.nsfw = nsfw
        self._pngs: dict[tuple[int, int], list[bytes]] = {}
        self._lock = threading.Lock()

    def run(self, job: Job, report: Callable[[float, bytes | None], None], should_stop: Callable[[], bool]) -> JobResult:
        spec = job.generate
        if spec is None:
            return JobResult()
        started = time.perf_counter()
        scale = 2 if job.kind is JobKind.UPSCALE else 1  # as the engine's upscale: ×2 of the source's size
        width, height = spec.width * scale, spec.height * scale
        pngs = self.pngs(width, height)
        preview = _preview(pngs[0])
        # A GPU's pace: four steps of progress with a preview, the job taking seconds_per_job in all.
        for step in range(1, 5):
            if should_stop():
                raise JobCancelled()
            time.sleep(max(0.0, started + self.seconds_per_job * step / 4 - time.perf_counter()))
            if step < 4:
                report(25.0 * step, preview)
        rng = np.random.default_rng(spec.seed)
        images = []
        for i in range(spec.count):
            embedding = rng.normal(size=self.embed_dim)
            images.append(ImageOut(
                png=pngs[(spec.seed + i) % len(pngs)], embedding=(embedding / np.linalg.norm(embedding)).tolist(),
                seed=spec.seed + i, width=width, height=height, nsfw=self.nsfw,
            ))
        return JobResult(images=images, timings={"gpu": round(time.perf_counter() - started, 4)})

    def pngs(self, width: int, height: int) -> list[bytes]:
        with self._lock:
            if (width, height) not in self._pngs:
                self._pngs[(width, height)] = [_png(_texture(self.texture, width, height, seed)) for seed in range(TEXTURES)]
            return self._pngs[(width, height)]


def _texture(kind: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    pixels = np.zeros((height, width, 3), np.float32)
    for cells, amplitude in ((8, 90), (32, 40), (128, 20), (512, 10)):  # large shapes down to fine detail
        small = rng.normal(size=(cells, cells, 3))
        small = ((small - small.min()) / (np.ptp(small) + 1e-6) * 255).astype(np.uint8)
        layer = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
        pixels += (layer - 128) / 128 * amplitude
    pixels += rng.normal(0, 4, pixels.shape)  # grain
    return Image.fromarray(np.clip(pixels + 128, 0, 255).astype(np.uint8))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _preview(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((256, 256))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()
