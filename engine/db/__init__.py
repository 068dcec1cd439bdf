"""The bot's database: aiosqlite in WAL mode, numbered .sql migrations.

Repository functions live in small modules beside this one (users, jobs,
images, taste), each plain parameterised SQL. No ORM.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "data" / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def connect(path: str | Path) -> aiosqlite.Connection:
    """Open the database, switch to WAL and apply pending migrations."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=30, isolation_level=None)
    db.row_factory = aiosqlite.Row
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        await db.execute_fetchall(f"PRAGMA {pragma}")  # fetch: an unread row keeps the statement open
    await migrate(db)
    return db


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


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply each pending migration in one transaction; returns the schema version.

    Safe to run from several processes at once: BEGIN IMMEDIATE serialises them
    and the version is re-read inside the transaction.
    """
    files = migration_files()
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
            (current,) = await cur.fetchone()
        for number, file in files:
            if number <= current:
                continue
            for statement in _statements(file.read_text()):
                await db.execute(statement)
            await db.execute("INSERT INTO schema_version VALUES (?, ?)", (number, time.time()))
            log.info("applied migration %s", file.name)
            current = number
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    return current


def _statements(sql: str) -> list[str]:
    # executescript() would commit our transaction; split on ';' at line ends instead.
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().strip(";")]
