"""Reading people: a page of them (largest first, by name), one with its faces, its cover face."""

import re

from ..exceptions import UnknownPerson
from ..storage.db import Database
from .corrections import person_row


class Reading:
    """What People answers about people, read under the database's lock (a mixin of People)."""

    db: Database

    def list_people(
        self, page: int, limit: int, include_hidden: bool = False, search: str = ""
    ) -> tuple[list[dict], int]:
        """({"id", "name", "hidden", "count", "cover_face_id"} of one page, largest first; total); with
        `search`, only the people whose name holds it (any case)."""
        where = "(? = 1 OR p.hidden = 0) AND (? = '' OR lower(p.name) LIKE ? ESCAPE '!')"
        args = (include_hidden, search, "%" + re.sub(r"([!%_])", r"!\1", search.lower()) + "%")
        with self.db.lock:
            total = self.db.execute(f"SELECT COUNT(*) FROM people p WHERE {where}", args).fetchone()[0]
            rows = self.db.execute(
                "SELECT p.id, p.name, p.hidden, COUNT(f.id) AS count FROM people p LEFT JOIN faces f ON f.person_id = p.id"
                f" WHERE {where} GROUP BY p.id ORDER BY count DESC, p.id LIMIT ? OFFSET ?",
                (*args, limit, (page - 1) * limit),
            ).fetchall()
            return [_summary(row, self.cover(row[0])) for row in rows], total

    def cover(self, person: int) -> str | None:
        """The face that best shows a person: the highest quality, else (quality unknown) the largest box.
        The caller holds the lock."""
        row = self.db.execute(
            "SELECT id FROM faces WHERE person_id = ?"
            " ORDER BY quality IS NULL, quality DESC, box_width * box_height DESC, id LIMIT 1",
            (person,),
        ).fetchone()
        return row and row[0]

    def get_person(self, person: int) -> dict:
        with self.db.lock:
            name, hidden = person_row(self.db, person)
            faces = self.db.execute(
                "SELECT id, photo_sha256, box_left, box_top, box_width, box_height, source,"
                " coalesce(source_sha256, photo_sha256), time FROM faces WHERE person_id = ? ORDER BY created_at, id",
                (person,),
            ).fetchall()
        return {
            "id": person,
            "name": name,
            "hidden": bool(hidden),
            "faces": [
                {
                    "id": f,
                    "photo_sha256": p,
                    "box": {"left": x, "top": y, "width": w, "height": h},
                    "source": source,
                    "source_sha256": sha,
                    "time": at,
                }
                for f, p, x, y, w, h, source, sha, at in faces
            ],
        }

    def summary(self, person: int) -> dict:
        with self.db.lock:
            row = self.db.execute(
                "SELECT p.id, p.name, p.hidden, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id"
                " WHERE p.id = ? GROUP BY p.id",
                (person,),
            ).fetchone()
            if row is None:
                raise UnknownPerson(person)
            return _summary(row, self.cover(person))


def _summary(row, cover):
    person, name, hidden, count = row
    return {"id": person, "name": name, "hidden": bool(hidden), "count": count, "cover_face_id": cover}
