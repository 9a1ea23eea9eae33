"""The store's database: the engine that holds the rows (SQLite, or PostgreSQL when DATABASE_URL names one),
the lock that orders its use in this process, its schema, and the in-memory index that mirrors its faces.

Everything above this module writes one SQL dialect (SQLite's) and does not know which engine runs it;
postgres.py translates for PostgreSQL. With SQLite, one process owns the database and is its only writer
(an exclusive file lock). With PostgreSQL any number of store replicas share it: each write transaction
first brings this replica's index up to date with the others' commits (postgres.py's change log), and
a follower thread does so between writes too. Within a process, one lock orders every read and write,
so the index and the table never disagree. A face enters the index only after its row is committed.
"""

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any

import numpy as np

from .index import DIM, NO_LABEL, Index
from .postgres import PostgreSQL, Rows

NO_PERSON = NO_LABEL  # a face in no person: the label of its row in the index

# Migration N takes a database from schema version N to N + 1; PRAGMA user_version records where a
# database stands, so each runs once. Append, never edit: databases out there hold the older versions.
MIGRATIONS = [
    """
    CREATE TABLE faces (
        id TEXT PRIMARY KEY,              -- SHA-256 hex of the descriptor's canonical bytes
        descriptor BLOB NOT NULL,         -- 128 little-endian float32
        photo_sha256 TEXT NOT NULL,
        box_left INTEGER NOT NULL, box_top INTEGER NOT NULL,
        box_width INTEGER NOT NULL, box_height INTEGER NOT NULL,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # Version 2: find a photo's faces without a full scan.
    "CREATE INDEX faces_by_photo ON faces (photo_sha256)",
    # Versions 3 and 4: a small aligned JPEG of the face, and how good a picture of the face it is
    # (higher is better), so people can be shown without the original photo. NULL for older faces.
    "ALTER TABLE faces ADD COLUMN thumbnail BLOB",
    "ALTER TABLE faces ADD COLUMN quality REAL",
    # Versions 5 to 10: people (people/). A face belongs to at most one person; `pinned` marks a face
    # a user put there, which a re-cluster never moves.
    """
    CREATE TABLE people (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a deleted person's ID is never reused
        name TEXT,
        hidden INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    )
    """,
    "ALTER TABLE faces ADD COLUMN person_id INTEGER REFERENCES people (id)",
    "ALTER TABLE faces ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX faces_by_person ON faces (person_id)",
    # A face a user took out of a person never goes back to it.
    """
    CREATE TABLE cannot_link (
        face_id TEXT NOT NULL,
        person_id INTEGER NOT NULL,
        PRIMARY KEY (face_id, person_id)
    ) WITHOUT ROWID
    """,
    # Every correction: who, what, when, and the rows it changed as they were before (for undo).
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,   -- JSON: the correction's arguments
        before TEXT,            -- JSON: the rows as they were; NULL for what cannot be undone
        undone INTEGER NOT NULL DEFAULT 0
    )
    """,
    # Versions 11 to 16: where each face comes from (facerec ingest), and its landmarks. `source` is the
    # path a client gave; `source_sha256` the file's (a photo's own, or a video's) and `time` the
    # frame's seconds into that video. NULL for older faces (their source_sha256 reads as photo_sha256).
    "ALTER TABLE faces ADD COLUMN source TEXT",
    "ALTER TABLE faces ADD COLUMN source_sha256 TEXT",
    "ALTER TABLE faces ADD COLUMN time REAL",
    "ALTER TABLE faces ADD COLUMN landmarks TEXT",  # JSON [[x, y], ...], upright full-resolution pixels
    # Every photo or frame the detect service stored, faces or none: how ingest knows what it need not
    # send again. A photo is known by its SHA-256, a video frame by the video's and its time.
    """
    CREATE TABLE photos (
        sha256 TEXT NOT NULL,         -- of the picture the detect service decoded (a frame: its JPEG)
        source TEXT,
        source_sha256 TEXT NOT NULL,
        time REAL,                    -- NULL for a photo
        faces INTEGER NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX photos_by_source ON photos (source_sha256, ifnull(time, -1))",
    # Version 17: counts that outlive a restart, such as the faces stored since the last re-cluster
    # began (people/reclustering.py starts one in the background at PEOPLE_RECLUSTER_AFTER).
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    # Version 18: how each face was found, "hog", "cnn" or "manual" (facerec/vision/faces.py FOUND_BY).
    # NULL for older faces: HOG accepted every face stored before, so NULL reads as "hog".
    "ALTER TABLE faces ADD COLUMN detector TEXT",
    # Version 19: two people a user said are not one (POST /people/<id>/not-same, person_a < person_b):
    # no re-cluster puts a face of one with a face of the other, and neither is suggested for the other.
    """
    CREATE TABLE people_apart (
        person_a INTEGER NOT NULL,
        person_b INTEGER NOT NULL,
        PRIMARY KEY (person_a, person_b)
    ) WITHOUT ROWID
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """`lock` orders every use of `execute` and of `index`; `transaction()` writes all or nothing.

    `location`: a SQLite file's path, or a postgresql:// URL."""

    def __init__(self, location: str, lock_timeout: float = 30):
        self.lock = threading.Lock()
        self.location = location
        if location.startswith(("postgresql://", "postgres://")):
            self.engine: PostgreSQL | SQLite = PostgreSQL(location)
        else:
            self.engine = SQLite(location, lock_timeout)
        try:
            self.engine.migrate(MIGRATIONS)
            self.index = self._load_index()
        except BaseException:
            self.engine.close()
            raise
        self.engine.follow(self.catch_up)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows | sqlite3.Cursor:
        """A cursor over the rows, or of the rows changed: fetchone(), fetchall(), iteration."""
        return self.engine.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Rows | sqlite3.Cursor:
        return self.engine.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; the caller holds `lock`. Inside it this replica has seen every write committed
        before (so a face another replica stored is in the index), and no other replica writes."""
        with self.engine.transaction():
            self._apply(self.engine.changes())
            yield

    def run_once(self, name: str, wait: bool = True) -> AbstractContextManager[bool]:
        """with db.run_once("recluster") as mine: `mine` is True in at most one process at a time (of all
        replicas); with wait=False it is False at once when another holds it."""
        return self.engine.run_once(name, wait)

    def catch_up(self) -> None:
        """The index brought up to date with what other replicas committed (none with SQLite)."""
        with self.lock:
            self._apply(self.engine.changes())

    def close(self) -> None:
        self.engine.stop_following()
        with self.lock:
            self.engine.close()

    def _apply(self, changes):
        """Each changed face's row as it now is, into the index: (id, descriptor or None if deleted, person).
        None: this replica missed changes the engine no longer has; it loads every face again."""
        if changes is None:
            self.index = self._load_index()
            return
        index = self.index
        for face, descriptor, person in changes:
            label = NO_PERSON if person is None else person
            if descriptor is None:
                if face in index:
                    index.remove(face)
            elif face in index:
                index.labels[index.rows[face]] = label
            else:
                index.add([face], np.frombuffer(descriptor, "<f4").reshape(1, DIM), label)

    def _load_index(self) -> Index:
        """Every descriptor in an Index, with each face's person as its label (NO_PERSON for none), read
        a chunk of rows at a time: a million rows fetched at once would be ~700 MB of short-lived Python
        objects, and the heap would keep most of it."""
        with self.engine.snapshot() as (count, rows):
            index = Index(capacity=count)
            while chunk := rows.fetchmany(8192):
                ids, blobs, persons = zip(*chunk)
                index.add(
                    list(ids),
                    np.frombuffer(b"".join(blobs), "<f4").reshape(-1, DIM),
                    [NO_PERSON if p is None else p for p in persons],
                )
        index.fit_axes()
        return index


class SQLite:
    """One SQLite file, one connection, one writing process."""

    def __init__(self, path: str, lock_timeout: float):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._writer = exclusive_lock(path + ".lock", lock_timeout)
        # The one connection, used from gunicorn's threads under the Database's lock.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not just a crash

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self._conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT; ROLLBACK on any error, a failed COMMIT included."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def migrate(self, migrations: list[str]) -> None:
        """PRAGMA user_version records how many migrations a database has had."""
        version = self.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise RuntimeError(f"the database has schema version {version}; this facerec knows up to {len(migrations)}")
        for number in range(version, len(migrations)):
            with self.transaction():  # a migration and its version number commit together
                self.execute(migrations[number])
                self.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def snapshot(self) -> Iterator[tuple[int, sqlite3.Cursor]]:
        yield (
            self.execute("SELECT count(*) FROM faces").fetchone()[0],
            self.execute("SELECT id, descriptor, person_id FROM faces"),
        )

    def changes(self) -> Sequence[tuple[Any, ...]]:
        return ()  # the only writer: nobody else changes the file

    def follow(self, catch_up: Callable[[], None]) -> None:
        pass

    def stop_following(self) -> None:
        pass

    @contextmanager
    def run_once(self, name: str, wait: bool = True) -> Iterator[bool]:
        yield True  # the file lock already keeps every other process out

    def close(self) -> None:
        self._conn.close()
        self._writer.close()  # releases the writer's lock


def read_snapshot(location: str, queries: list[str]) -> list[list[tuple]]:
    """Each query's rows, all read in one read-only transaction on a connection of their own (for a
    process other than the store's: recluster.py). `location` as Database's."""
    if location.startswith(("postgresql://", "postgres://")):
        return PostgreSQL.read_snapshot(location, queries)
    db = sqlite3.connect(f"file:{location}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("BEGIN")
        rows = [db.execute(query).fetchall() for query in queries]
        db.execute("COMMIT")
    finally:
        db.close()
    return rows


def exclusive_lock(path: str, timeout: float) -> IO[str]:
    """Hold an exclusive lock on `path` for as long as the returned file stays open.

    The in-memory index mirrors the table only if one process writes it. When a store's arbiter is
    killed, its orphaned worker may serve for a moment longer; its successor waits here until it is gone.
    """
    handle = open(path, "a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise RuntimeError(f"another store process holds {path}") from None
            time.sleep(0.1)
