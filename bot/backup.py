"""python -m bot backup PATH / restore PATH: the database and the image files, consistent
while the bot runs, and back again.

Backup: SQLite's online backup API copies the database as one snapshot (writers carry on
in WAL meanwhile), then the files that snapshot names (images/, pool/, tune/) and the
member uploads and quarantine folders are copied beside it. A row is written only after
its file (bot/delivery.py), so every file the snapshot needs is on disk. PATH is a
mirror, updated in place by the next backup: files already there (same size: stored
images never change) are not copied again, and the new database replaces the old one
only once its files are in, so PATH always holds a database with all of its files.
The retention sweep skips its turn while a backup holds `backup.lock`.

Restore: refused while the bot runs: the bot holds a shared lock (flock) on `bot.lock`
in its data dir for as long as it runs, which the kernel drops when its process ends,
even killed; restore needs it exclusively. What the data dir held is moved aside into
`before-restore-<time>/` first, so nothing is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATABASE = "tastemaker.db"
BOT_LOCK, BACKUP_LOCK = "bot.lock", "backup.lock"
LISTED = ("images", "pool", "tune")  # their files are named by the database's rows
FOLDERS = ("inputs", "quarantine")  # copied as they are: member uploads, blocked images kept for review
EXTRAS = ("presets.toml",)
MANIFEST = "manifest.json"
# What a backup leaves out: thumbnails are remade on demand, models download (or the tiny one is rebuilt).
LEFT_OUT = ("thumbs/", "models/")


class DataDirBusy(Exception):
    """Another process holds the lock: the message says which and what to do."""


@contextlib.contextmanager
def _flock(path: Path, mode: int, busy: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(busy) from None
        yield
    finally:
        os.close(fd)  # closing drops the lock


def running(data_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Held by every bot process on the data dir (shared: a restart overlaps the old one)."""
    return _flock(Path(data_dir) / BOT_LOCK, fcntl.LOCK_SH,
                  f"A restore is running on {data_dir}: start the bot once it is done.")


def backing_up(data_dir: Path) -> contextlib.AbstractContextManager[None]:
    return _flock(Path(data_dir) / BACKUP_LOCK, fcntl.LOCK_EX, f"Another backup of {data_dir} is running.")


def backup_running(data_dir: Path) -> bool:
    """Whether a backup of the data dir is copying now (the retention sweep waits for it)."""
    try:
        with _flock(Path(data_dir) / BACKUP_LOCK, fcntl.LOCK_SH, ""):
            return False
    except DataDirBusy:
        return True


@dataclass
class Summary:
    database_bytes: int
    counts: dict[str, int]
    files: int
    copied: int
    removed: int
    missing: list[str]
    seconds: float


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    return {
        "images": db.execute("SELECT COUNT(*) FROM images").fetchone()[0],
        "votes": db.execute("SELECT COUNT(*) FROM rank_pairs WHERE choice IN ('left', 'right')").fetchone()[0],
        "likes": db.execute("SELECT COUNT(*) FROM likes").fetchone()[0],
        "codes": db.execute("SELECT COUNT(*) FROM profile_versions").fetchone()[0],
    }


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    shutil.copy2(source, partial)
    os.replace(partial, target)


def backup(data_dir: Path, target: Path) -> Summary:
    """A consistent copy of the data dir's database and files in `target` (a folder)."""
    started = time.perf_counter()
    data_dir, target = Path(data_dir), Path(target)
    if not (data_dir / DATABASE).is_file():
        raise FileNotFoundError(f"There is no database at {data_dir / DATABASE}: check TASTEMAKER_DATA_DIR.")
    if target.resolve().is_relative_to(data_dir.resolve()):
        raise ValueError(f"Back up to a folder outside the data dir {data_dir}, ideally on another disk.")
    target.mkdir(parents=True, exist_ok=True)
    with backing_up(data_dir):
        # 1. The database, as one snapshot (the online backup API; the bot keeps writing meanwhile).
        snapshot = target / f".{DATABASE}.partial"
        source = sqlite3.connect(data_dir / DATABASE, timeout=60)
        copy = sqlite3.connect(snapshot)
        try:
            source.backup(copy)
            names = [row[0] for row in copy.execute(
                "SELECT path FROM images UNION SELECT path FROM pool_images UNION SELECT path FROM tune_images")]
            jobs = [row[0] for row in copy.execute("SELECT id FROM jobs")]
            counts = _counts(copy)
        finally:
            copy.close()
            source.close()
        # 2. The files that snapshot names, then the folders copied whole.
        wanted = {Path(name) for name in names}
        for job_id in jobs:  # beside its images, a job's folder holds what it posted (grid, clips' MP4s)
            folder = data_dir / "images" / job_id
            if folder.is_dir():
                wanted |= {p.relative_to(data_dir) for p in folder.iterdir() if p.is_file()}
        for folder in FOLDERS:
            wanted |= {p.relative_to(data_dir) for p in (data_dir / folder).rglob("*") if p.is_file()}
        wanted |= {Path(name) for name in EXTRAS if (data_dir / name).is_file()}
        copied, missing = 0, []
        for relative in sorted(wanted):
            source_file, target_file = data_dir / relative, target / relative
            if not source_file.is_file():
                missing.append(str(relative))
                continue
            if target_file.is_file() and target_file.stat().st_size == source_file.stat().st_size and relative.parts[0] in LISTED:
                continue  # stored images never change: already backed up
            _copy(source_file, target_file)
            copied += 1
        # 3. The new database takes the old one's place only now that all its files are in; then
        #    what no row names any more (purged images, a previous backup's) goes.
        os.replace(snapshot, target / DATABASE)
        removed = 0
        for folder in (*LISTED, *FOLDERS):
            for path in sorted((target / folder).rglob("*"), reverse=True):
                if path.is_file() and path.relative_to(target) not in wanted:
                    path.unlink()
                    removed += 1
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
    summary = Summary((target / DATABASE).stat().st_size, counts, len(wanted) - len(missing), copied, removed, missing,
                      time.perf_counter() - started)
    (target / MANIFEST).write_text(json.dumps({
        "made_at": time.time(), "data_dir": str(data_dir.resolve()), "database_bytes": summary.database_bytes,
        "counts": counts, "files": summary.files, "missing": len(missing), "first_missing": missing[:20],
        "left_out": list(LEFT_OUT),
    }, indent=2))
    return summary


