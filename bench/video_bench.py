"""What a clip costs next to an image grid, on the same preset, measured side by side in one run.

    .venv/bin/python bench/video_bench.py                               # the tiny preset on the CPU
    .venv/bin/python bench/video_bench.py --preset sdxl-lightning       # a real preset on a GPU (downloads)

For the preset, through engine.generate.Engine as a worker runs them: a 2x2 grid (/imagine), one clip
from a start frame (Animate), one Extend of it and one clip drawn from a text prompt (the start frame
first), each the median of --repeat runs after a warm-up; then what fitting the clips to Discord's
upload limit costs on the worker's CPU (engine/posting.py). Seconds and peak memory (GPU: peak
allocated; CPU: the process's peak RSS so far, which only grows) per job, and each as a ratio to the
grid: the number a server owner needs to set `/admin video images_per_clip`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine import models, posting  # noqa: E402
from engine.db.members import GuildSettings  # noqa: E402
from engine.generate import Engine  # noqa: E402
from engine.jobs import GenerateSpec, Job, JobKind, VideoSpec  # noqa: E402
from engine.presets import get_preset  # noqa: E402


def peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def timed(engine: Engine, make, repeat: int, device: torch.device):
    engine.run(make())  # warm-up (loads the video model the first time)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = engine.run(make())
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), peak_gib(device), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="a preset with a video model (default tiny, on the CPU)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    if preset.video is None:
        print(f"preset {preset.name} has no video model", file=sys.stderr)
        return 2
    device = models.resolve_device("cpu" if preset.kind == "tiny" and args.device == "auto" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tastemaker-video-bench-") as tmp:
        engine = Engine(preset, device=str(device), data_dir=tmp)
        engine.load()
        side = preset.base_size
        spec = GenerateSpec(prompt="a lighthouse on a cliff at dusk", width=side, height=side, seed=1)
        grid_s, grid_peak, grid = timed(engine, lambda: Job(kind=JobKind.IMAGINE, preset=preset.name, generate=spec),
                                        args.repeat, device)
        start = grid.images[0].png

        def clip(**fields) -> Job:
            return Job(kind=JobKind.VIDEO, preset=preset.name,
                       video=VideoSpec(prompt="waves below the lighthouse", clips=1, **fields))

        rows = [("2x2 grid", grid_s, grid_peak)]
        clip_s, clip_peak, made = timed(engine, lambda: clip(start_image=start), args.repeat, device)
        rows.append(("clip from a start frame", clip_s, clip_peak))
        extend_s, extend_peak, _ = timed(engine, lambda: clip(previous=made.clips[0].mp4), args.repeat, device)
        rows.append(("Extend of that clip", extend_s, extend_peak))
        text_s, text_peak, _ = timed(engine, lambda: clip(start=spec.model_copy(update={"count": 1})), args.repeat, device)
        rows.append(("clip from a text prompt", text_s, text_peak))
        # What the worker's CPU adds: four clips fitted into a server's 10 MiB, and into 1 MiB.
        four = [made.clips[0].mp4] * 4
        for limit in (10 * 2**20, 2**20):
            t0 = time.perf_counter()
            posting.fit_clips(four, limit)
            rows.append((f"fit 4 clips to {limit // 2**20} MiB", time.perf_counter() - t0, float("nan")))
        info = made.clips[0]
        unit = "GiB GPU" if device.type == "cuda" else "GiB RSS"
        print(f"video_bench: {preset.name} on {torch.cuda.get_device_name() if device.type == 'cuda' else 'the CPU'}; "
              f"clips {info.width}x{info.height}, {info.frames} frames at {info.fps:g} fps, {preset.video.steps} steps; "
              f"grid {side} px; median of {args.repeat}")
        print(f"{'job':<28}{'seconds':>10}{'x grid':>9}{unit:>11}")
        for name, seconds, peak in rows:
            print(f"{name:<28}{seconds:10.3f}{seconds / grid_s:9.2f}{peak:11.2f}")
        print(f"a clip costs {clip_s / grid_s:.1f} grids of GPU time ({clip_s / grid_s * 4:.0f} images' worth); "
              f"a server counts it as {GuildSettings().video_clip_images} images by default (/admin video)")
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
