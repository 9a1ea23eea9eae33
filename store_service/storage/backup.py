"""Consistent copies of the store's database, taken while the store runs (SQLite's online backup API).

    python -m store_service.storage.backup data/faces.sqlite3 faces-backup.sqlite3             # back up
    python -m store_service.storage.backup --restore faces-backup.sqlite3 data/faces.sqlite3   # restore

A backup reads one snapshot: faces committed after it started are not in it, none is half in it.
A restore needs the store stopped: it takes the store's writer lock and refuses while the store holds it.
"""

import argparse
import sqlite3
import sys

from .db import exclusive_lock


def backup(source: str, target: str) -> None:
    """Copy the database at `source` into `target` in one step, then check the copy."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # pages=-1: the whole database under one read transaction
        check(dst)


def restore(source: str, target: str) -> None:
    """Replace the stopped store's database at `target` with the backup at `source`."""
    lock = exclusive_lock(target + ".lock", timeout=0)
    try:
        backup(source, target)  # through SQLite, so the target's WAL file is dealt with too
    finally:
        lock.close()


def check(db: sqlite3.Connection) -> None:
    result = db.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise RuntimeError(f"integrity check failed: {result}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--restore", action="store_true", help="copy SOURCE (a backup) over TARGET (the store's database)"
    )
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    try:
        (restore if args.restore else backup)(args.source, args.target)
    except (RuntimeError, sqlite3.Error) as e:
        sys.exit(f"facerec backup: {e}")
    print(f"{'restored' if args.restore else 'backed up'} {args.source} → {args.target}")


if __name__ == "__main__":
    main()