def restore(source: Path, data_dir: Path) -> tuple[Summary, Path | None]:
    """Bring a backup back into the data dir, the bot stopped; returns what was restored and
    where the data dir's previous contents were moved (None: it had none)."""
    started = time.perf_counter()
    source, data_dir = Path(source), Path(data_dir)
    if not (source / DATABASE).is_file() or not (source / MANIFEST).is_file():
        raise FileNotFoundError(f"{source} is not a tastemaker backup (no {DATABASE} and {MANIFEST} there).")
    checked = sqlite3.connect(f"file:{source / DATABASE}?mode=ro", uri=True)
    try:
        verdict = checked.execute("PRAGMA quick_check").fetchone()[0]
        counts = _counts(checked)
    finally:
        checked.close()
    if verdict != "ok":
        raise ValueError(f"The backup's database is damaged ({verdict}); nothing was changed.")
    data_dir.mkdir(parents=True, exist_ok=True)
    busy = (f"The bot is running on {data_dir}: it holds {data_dir / BOT_LOCK} (a lock the kernel drops when its "
            "process ends). Stop it, and any worker using this data dir, then restore. Nothing was changed.")
    with _flock(data_dir / BOT_LOCK, fcntl.LOCK_EX, busy):
        # 1. Whatever is there now moves aside, whole.
        kept = (*LISTED, *FOLDERS, *EXTRAS, "thumbs")
        present = [p for p in data_dir.iterdir() if p.name.startswith(DATABASE) or p.name in kept]
        aside = None
        if present:
            aside = data_dir / time.strftime("before-restore-%Y%m%d-%H%M%S")
            aside.mkdir()
            for path in present:
                os.replace(path, aside / path.name)
        # 2. The backup's database and files come in.
        files = 0
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if path.is_file() and relative.name != MANIFEST and not relative.name.startswith("."):
                _copy(path, data_dir / relative)
                files += relative.name != DATABASE
    size = (data_dir / DATABASE).stat().st_size
    return Summary(size, counts, files, files, 0, [], time.perf_counter() - started), aside


def _described(summary: Summary) -> str:
    counts = summary.counts
    return (f"database {summary.database_bytes / 1e6:,.1f} MB ({counts['images']:,} images, {counts['votes']:,} votes, "
            f"{counts['likes']:,} likes, {counts['codes']:,} codes), {summary.files:,} files")


def main(argv: list[str]) -> int:
    from engine.config import EngineSettings

    parser = argparse.ArgumentParser(prog="python -m bot", description="Back up or restore the bot's data dir.")
    parser.add_argument("action", choices=("backup", "restore"))
    parser.add_argument("path", type=Path, help="the backup folder")
    args = parser.parse_args(argv)
    data_dir = EngineSettings().data_dir
    try:
        if args.action == "backup":
            summary = backup(data_dir, args.path)
            print(f"Backed up {data_dir} to {args.path}: {_described(summary)} ({summary.copied:,} copied, "
                  f"{summary.removed:,} removed) in {summary.seconds:.1f} s.")
            if summary.missing:
                print(f"{len(summary.missing)} files the database names were not on disk: {summary.missing[:5]}",
                      file=sys.stderr)
        else:
            summary, aside = restore(args.path, data_dir)
            where = f"; what was there is in {aside}" if aside else ""
            print(f"Restored {args.path} into {data_dir}: {_described(summary)} in {summary.seconds:.1f} s{where}.")
    except (DataDirBusy, FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    return 0
