"""The face store: add, read, search and delete faces; each new face placed in a person (people.py).

Over db.py's Database: descriptors in SQLite, mirrored in its in-memory index for exact vectorised search.
"""
import base64
import binascii
import hashlib

import numpy as np

from facerec.config import THUMBNAIL_MAX_BYTES

from .corrections import Corrections
from .db import Database, utc_now
from .exceptions import InvalidFace, NoThumbnail, UnknownFace
from .index import DIM
from .people import People


def canonical(descriptor) -> np.ndarray:
    """The descriptor as 128 little-endian float32: the one form that is hashed, stored and searched."""
    try:
        vector = np.asarray(descriptor, dtype="<f4")
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        vector = None
    if vector is None or vector.shape != (DIM,) or not np.isfinite(vector).all():
        raise InvalidFace(f"a descriptor is {DIM} finite numbers")
    return vector


def face_id(descriptor) -> str:
    """Storing the same descriptor twice gives the same ID (content-derived, like sqlite-utils' hash_record)."""
    return hashlib.sha256(canonical(descriptor).tobytes()).hexdigest()


class FaceStore:
    """The store's core: `people` places and groups faces, `corrections` is what users change by hand."""

    def __init__(self, path: str, lock_timeout: float = 30, settings=None):
        """`settings`: the PEOPLE_* settings (facerec/config.py), DEFAULTS when None."""
        self.db = Database(path, lock_timeout)
        self.corrections = Corrections(self.db)
        self.people = People(self.db, self.corrections, settings)

    def __len__(self):
        return len(self.db.index)

    def add_faces(self, photo_sha256: str, faces: list[dict], max_distance: float, limit: int) -> list[dict]:
        """Store one photo's faces in one transaction, each placed in a person or left unknown: all or none.

        `faces` is a list of {"descriptor", "box"}, each optionally with "thumbnail" (base64 JPEG) and
        "quality". Returns, per face, {"id", "created", "matches", "person", "person_distance"}: the
        stored faces within `max_distance`, nearest first, and the face's person (None: unknown) with
        its distance to that person's faces (people.py).
        """
        parsed = [_parse_face(f) for f in faces]
        vectors = [p[0] for p in parsed]
        ids = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
        now = utc_now()
        with self.db.lock:
            created = [face not in self.db.index for face in ids]
            new = {face: p for face, p, c in zip(ids, parsed, created) if c}
            with self.db.transaction():
                self.db.executemany(
                    "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height,"
                    " created_at, thumbnail, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(face, v.tobytes(), photo_sha256, *box, now, jpeg, q) for face, (v, box, jpeg, q) in new.items()],
                )
                # A face stored before faces had thumbnails gets one when its photo comes again.
                self.db.executemany(
                    "UPDATE faces SET thumbnail = ?, quality = ? WHERE id = ? AND thumbnail IS NULL",
                    [(jpeg, q, face) for face, (_, _, jpeg, q), c in zip(ids, parsed, created) if not c and jpeg],
                )
                placed, persons = self.people.place(photo_sha256, ids, vectors, created)
            if new:
                self.db.index.add(list(new), np.array([v for v, *_ in new.values()]))
            self.people.commit_places(persons)
            return [
                {"id": face, "created": c, "matches": self._search(v, max_distance, limit, exclude=face), **place}
                for face, v, c, place in zip(ids, vectors, created, placed)
            ]

    def get(self, face: str) -> dict:
        with self.db.lock:
            row = self.db.execute(
                "SELECT id, photo_sha256, box_left, box_top, box_width, box_height, created_at"
                " FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        face, photo, left, top, width, height, created_at = row
        box = {"left": left, "top": top, "width": width, "height": height}
        return {"id": face, "photo_sha256": photo, "box": box, "created_at": created_at}

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
            if face not in self.db.index:
                raise UnknownFace(face)
            with self.db.transaction():
                self.db.execute("DELETE FROM faces WHERE id = ?", (face,))
                self.people.forget_face(face)
            self.db.index.remove(face)

    def close(self) -> None:
        self.people.stop()  # first: a background re-cluster needs the lock to finish
        self.db.close()

    def _search(self, vector, max_distance, limit, exclude):
        return [{"id": face, "distance": d} for face, d in self.db.index.search(vector, max_distance, limit, exclude)]


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
