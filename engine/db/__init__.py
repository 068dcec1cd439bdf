"""The bot's database: aiosqlite in WAL mode, numbered .sql migrations.

Repository functions live in small modules beside this one (members, jobs
and images, taste), each plain parameterised SQL. No ORM.

Every write goes through `transaction(db)`: the connection is in autocommit
mode and shared by every task of a process, so a write outside it would
silently join whatever transaction another task has open.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "data" / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def connect(path: str | Path) -> aiosqlite.Connection:
    """Open the database, switch to WAL and apply pending migrations."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await open_db(path)
    await migrate(db)
    return db


async def open_db(path: str | Path, *, read_only: bool = False) -> aiosqlite.Connection:
    """Open an existing (migrated) database with the bot's per-connection settings: another
    connection of the same process or a helper one (a thread's, engine.prior_fit's) enforces
    foreign keys and waits for locks like the bot's own. ``read_only`` opens it so."""
    if read_only:
        db = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    else:
        db = await aiosqlite.connect(path, timeout=30, isolation_level=None)
    db.row_factory = aiosqlite.Row
    # journal_mode is the file's (set once, by a writer); the rest are each connection's own
    pragmas = ("synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000")
    for pragma in pragmas if read_only else ("journal_mode=WAL", *pragmas):
        await db.execute_fetchall(f"PRAGMA {pragma}")  # fetch: an unread row keeps the statement open
    return db


@dataclass
class _Owner:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task | None = None  # the task whose transaction is open


_owners: weakref.WeakKeyDictionary[aiosqlite.Connection, _Owner] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def transaction(db: aiosqlite.Connection, *, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
    """One transaction at a time per connection: COMMIT on success, ROLLBACK on
    any exception (cancellation included).

    A nested `transaction(db)` in the same task joins the open one, so
    repository functions wrap themselves and callers can still group several
    of them. Other tasks wait for the lock; do not await anything but this
    connection's SQL inside (no disk or network I/O, no hooks), and do not
    start a transaction from a task spawned inside one (it would wait forever).

    write=True takes SQLite's write lock at once (BEGIN IMMEDIATE), which
    serialises writers across processes too; write=False is a consistent
    snapshot for several reads that must not see another task's half-done
    transaction.
    """
    owner = _owners.setdefault(db, _Owner())
    task = asyncio.current_task()
    if owner.task is task:
        yield db  # joins the outer transaction, which commits or rolls back
        return
    async with owner.lock:
        if db.in_transaction:  # left open by a call cancelled mid-way
            await _rollback(db)
        await db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        owner.task = task
        try:
            yield db
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await _rollback(db)
            raise
        finally:
            owner.task = None


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:  # a ROLLBACK queued by a cancelled call got there first
        pass


def migration_files() -> list[tuple[int, Path]]:
    found = []
    for file in sorted(MIGRATIONS.glob("*.sql")):
        match = _NAME.match(file.name)
        if not match:
            raise RuntimeError(f"migration {file.name} is not named NNNN_name.sql")
        found.append((int(match.group(1)), file))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


async def migrate(db: aiosqlite.Connection, target: int | None = None) -> int:
    """Apply each pending migration (up to ``target``, default all) in one transaction;
    returns the schema version.

    Safe to run from several processes at once: BEGIN IMMEDIATE serialises them
    and the version is re-read inside the transaction.
    """
    files = migration_files()
    scripts = [(number, file.name, _statements(file.read_text())) for number, file in files]  # disk I/O first
    async with transaction(db):
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
        ((current,),) = await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        for number, name, statements in scripts:
            if number <= current or (target is not None and number > target):
                continue
            for statement in statements:
                await db.execute(statement)
            await db.execute("INSERT INTO schema_version VALUES (?, ?)", (number, time.time()))
            log.info("applied migration %s", name)
            current = number
    return current


def _statements(sql: str) -> list[str]:
    # executescript() would commit our transaction; split into complete statements
    # instead (sqlite3.complete_statement keeps a trigger's BEGIN ... END whole).
    statements, lines = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        lines.append(line)
        text = "\n".join(lines).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            if text.strip(";").strip():
                statements.append(text)
            lines = []
    if "\n".join(lines).strip():
        statements.append("\n".join(lines).strip())
    return statements
