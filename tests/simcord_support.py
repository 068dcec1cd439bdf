"""Running the real bot under SimCord: what the tests and bench/bot_overhead.py share."""

from __future__ import annotations

import asyncio

from bot.app import Tastemaker


async def wait_outside_the_bot(awaitable):
    """The job pump's wait on the queue (a worker in real time) is the bot's
    external input: declared so, SimCord settles around it, and the pump's
    ticks between events follow virtual time."""
    from simcord._runtime import _LIVE_LOOPS  # the Env running on this loop; SimCord has no public lookup

    env = _LIVE_LOOPS[asyncio.get_running_loop()]
    return await env.external_wait(awaitable, reason="job queue events")


def under_simcord(bot: Tastemaker) -> Tastemaker:
    bot.delivery.wait_outside = wait_outside_the_bot
    return bot
