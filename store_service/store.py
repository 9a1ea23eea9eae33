"""The face store: add, read, search and delete faces; each new face placed in a person (people/placing.py).

Over db.py's Database: descriptors in SQLite, mirrored in its in-memory index for exact vectorised search.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facerec.service.clock import utc_now
from facerec.service.config import SOURCE_MAX, THUMBNAIL_MAX_BYTES, TIME_MAX

from .exceptions import InvalidFace, NoThumbnail, UnknownFace, UnknownPhoto
from .people.corrections import Corrections
from .people.placing import People
from .people.suggestions import Suggestions
from .reposts import stored_twins
from .storage.db import Database
from .storage.index import DIM


def canonical(descriptor: Any) -> np.ndarray:
    """The descriptor as 128 little-endian float32: the one form that is hashed, stored and searched."""
    try:
        vector = np.asarray(descriptor, dtype="<f4")
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        vector = None
    if vector is None or vector.shape != (DIM,) or not np.isfinite(vector).all():
        raise InvalidFace(f"a descriptor is {DIM} finite numbers")
    return vector


def face_id(descriptor: Any) -> str:
    """Storing the same descriptor twice gives the same ID (content-derived, like sqlite-utils' hash_record)."""
    return hashlib.sha256(canonical(descriptor).tobytes()).hexdigest()


class FaceStore:
    """The store's core: `people` places and groups faces, `corrections` is what users change by hand."""

    def __init__(self, location: str, lock_timeout: float = 30, settings: Mapping[str, Any] | None = None):
        """`location`: a SQLite file or a postgresql:// URL (db.py). `settings`: the PEOPLE_* settings
        (facerec/service/config.py), DEFAULTS when None."""
        self.db = Database(location, lock_timeout)
        self.corrections = Corrections(self.db)
        self.people = People(self.db, self.corrections, settings)
        self.suggestions = Suggestions(self.db, self.people)

    def __len__(self) -> int:
        return len(self.db.index)

    def add_faces(
        self, photo_sha256: str, faces: list[dict], max_distance: float, limit: int, origin: dict | None = None
    ) -> list[dict]:
        """Store one photo's faces in one transaction, each placed in a person or left unknown: all or none.

        `faces` is a list of {"descriptor", "box"}, each optionally with "thumbnail" (base64 JPEG),
        "quality" and "landmarks". `origin` holds the photo's "source", "source_sha256" and "time", any
        of them (parse_origin). Returns, per face, {"id", "created", "matches", "person", "person_distance"}:
        the stored faces within `max_distance`, nearest first, and the face's person (None: unknown) with
        its distance to that person's faces (people/placing.py). The photo is noted, faces or none.
        """
        origin = {"source": None, "source_sha256": photo_sha256, "time": None, **(origin or {})}
        where = (origin["source"], origin["source_sha256"], origin["time"])
        parsed = [_parse_face(f) for f in faces]
        vectors = [p[0] for p in parsed]
        ids = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
        now = utc_now()
        with self.db.lock:
            with self.db.transaction():
                # In the transaction: the index then holds every face stored before, by any replica.
                # A face stored for this photo before (found by another detector, say) is answered as stored.
                for i, twin in enumerate(stored_twins(self.db, photo_sha256, [p[1] for p in parsed], vectors)):
                    if twin is not None:
                        ids[i], vectors[i] = twin, self.db.index.vector(twin)
                created = [face not in self.db.index for face in ids]
                new = {face: p for face, p, c in zip(ids, parsed, created) if c}
                self.db.executemany(
                    "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height,"
                    " created_at, thumbnail, quality, landmarks, source, source_sha256, time, detector)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (face, v.tobytes(), photo_sha256, *box, now, jpeg, q, points, *where, detector)
                        for face, (v, box, jpeg, q, points, detector) in new.items()
                    ],
                )
                # A face stored before faces had thumbnails, landmarks or a source gets them when its
                # photo comes again.
                old = [(face, p) for face, p, c in zip(ids, parsed, created) if not c]
                self.db.executemany(
                    "UPDATE faces SET thumbnail = ?, quality = ? WHERE id = ? AND thumbnail IS NULL",
                    [(p[2], p[3], face) for face, p in old if p[2]],
                )
                self.db.executemany(
                    "UPDATE faces SET landmarks = ? WHERE id = ? AND landmarks IS NULL",
                    [(p[4], face) for face, p in old if p[4]],
                )
                if origin["source"] is not None:
                    self.db.executemany(
                        "UPDATE faces SET source = ?, source_sha256 = ?, time = ? WHERE id = ? AND source IS NULL",
                        [(*where, face) for face, _ in old],
                    )
                self.db.execute(
                    "INSERT OR IGNORE INTO photos (sha256, source, source_sha256, time, faces, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (photo_sha256, *where, len(set(ids)), now),
                )
                placed, persons = self.people.place(photo_sha256, ids, vectors, created)
            if new:
                self.db.index.add(list(new), np.array([p[0] for p in new.values()]))
            self.people.commit_places(persons)
            return [
                {"id": face, "created": c, "matches": self._search(v, max_distance, limit, exclude=face), **place}
                for face, v, c, place in zip(ids, vectors, created, placed)
            ]

    def get(self, face: str) -> dict:
        with self.db.lock:
            row = self.db.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        return face_json(row)

    def page(self, after: str, limit: int) -> tuple[list[dict], str | None]:
        """Up to `limit` faces with IDs after `after` ("" for the first page), in ID order, and the ID
        to ask for the next page after (None on the last page)."""
        with self.db.lock:
            rows = self.db.execute(
                f"SELECT {FACE_COLUMNS} FROM faces WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            ).fetchall()
        return [face_json(r) for r in rows], rows[-1][0] if len(rows) == limit else None

    def unknown_page(self, order: str, after: str, limit: int) -> tuple[list[dict], str | None]:
        """Up to `limit` faces in no person, newest first (`order` "newest") or best first ("quality"; a
        face of unknown quality last), after the cursor `after` ("" for the first page), and the cursor
        of the next page (None on the last). A cursor is the last face's key and ID, so a face named
        meanwhile shifts no other face off its page."""
        key = UNKNOWN_ORDERS[order]
        where, args = "person_id IS NULL", []
        if after:
            where += f" AND ({key}, id) < (?, ?)"
            args = list(parse_cursor(after, order))
        with self.db.lock:
            rows = self.db.execute(
                f"SELECT {FACE_COLUMNS}, {key} FROM faces WHERE {where} ORDER BY {key} DESC, id DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        cursor = f"{rows[-1][-1]}~{rows[-1][0]}" if len(rows) == limit else None
        return [face_json(r[:-1]) for r in rows], cursor

    def photo_faces(self, sha256: str) -> list[dict]:
        """Every face stored for the photo (or frame) with this SHA-256: {"id", "box", "person", "name"},
        left to right; UnknownPhoto when the store was never sent it."""
        with self.db.lock:
            rows = self.db.execute(
                "SELECT f.id, f.box_left, f.box_top, f.box_width, f.box_height, f.person_id, p.name FROM faces f"
                " LEFT JOIN people p ON p.id = f.person_id WHERE f.photo_sha256 = ? ORDER BY f.box_left, f.id",
                (sha256,),
            ).fetchall()
            if (
                not rows
                and not self.db.execute(
                    "SELECT 1 FROM photos WHERE source_sha256 = ? OR sha256 = ?", (sha256, sha256)
                ).fetchone()
            ):
                raise UnknownPhoto(sha256)
        return [
            {"id": f, "box": {"left": x, "top": y, "width": w, "height": h}, "person": person, "name": name}
            for f, x, y, w, h, person, name in rows
        ]

    def photos(self, source_sha256: str) -> list[dict]:
        """The photos or frames stored from the file with this SHA-256 (a photo, or a video): each
        {"sha256", "source", "time", "faces", "created_at"}, in time order."""
        with self.db.lock:
            rows = self.db.execute(
                "SELECT sha256, source, time, faces, created_at FROM photos WHERE source_sha256 = ? ORDER BY time",
                (source_sha256,),
            ).fetchall()
        return [dict(zip(("sha256", "source", "time", "faces", "created_at"), r)) for r in rows]

    def thumbnail(self, face: str) -> bytes:
        """The face's thumbnail, JPEG bytes."""
        with self.db.lock:
            row = self.db.execute("SELECT thumbnail FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        if row[0] is None:
            raise NoThumbnail(face)
        return row[0]

    def similar(self, face: str, max_distance: float, limit: int) -> list[dict]:
        """Stored faces within `max_distance` of `face`, nearest first, without `face` itself."""
        with self.db.lock:
            if face not in self.db.index:
                raise UnknownFace(face)
            vector = self.db.index.vector(face)
            return self._search(vector, max_distance, limit, exclude=face)

    def delete(self, face: str) -> None:
        with self.db.lock:
            with self.db.transaction():  # inside it: a face another replica deleted is gone from the index
                if face not in self.db.index:
                    raise UnknownFace(face)
                self.db.execute("DELETE FROM faces WHERE id = ?", (face,))
                self.people.forget_face(face)
            self.db.index.remove(face)

    def close(self) -> None:
        self.people.stop()  # first: a background re-cluster needs the lock to finish
        self.db.close()

    def _search(self, vector, max_distance, limit, exclude):
        return [{"id": face, "distance": d} for face, d in self.db.index.search(vector, max_distance, limit, exclude)]


FACE_COLUMNS = (
    "id, photo_sha256, box_left, box_top, box_width, box_height, created_at, quality, landmarks,"
    " person_id, source, coalesce(source_sha256, photo_sha256), time, coalesce(detector, 'hog')"
)


# GET /faces?person=none's orders: the column a page is sorted on, descending (unknown quality last).
UNKNOWN_ORDERS = {"newest": "created_at", "quality": "coalesce(quality, -1)"}


def parse_cursor(cursor: str, order: str) -> tuple:
    """(key, face ID) from a cursor of unknown_page; InvalidFace when it is not one."""
    key, _, face = cursor.rpartition("~")
    try:
        return (float(key) if order == "quality" else key), face
    except ValueError:
        raise InvalidFace(f"after is the next value of the page before, not {cursor!r}") from None


def face_json(row: Sequence[Any]) -> dict:
    """A face as the API answers it, from a row of FACE_COLUMNS."""
    face, photo, left, top, width, height, created_at, quality, landmarks, person, source, source_sha256, t, found = row
    return {
        "id": face,
        "photo_sha256": photo,
        "box": {"left": left, "top": top, "width": width, "height": height},
        "created_at": created_at,
        "quality": quality,
        "landmarks": landmarks and json.loads(landmarks),
        "person": person,
        "source": source,
        "source_sha256": source_sha256,
        "time": t,
        "detector": found,
    }


# How a face was found (the detect service's facerec/vision/faces.py FOUND_BY; the store does not load
# the vision library): dlib's HOG detector, YuNet alone, or a box drawn by hand.
FOUND_BY = ("hog", "cnn", "manual")

# A box's numbers are pixels of a photo of at most MAX_IMAGE_PIXELS; the bound keeps any that is not
# one (SQLite stores at most 64-bit integers) from reaching the database.
BOX_MAX = 2**31 - 1


def _parse_face(face):
    """(canonical descriptor, (left, top, width, height), thumbnail JPEG or None, quality or None,
    landmarks JSON or None, detector) of one {"descriptor", "box", "thumbnail", "quality", "landmarks",
    "detector"}; the last four are optional ("detector" reads "hog" when absent)."""
    try:
        box = tuple(int(face["box"][k]) for k in ("left", "top", "width", "height"))
        descriptor = face["descriptor"]
    except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(Infinity)
        box = None
    if box is None or not all(0 <= n <= BOX_MAX for n in box):
        raise InvalidFace(
            f'a face is {{"descriptor": [128 numbers], "box": {{left, top, width, height}}}}, whole numbers 0..{BOX_MAX}'
        )
    return (
        canonical(descriptor),
        box,
        _parse_thumbnail(face.get("thumbnail")),
        _parse_quality(face.get("quality")),
        _parse_landmarks(face.get("landmarks")),
        _parse_detector(face.get("detector", "hog")),
    )


def _parse_detector(value):
    """How a face was found: one of FOUND_BY."""
    if value not in FOUND_BY:
        raise InvalidFace(f"a face's detector is one of {', '.join(FOUND_BY)}")
    return value


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


def _parse_landmarks(value):
    """A face's landmarks, 5 or 68 points [x, y] of whole numbers 0..BOX_MAX, as JSON; or None."""
    if value is None:
        return None
    if not (
        isinstance(value, list)
        and len(value) in (5, 68)
        and all(
            isinstance(p, list) and len(p) == 2 and all(type(n) is int and 0 <= n <= BOX_MAX for n in p) for p in value
        )
    ):
        raise InvalidFace(f"a face's landmarks are 5 or 68 points [x, y], whole numbers 0..{BOX_MAX}")
    return json.dumps(value, separators=(",", ":"))


def parse_origin(body: dict) -> dict:
    """The photo's "source" (a path, at most SOURCE_MAX characters), "source_sha256" (hex) and "time"
    (seconds, 0..TIME_MAX) in a POST /faces body, those present."""
    origin = {k: body[k] for k in ("source", "source_sha256", "time") if body.get(k) is not None}
    source, sha, t = origin.get("source", ""), origin.get("source_sha256", "0" * 64), origin.get("time", 0)
    # JSON may carry lone surrogates ("\ud800"), which SQLite cannot store: encoding replaces them.
    if not (
        isinstance(source, str) and len(source) <= SOURCE_MAX and source.encode("utf-8", "replace").decode() == source
    ):
        raise InvalidFace(f"source is a string of at most {SOURCE_MAX} characters")
    if not (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha)):
        raise InvalidFace("source_sha256 is a SHA-256 in lowercase hex")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= TIME_MAX:
        raise InvalidFace(f"time is a number of seconds from 0 to {TIME_MAX}")
    return origin
