"""A busy server on Discord's limits: N members queue M jobs each, across channels, at once.

Drives the real bot (wired by open_resources, as `python -m bot` is) through SimCord under
Discord's limits (tests/discord_limits.py: per-channel and per-interaction buckets, the global
limit, upload limits, the 3 s answer), with its clock kept in step with real time, and a worker
in a process of its own on the bot's SQLite queue:

  gpu double   the default preset's 1024-px jobs, answered by the real worker loop running a bench
               double at a GPU's pace (tests/gpu_double.py: photo-like pixels, not a model); with
               --compare-channel also with every job message past its interaction's token (edited
               through the shared channel, as after 15 minutes in a long queue);
  tiny         the tiny preset's real worker (random weights, 128 px).

It prints, for each, as measured in the one run: finished -> grid visible (p50, p99, max), the
most writes to one channel and to one interaction's webhook in any 5 s, 429s and refused uploads,
the largest upload against the server's limit, and the bot process's CPU seconds per job and
peak RSS (SimCord, which keeps a copy of every upload, and this driver included: an upper bound;
each scenario runs in a process of its own), against the goals.

    .venv/bin/python bench/community_load.py [--members 50] [--jobs 2] [--quiet 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GOAL_P99_S = 1.0
GOAL_RSS_MB = 300
MiB = 2**20


async def scenario(name: str, model: str, worker: list[str], members: int, jobs: int, quiet: int,
                   *, channel_only: bool = False, models_dir: Path | None = None) -> dict:
    import simcord

    from bot import outbox
    from bot.app import create_bot
    from bot.config import Settings
    from bot.resources import open_resources
    from discord_limits import DiscordLimits
    from engine.db import jobs as db_jobs
    from simcord_support import under_simcord

    data_dir = Path(tempfile.mkdtemp(prefix="tastemaker-load-"))
    if models_dir is not None:
        (data_dir / "models").symlink_to(models_dir / "models", target_is_directory=True)
    settings = Settings(
        _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=str(data_dir), TASTEMAKER_MODEL=model,
        TASTEMAKER_WORKERS="0", TASTEMAKER_AUTO_POOL="0", TASTEMAKER_WEB_PORT="0",
    )
    saved = outbox.TOKEN_LIFE_S
    if channel_only:
        outbox.TOKEN_LIFE_S = outbox.TOKEN_MARGIN_S  # every message past its token: the channel's budget
    limits = DiscordLimits().install()
    total = members * jobs + quiet
    try:
        async with open_resources(settings) as resources:
            bot = under_simcord(create_bot(settings, resources))
            process = subprocess.Popen([*worker, settings.queue_url], cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
            try:
                async with simcord.run(bot, settle_timeout=2) as env:  # the bot's sleeps beyond 2 s wait for the clock
                    clock = Clock(env)
                    guild = env.create_guild("A busy server")
                    busy, calm = guild.create_text_channel("art"), guild.create_text_channel("quiet")
                    people = [guild.add_member(env.create_user(f"member{n}")) for n in range(max(members, quiet))]
                    cpu0, asked = time.process_time(), time.monotonic()
                    for turn in range(jobs):
                        for n in range(members):
                            await people[n].slash(busy, "imagine", prompt=f"a harbour at dusk, study {n}.{turn}")
                            await clock.keep_up()
                    for n in range(quiet):
                        await people[n].slash(calm, "imagine", prompt=f"a quiet field, study {n}")
                        await clock.keep_up()
                    queued_s = time.monotonic() - asked
                    while (delivered := await _delivered(bot)) < total:
                        await asyncio.to_thread(time.sleep, 0.02)
                        await clock.keep_up()
                        if clock.stalled(delivered):
                            raise RuntimeError(f"{name}: {delivered} of {total} jobs shown after 300 s without progress")
                    cpu = time.process_time() - cpu0
                    held = sum(len(blob) for blob in env.backend.cdn._blobs.values())  # SimCord keeps every upload
                    records = [await db_jobs.get_job(bot.db, row[0])
                               for row in await bot.db.execute_fetchall("SELECT id FROM jobs")]
                await bot.close()
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    finally:
        limits.uninstall()
        outbox.TOKEN_LIFE_S = saved
    shown = {}
    for write in limits.writes:
        if write.message_id is not None:
            shown[write.message_id] = max(write.wall, shown.get(write.message_id, 0.0))
    latency = sorted(shown[r.message_id] - r.finished_at for r in records)
    return {
        "name": name, "jobs": total, "latency": latency, "queued_s": queued_s,
        "channel": _most_in_window(limits.writes, "channel:"), "webhook": _most_in_window(limits.writes, "interaction:"),
        "429": sum(v.kind == "429" for v in limits.violations), "413": sum(v.kind == "413" for v in limits.violations),
        "late": sum(v.kind == "late answer" for v in limits.violations),
        "upload": max((w.upload for w in limits.writes), default=0), "limit": limits.upload_limit(None),
        "cpu_per_job": cpu / total, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "simcord_mb": held / MiB,
    }


class Clock:
    """Keeps SimCord's virtual clock (the bot's timers) in step with real time (the worker's)."""

    def __init__(self, env):
        self.env = env
        self.last = time.monotonic()
        self.progress = (0, self.last)

    async def keep_up(self) -> None:
        now = time.monotonic()
        await self.env.advance_time(now - self.last)
        self.last = now

    def stalled(self, delivered: int) -> bool:
        if delivered != self.progress[0]:
            self.progress = (delivered, time.monotonic())
        return time.monotonic() - self.progress[1] > 300


async def _delivered(bot) -> int:
    [(n,)] = await bot.db.execute_fetchall("SELECT COUNT(*) FROM jobs WHERE delivered_at IS NOT NULL")
    return n


def _most_in_window(writes, prefix: str, window: float = 5.0) -> int:
    """The most writes to one bucket of this kind in any `window` seconds (SimCord's clock)."""
    by_bucket: dict[str, list[float]] = {}
    for write in writes:
        if write.bucket and write.bucket.startswith(prefix):
            by_bucket.setdefault(write.bucket, []).append(write.at)
    most = 0
    for times in by_bucket.values():
        times.sort()
        start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            most = max(most, end - start + 1)
    return most


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def report(row: dict) -> None:
    lat = row["latency"]
    print(f"{row['name']}: {row['jobs']} jobs, queued by their members within {row['queued_s']:.1f} s")
    print(f"  finished -> visible   p50 {statistics.median(lat) * 1000:7.0f} ms   p99 {_pct(lat, 0.99) * 1000:7.0f} ms"
          f"   max {lat[-1] * 1000:7.0f} ms   ({'met' if _pct(lat, 0.99) < GOAL_P99_S else 'NOT met'}: p99 < 1 s)")
    print(f"  writes in any 5 s     one channel {row['channel']:3d}   one interaction's webhook {row['webhook']:3d}"
          f"   (Discord allows 5 each)")
    ok = row["429"] == row["413"] == row["late"] == 0
    print(f"  refused by Discord    429s {row['429']}   uploads over the limit {row['413']}   late answers {row['late']}"
          f"   ({'met' if ok else 'NOT met'}: none)")
    print(f"  largest upload        {row['upload'] / MiB:6.2f} MiB of {row['limit'] / MiB:.0f} MiB"
          f"   ({'met' if row['upload'] <= row['limit'] else 'NOT met'})")
    print(f"  bot process           {row['cpu_per_job'] * 1000:6.1f} ms CPU per job   peak RSS {row['rss_mb']:6.0f} MB"
          f", {row['simcord_mb']:.0f} MB of it SimCord's copies of the uploads"
          f"   ({'met' if row['rss_mb'] < GOAL_RSS_MB else 'NOT met'}: < {GOAL_RSS_MB} MB)")


SCENARIOS = {
    "gpu": "gpu double, 1024 px, interaction webhooks",
    "channel": "gpu double, 1024 px, past every token (the channel's budget)",
    "tiny": "tiny preset, its real worker",
}


def main(args: argparse.Namespace) -> None:
    """Each scenario in a process of its own, so that each one's peak RSS is its own."""
    print(f"community load: {args.members} members x {args.jobs} jobs in one channel, {args.quiet} in another; "
          f"Discord's limits on; a job every {args.seconds_per_job:g} s\n", flush=True)
    chosen = ["gpu", *(["channel"] if args.compare_channel else []), *([] if args.no_tiny else ["tiny"])]
    p99 = {}
    for kind in chosen:
        out = subprocess.run([sys.executable, __file__, "--scenario", kind, "--members", str(args.members), "--jobs",
                              str(args.jobs), "--quiet", str(args.quiet), "--seconds-per-job", str(args.seconds_per_job)],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{SCENARIOS[kind]}: failed\n{out.stderr[-3000:]}")
        *lines, last = out.stdout.rstrip("\n").split("\n")
        print("\n".join(lines), flush=True)
        p99[kind] = float(last.removeprefix("p99 "))
    if "channel" in p99:
        print(f"\nchannel's budget / webhooks: p99 finished -> visible {p99['channel'] / max(p99['gpu'], 1e-3):.1f}x")


async def run_scenario(kind: str, args: argparse.Namespace) -> None:
    if kind == "tiny":
        tiny = Path(tempfile.mkdtemp(prefix="tastemaker-tiny-"))
        subprocess.run([sys.executable, "-c", f"from engine import models; models.build_tiny({str(tiny)!r})"],
                       cwd=ROOT, check=True, capture_output=True)
        worker = [sys.executable, "-m", "engine.worker", "--preset", "tiny", "--device", "cpu",
                  "--data-dir", str(tiny), "--queue"]
        row = await scenario(SCENARIOS[kind], "tiny", worker, args.members, args.jobs, args.quiet, models_dir=tiny)
    else:
        double = [sys.executable, __file__, "--serve-double", "--seconds-per-job", str(args.seconds_per_job), "--queue"]
        row = await scenario(SCENARIOS[kind], "sdxl-lightning", double, args.members, args.jobs, args.quiet,
                             channel_only=kind == "channel")
    report(row)
    print(f"p99 {_pct(row['latency'], 0.99)}")


def serve_double(queue_url: str, seconds_per_job: float) -> None:
    """The worker process: the real worker loop running the GPU double."""
    from engine.queue import open_queue
    from engine.worker import Worker
    from gpu_double import GPUDouble

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        queue = await open_queue(queue_url)
        try:
            await Worker(queue, GPUDouble(seconds_per_job=seconds_per_job), "gpu-double").run_forever(stop)
        finally:
            await queue.close()

    asyncio.run(serve())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="jobs per member in the busy channel")
    parser.add_argument("--quiet", type=int, default=10, help="jobs in the quiet channel")
    parser.add_argument("--seconds-per-job", type=float, default=1.0, help="the double's pace (a GPU's: about 1)")
    parser.add_argument("--no-tiny", action="store_true", help="leave out the tiny preset's real worker")
    parser.add_argument("--compare-channel", action="store_true",
                        help="also run every job message past its token, on the channel's budget alone (SimCord then "
                             "waits out the bot's short budget waits in real time in each command: keep it small)")
    parser.add_argument("--quick", action="store_true", help="10 members x 2 jobs, 4 quiet")
    parser.add_argument("--scenario", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--serve-double", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.members, args.jobs, args.quiet = 10, 2, 4
    if args.serve_double:
        serve_double(args.queue, args.seconds_per_job)
    elif args.scenario:
        asyncio.run(run_scenario(args.scenario, args))
    else:
        main(args)
