"""open_resources(settings): the one place that opens what the bot runs on.

The database, the queue client and the local workers are opened here, in that
order, and closed in reverse. `python -m bot`, the tests and the benches all
use it, so every way of starting the bot is wired the same way; the bot and
its cogs only borrow these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiosqlite

from bot.config import Settings
from bot.workers import LocalWorkers
from engine import db as database
from engine.queue import JobQueue, open_queue


@dataclass(frozen=True)
class Resources:
    db: aiosqlite.Connection  # the bot's one connection; every write goes through engine.db.transaction
    queue: JobQueue
    workers: LocalWorkers


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        # 1. The database first: it creates the file and applies migrations, so the
        #    SQLite queue and the workers find its tables.
        db = await database.connect(settings.db_path)
        stack.push_async_callback(db.close)
        # 2. The queue client (SQLite in the same file, or Redis).
        queue = await open_queue(settings.queue_url)
        stack.push_async_callback(queue.close)
        # 3. Local workers last, stopped first: a worker finishes or requeues its job
        #    while the queue is still open.
        workers = LocalWorkers(settings)
        await workers.start()
        stack.push_async_callback(workers.stop)
        yield Resources(db=db, queue=queue, workers=workers)
