"""How much time the bot adds at each end of a job, on both queues.

Drives the real bot through SimCord (no Discord needed) with the tiny preset and
the inline worker, wired by open_resources() as `python -m bot` is, and
measures per /imagine:

  interaction -> claimed:          the member runs /imagine -> a worker claims the job
  finished -> message edited:      the worker hands in the result -> the grid is on the member's message

Both are wall-clock intervals stamped by the bot and the worker themselves
(jobs.created/started/finished/delivered), so how this driver waits does not
enter them. It prints medians in ms, and as ratios of the tiny preset's
generation time, for the SQLite queue and for Redis (a redis-server of its own
on loopback, when one is installed).

    .venv/bin/python bench/bot_overhead.py [--jobs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import simcord  # noqa: E402

from bot.app import create_bot  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.resources import open_resources  # noqa: E402
from engine import models  # noqa: E402
from engine.db import jobs as db_jobs  # noqa: E402
from simcord_support import under_simcord  # noqa: E402

GOAL_MS = 50.0


async def measure(queue_url: str, tiny: Path, jobs: int) -> list[tuple[float, float, float]]:
    """(claim, edit, generation) seconds for each job after a warm-up job."""
    data_dir = Path(tempfile.mkdtemp(prefix="tastemaker-bench-"))
    (data_dir / "models").symlink_to(tiny / "models", target_is_directory=True)
    settings = Settings(
        _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=str(data_dir), TASTEMAKER_QUEUE=queue_url,
        TASTEMAKER_MODEL="tiny", TASTEMAKER_WORKERS="inline", TASTEMAKER_DEVICE="cpu", TASTEMAKER_AUTO_POOL="0",
    )
    rows = []
    async with open_resources(settings) as resources:
        bot = under_simcord(create_bot(settings, resources))
        async with simcord.run(bot, settle_timeout=30) as env:
            guild = env.create_guild("bench")
            channel = guild.create_text_channel("art")
            member = guild.add_member(env.create_user("member"))
            for n in range(jobs + 1):  # the first job loads the model: a warm-up, not measured
                asked = time.time()
                await member.slash(channel, "imagine", prompt=f"a lighthouse, study {n} --seed {n}")
                [record] = await db_jobs.active_jobs(bot.db)
                while (record := await db_jobs.get_job(bot.db, record.id)).delivered_at is None:
                    await env.advance_time(0.01)
                    await asyncio.to_thread(time.sleep, 0.01)
                if n:
                    rows.append((
                        record.started_at - asked,
                        record.delivered_at - record.finished_at,
                        record.finished_at - record.started_at,
                    ))
        await bot.close()
    return rows


def report(name: str, rows: list[tuple[float, float, float]]) -> None:
    claim, edit, generation = (statistics.median(r[i] for r in rows) for i in range(3))
    print(f"{name}: {len(rows)} jobs, generation {generation * 1000:.1f} ms (median)")
    for label, value in (("interaction -> claimed", claim), ("finished -> message edited", edit)):
        verdict = "under" if value * 1000 < GOAL_MS else "OVER"
        print(f"  {label:<28} {value * 1000:7.1f} ms   {value / generation:6.3f}x generation   "
              f"{verdict} the {GOAL_MS:.0f} ms goal")


async def main(jobs: int) -> None:
    tiny = Path(tempfile.mkdtemp(prefix="tastemaker-tiny-"))
    models.build_tiny(tiny)
    print("bot overhead: tiny preset, inline worker, CPU, loopback; medians")
    report("SQLite queue", await measure("", tiny, jobs))
    try:
        from redis_server import RedisServer

        server = RedisServer(Path(tempfile.mkdtemp(prefix="tastemaker-redis-")))
    except BaseException as error:  # pytest.skip() without redis-server
        print(f"Redis queue: not measured ({error})")
        return
    with server:
        report("Redis queue", await measure(server.url(), tiny, jobs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    asyncio.run(main(parser.parse_args().jobs))
