"""How much time the bot adds around generation, as ratios of generation time.

Drives the real bot through SimCord (no Discord needed) with the tiny preset and
the inline worker, and measures per /imagine:

  claim latency:  the interaction -> a worker claims the job
  edit latency:   the worker finishes -> the grid is on the member's message

The job pump runs on a discord.ext.tasks loop; SimCord keeps that loop on
virtual time, so this driver advances virtual time in step with the wall clock
(one pump period per real pump period), as in production.

    .venv/bin/python bench/bot_overhead.py [--jobs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simcord  # noqa: E402

from bot.app import create_bot  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.delivery import POLL_S  # noqa: E402
from engine import models  # noqa: E402
from engine.db import jobs as db_jobs  # noqa: E402


async def wall_clock(env, until) -> None:
    """Advance SimCord's virtual time at the real rate until `until()` holds."""
    while not until():
        started = time.perf_counter()
        await env.advance_time(POLL_S)
        await asyncio.to_thread(time.sleep, max(0.0, POLL_S - (time.perf_counter() - started)))


async def main(jobs: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tastemaker-bench-"))
    models.build_tiny(data_dir)
    settings = Settings(
        _env_file=None, DISCORD_TOKEN="bench", TASTEMAKER_DATA_DIR=str(data_dir),
        TASTEMAKER_MODEL="tiny", TASTEMAKER_WORKERS="inline", TASTEMAKER_DEVICE="cpu", TASTEMAKER_AUTO_POOL="0",
    )
    bot = create_bot(settings)
    rows = []
    async with simcord.run(bot, settle_timeout=30) as env:
        guild = env.create_guild("bench")
        channel = guild.create_text_channel("art")
        member = guild.add_member(env.create_user("member"))
        # Warm-up: the worker loads the model on its first job.
        for n in range(jobs + 1):
            asked = time.time()
            await member.slash(channel, "imagine", prompt=f"a lighthouse, study {n} --seed {n}")
            [record] = [r for r in await db_jobs.active_jobs(bot.db)]

            def done() -> bool:
                return bool(channel.last_message and channel.last_message.attachments)

            await wall_clock(env, done)
            record = await db_jobs.get_job(bot.db, record.id)
            if n:
                generation = record.finished_at - record.started_at
                rows.append((record.started_at - asked, record.delivered_at - record.finished_at, generation))
    await bot.close()
    claim = statistics.median(r[0] for r in rows)
    edit = statistics.median(r[1] for r in rows)
    generation = statistics.median(r[2] for r in rows)
    print(f"jobs measured: {len(rows)} (tiny preset, inline worker, CPU; pump period {POLL_S}s)")
    print(f"generation time (median):              {generation * 1000:8.1f} ms")
    print(f"interaction -> claimed (median):       {claim * 1000:8.1f} ms   ratio {claim / generation:.3f}")
    print(f"finished -> message edited (median):   {edit * 1000:8.1f} ms   ratio {edit / generation:.3f}")
    print("ratios are of the tiny model's generation time; a real GPU preset takes seconds, so they shrink accordingly")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    asyncio.run(main(parser.parse_args().jobs))
