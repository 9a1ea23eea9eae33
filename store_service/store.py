"""The face store: descriptors in SQLite, mirrored in a float32 matrix for exact vectorised search.

One process owns the database and is its only writer; one lock orders every read and write, so the
matrix and the table never disagree. A face is in the matrix only after its row is committed.
"""
import base64
import binascii
import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import numpy as np

from facerec.config import THUMBNAIL_MAX_BYTES

from .index import DIM, Index
from .people import NO_PERSON, People

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
    # Versions 5 to 10: people (store_service/people.py). A face belongs to at most one person; `pinned`
    # marks a face a user put there, which a re-cluster never moves.
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
]
SCHEMA_VERSION = len(MIGRATIONS)


class UnknownFace(KeyError):
    def __str__(self):
        return f"no face with id {self.args[0]!r}"


class InvalidFace(ValueError):
    """A descriptor, box, thumbnail or quality that cannot be stored."""


class NoThumbnail(KeyError):
    def __str__(self):
        return f"the face {self.args[0]!r} has no thumbnail (it was stored before faces had them)"


def canonical(descriptor):
    """The descriptor as 128 little-endian float32: the one form that is hashed, stored and searched."""
    try:
        vector = np.asarray(descriptor, dtype="<f4")
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        vector = None
    if vector is None or vector.shape != (DIM,) or not np.isfinite(vector).all():
        raise InvalidFace(f"a descriptor is {DIM} finite numbers")
    return vector


def face_id(descriptor):
    """Storing the same descriptor twice gives the same ID (content-derived, like sqlite-utils' hash_record)."""
    return hashlib.sha256(canonical(descriptor).tobytes()).hexdigest()


