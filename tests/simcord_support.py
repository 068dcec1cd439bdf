"""Running the real bot under SimCord: what the tests and bench/bot_overhead.py share."""

from __future__ import annotations

import asyncio

from bot.app import Tastemaker


async def wait_outside_the_bot(awaitable):
    """The bot's waits on its workers (the job pump's on the queue, the rank-pool
    build) are its external input: declared so, SimCord settles around them, and
    the pump's ticks between events follow virtual time."""
    from simcord._runtime import _LIVE_LOOPS  # the Env running on this loop; SimCord has no public lookup

    env = _LIVE_LOOPS[asyncio.get_running_loop()]
    return await env.external_wait(awaitable, reason="job queue events")


def under_simcord(bot: Tastemaker) -> Tastemaker:
    bot.wait_outside = wait_outside_the_bot
    return bot
