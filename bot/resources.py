"""open_resources(settings): the one place that opens what the bot runs on.

The database, the queue client, the local workers and the web companion are
opened here, in that order, and closed in reverse. `python -m bot`, the tests and the benches all
use it, so every way of starting the bot is wired the same way; the bot and
its cogs only borrow these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiosqlite

from bot import backup
from bot.config import Settings
from bot.web.server import WebSite, start_web
from bot.workers import LocalWorkers
from engine import db as database
from engine.presets import load_presets
from engine.queue import JobQueue, open_queue


@dataclass(frozen=True)
class Resources:
    db: aiosqlite.Connection  # the bot's one connection; every write goes through engine.db.transaction
    queue: JobQueue
    workers: LocalWorkers
    web: WebSite | None = None  # the web companion (bot/web), None when TASTEMAKER_WEB_PORT=0


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    # 0. The owner's model presets (presets.toml): a bad file stops startup with what is wrong.
    load_presets(settings)
    async with AsyncExitStack() as stack:
        # 0. Held while the bot runs: `python -m bot restore` refuses meanwhile (bot/backup.py).
        stack.enter_context(backup.running(settings.data_dir))
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
        # 4. The web companion, on this loop, database and queue; it stops first.
        site = await start_web(settings, db, queue)
        if site is not None:
            stack.push_async_callback(site.stop)
        yield Resources(db=db, queue=queue, workers=workers, web=site)
