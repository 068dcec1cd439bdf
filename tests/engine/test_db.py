"""engine.db: one transaction helper for every write on a shared connection."""

from __future__ import annotations

import asyncio
import sqlite3
from types import SimpleNamespace

import pytest

from engine.db import connect, transaction
from engine.db import jobs as db_jobs
from engine.db import members
from engine.jobs import EventType, JobEvent, JobState


@pytest.fixture
async def db(tmp_path):
    db = await connect(tmp_path / "t.db")
    async with transaction(db):
        await db.execute("CREATE TABLE t (x INTEGER)")
    yield db
    await db.close()


async def values(db) -> list[int]:
    return [x for (x,) in await db.execute_fetchall("SELECT x FROM t ORDER BY rowid")]


async def test_nested_transaction_joins_the_outer_one(db):
    with pytest.raises(RuntimeError):
        async with transaction(db):
            await db.execute("INSERT INTO t VALUES (1)")
            async with transaction(db):  # joins: no second BEGIN, no commit of its own
                await db.execute("INSERT INTO t VALUES (2)")
            assert db.in_transaction
            raise RuntimeError
    assert await values(db) == []  # the inner write went with the outer rollback
    async with transaction(db):
        async with transaction(db):
            await db.execute("INSERT INTO t VALUES (3)")
    assert await values(db) == [3]
    assert not db.in_transaction


async def test_error_and_cancellation_roll_back(db):
    with pytest.raises(sqlite3.IntegrityError):
        async with transaction(db):
            await db.execute("INSERT INTO t VALUES (1)")
            await db.execute("INSERT INTO users (id, created_at) VALUES (1, 0), (1, 0)")
    inside = asyncio.Event()

    async def cancelled_midway():
        async with transaction(db):
            await db.execute("INSERT INTO t VALUES (2)")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled_midway())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with transaction(db):  # the connection is usable again
        await db.execute("INSERT INTO t VALUES (3)")
    assert await values(db) == [3]


async def test_concurrent_writers_serialise(db):
    async def read_modify_write(x: int) -> None:
        async with transaction(db):
            rows = await db.execute_fetchall("SELECT COUNT(*) FROM t")
            await asyncio.sleep(0.01)  # another task runs here; it must not join this transaction
            await db.execute("INSERT INTO t VALUES (?)", (rows[0][0] * 10 + x,))

    await asyncio.gather(*(read_modify_write(x) for x in range(5)))
    got = await values(db)
    assert [v // 10 for v in got] == [0, 1, 2, 3, 4]  # each saw every write before it
    assert sorted(v % 10 for v in got) == [0, 1, 2, 3, 4]


async def test_transaction_serialises_writers_across_connections(tmp_path):
    first, second = await connect(tmp_path / "x.db"), await connect(tmp_path / "x.db")
    try:
        inside, release = asyncio.Event(), asyncio.Event()

        async def hold():
            async with transaction(first):
                await first.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
                inside.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await inside.wait()
        writer = asyncio.create_task(members.set_meta(second, "a", "2"))
        await asyncio.sleep(0.2)
        assert not writer.done()  # BEGIN IMMEDIATE waits for the other connection's write lock
        release.set()
        await holder
        await writer
        assert await members.get_meta(first, "a") == "2"
    finally:
        await first.close()
        await second.close()


async def test_a_settings_change_during_a_failed_pump_step_is_not_lost(tmp_path, monkeypatch):
    """A member changes a setting while the job pump (the real Delivery.apply)
    has its transaction open on the bot's one connection; the pump's step then
    fails and rolls back. The member's change must survive: it may not join the
    pump's transaction."""
    from bot.delivery import Delivery

    db = await connect(tmp_path / "bot.db")
    try:
        await members.ensure_user(db, 7)
        await db_jobs.insert_job(
            db, id="j1", kind="imagine", user_id=7, guild_id=None, channel_id=1, prompt="a cat", request={}
        )
        record = await db_jobs.get_job(db, "j1")
        assert record.state is JobState.QUEUED

        inside, release = asyncio.Event(), asyncio.Event()
        real_update_job = db_jobs.update_job

        async def update_then_fail(db, job_id, **fields):
            await real_update_job(db, job_id, **fields)
            inside.set()
            await release.wait()  # the step's transaction is open here
            raise RuntimeError("the pump step failed")

        monkeypatch.setattr(db_jobs, "update_job", update_then_fail)
        delivery = Delivery(SimpleNamespace(db=db))
        started = JobEvent(job_id="j1", type=EventType.STARTED, cursor="1")
        pump = asyncio.create_task(delivery.apply(record, [started]))
        await inside.wait()

        like_a_cog = asyncio.create_task(members.update_settings(db, 7, auto_dm=True))
        await asyncio.sleep(0.05)
        release.set()
        with pytest.raises(RuntimeError, match="pump step failed"):
            await pump
        await like_a_cog

        assert (await members.get_settings(db, 7)).auto_dm is True
        after = await db_jobs.get_job(db, "j1")
        assert (after.state, after.cursor) == (JobState.QUEUED, "")  # the pump's own write was rolled back
    finally:
        await db.close()


async def test_a_helper_connection_has_the_bots_settings(db, tmp_path):
    """A thread's own connection (engine.profiles._apart) writes too: foreign keys hold there
    as on the bot's; a read-only one (engine.prior_fit) can't write at all."""
    from engine import profiles
    from engine.db import open_db

    async with transaction(db):
        await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        await db.execute("CREATE TABLE child (parent INTEGER NOT NULL REFERENCES parent (id))")

    async def orphan(helper) -> None:
        ((on,),) = await helper.execute_fetchall("PRAGMA foreign_keys")
        assert on == 1
        async with transaction(helper):
            await helper.execute("INSERT INTO child VALUES (7)")

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await asyncio.to_thread(profiles._apart, str(tmp_path / "t.db"), orphan)
    reader = await open_db(tmp_path / "t.db", read_only=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.execute("INSERT INTO parent VALUES (1)")
    finally:
        await reader.close()
    assert await db.execute_fetchall("SELECT * FROM child") == []