class FaceStore:
    def __init__(self, path, lock_timeout=30, settings=None):
        """`settings`: the PEOPLE_* settings (facerec/config.py), DEFAULTS when None."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._writer = exclusive_lock(path + ".lock", lock_timeout)
        self._lock = threading.Lock()
        # The one connection, used from gunicorn's threads under self._lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not just a crash
        self._migrate()
        self._load()
        self.people = People(self, settings)

    def _migrate(self):
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"the database has schema version {version}; this facerec knows up to {SCHEMA_VERSION}")
        for number in range(version, SCHEMA_VERSION):
            with self._transaction():  # a migration and its version number commit together
                self._db.execute(MIGRATIONS[number])
                self._db.execute(f"PRAGMA user_version={number + 1}")

    def _load(self):
        """Read every descriptor into the index, a chunk of rows at a time: a million rows fetched at
        once would be ~700 MB of short-lived Python objects, and the heap would keep most of it."""
        self._index = Index(capacity=self._db.execute("SELECT count(*) FROM faces").fetchone()[0])
        # Each face's person is kept beside its descriptor (NO_PERSON for none), so people.py finds
        # people with the same vectorised search.
        rows = self._db.execute("SELECT id, descriptor, person_id FROM faces")
        while chunk := rows.fetchmany(8192):
            ids, blobs, persons = zip(*chunk)
            self._index.add(list(ids), np.frombuffer(b"".join(blobs), "<f4").reshape(-1, DIM),
                            [NO_PERSON if p is None else p for p in persons])
        self._index.fit_axes()

    def __len__(self):
        return len(self._index)

    def add_faces(self, photo_sha256, faces, max_distance, limit):
        """Store one photo's faces in one transaction, each placed in a person or left unknown: all or none.

        `faces` is a list of {"descriptor", "box"}, each optionally with "thumbnail" (base64 JPEG) and
        "quality". Returns, per face, {"id", "created", "matches", "person", "person_distance"}: the
        stored faces within `max_distance`, nearest first, and the face's person (None: unknown) with
        its distance to that person's faces (people.py).
        """
        parsed = [_parse_face(f) for f in faces]
        vectors = [p[0] for p in parsed]
        ids = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            created = [face not in self._index for face in ids]
            new = {face: p for face, p, c in zip(ids, parsed, created) if c}
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height,"
                    " created_at, thumbnail, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(face, v.tobytes(), photo_sha256, *box, now, jpeg, q) for face, (v, box, jpeg, q) in new.items()],
                )
                # A face stored before faces had thumbnails gets one when its photo comes again.
                self._db.executemany(
                    "UPDATE faces SET thumbnail = ?, quality = ? WHERE id = ? AND thumbnail IS NULL",
                    [(jpeg, q, face) for face, (_, _, jpeg, q), c in zip(ids, parsed, created) if not c and jpeg],
                )
                placed, persons = self.people.place(photo_sha256, ids, vectors, created)
            if new:
                self._index.add(list(new), np.array([v for v, *_ in new.values()]))
            self.people.commit_places(persons)
            return [
                {"id": face, "created": c, "matches": self._search(v, max_distance, limit, exclude=face), **place}
                for face, v, c, place in zip(ids, vectors, created, placed)
            ]

    def get(self, face):
        with self._lock:
            row = self._db.execute(
                "SELECT id, photo_sha256, box_left, box_top, box_width, box_height, created_at"
                " FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        face, photo, left, top, width, height, created_at = row
        box = {"left": left, "top": top, "width": width, "height": height}
        return {"id": face, "photo_sha256": photo, "box": box, "created_at": created_at}

    def thumbnail(self, face):
        """The face's thumbnail, JPEG bytes."""
        with self._lock:
            row = self._db.execute("SELECT thumbnail FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        if row[0] is None:
            raise NoThumbnail(face)
        return row[0]

    def similar(self, face, max_distance, limit):
        """Stored faces within `max_distance` of `face`, nearest first, without `face` itself."""
        with self._lock:
            if face not in self._index:
                raise UnknownFace(face)
            vector = self._index.vector(face)
            return self._search(vector, max_distance, limit, exclude=face)

    def delete(self, face):
        with self._lock:
            if face not in self._index:
                raise UnknownFace(face)
            with self._transaction():
                self._db.execute("DELETE FROM faces WHERE id = ?", (face,))
                self.people.forget_face(face)
            self._index.remove(face)

    def close(self):
        self.people.stop()  # first, outside the lock: a background re-cluster needs it to finish
        with self._lock:
            self._db.close()
            self._writer.close()  # releases the writer's lock

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE … COMMIT; ROLLBACK on any error, a failed COMMIT included."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _search(self, vector, max_distance, limit, exclude):
        return [{"id": face, "distance": d} for face, d in self._index.search(vector, max_distance, limit, exclude)]


def exclusive_lock(path, timeout):
    """Hold an exclusive lock on `path` for as long as the returned file stays open.

    The in-memory matrix mirrors the table only if one process writes it. When a store's arbiter is
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


# A box's numbers are pixels of a photo of at most MAX_IMAGE_PIXELS; the bound keeps any that is not
# one (SQLite stores at most 64-bit integers) from reaching the database.
BOX_MAX = 2**31 - 1


def _parse_face(face):
    """(canonical descriptor, (left, top, width, height), thumbnail JPEG or None, quality or None) of
    one {"descriptor", "box", "thumbnail", "quality"}; the last two are optional."""
    try:
        box = tuple(int(face["box"][k]) for k in ("left", "top", "width", "height"))
        descriptor = face["descriptor"]
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(Infinity)
        box = None
    if box is None or not all(0 <= n <= BOX_MAX for n in box):
        raise InvalidFace(
            f'a face is {{"descriptor": [128 numbers], "box": {{left, top, width, height}}}}, whole numbers 0..{BOX_MAX}'
        )
    return canonical(descriptor), box, _parse_thumbnail(face.get("thumbnail")), _parse_quality(face.get("quality"))


# Every JPEG starts with the SOI marker and its first segment's marker, and ends with EOI.
JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


def _parse_thumbnail(value):
    """A face's thumbnail: base64 of a JPEG of at most THUMBNAIL_MAX_BYTES, or None."""
    if value is None:
        return None
    try:
        jpeg = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):  # ValueError: characters beyond ASCII
        jpeg = b""
    if not (jpeg.startswith(JPEG_START) and jpeg.endswith(JPEG_END) and len(jpeg) <= THUMBNAIL_MAX_BYTES):
        raise InvalidFace(f"a face's thumbnail is a JPEG of at most {THUMBNAIL_MAX_BYTES} bytes, in base64")
    return jpeg


def _parse_quality(value):
    """A face's quality: a number from 0 to 1, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidFace("a face's quality is a number from 0 to 1")
    return float(value)
