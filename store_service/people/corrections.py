"""Users' corrections to people, each audited with the rows it changed as they were, and undo.

Every correction runs under the database's lock in one transaction with its audit row; undo writes the
before-image back. `generation` is the newest audit entry, so a re-cluster computed before a correction
(on any replica) knows it is stale.
"""

import json
from contextlib import contextmanager

from facerec.service.clock import utc_now

from ..exceptions import Conflict, InvalidCorrection, NotInPerson, UnknownFace, UnknownPerson
from ..storage.db import NO_PERSON, Database


def person_row(db: Database, person: int) -> tuple:
    """(name, hidden) of a person; the caller holds the lock."""
    row = db.execute("SELECT name, hidden FROM people WHERE id = ?", (person,)).fetchone()
    if row is None:
        raise UnknownPerson(person)
    return row


class Corrections:
    """Create, rename, hide, merge, remove, reject a person or a merge, assign, delete, register; the
    audit log; undo."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def generation(self) -> int:
        """The newest audit entry's ID: it grows with every correction, undo and re-cluster."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]

    def _person_row(self, person):
        return person_row(self.db, person)

    def update_person(self, who: str, person: int, changes: dict) -> None:
        """Rename and/or hide: `changes` holds "name" (a string or None) and/or "hidden" (a bool)."""
        with self._correction(who, "update", {"person": person, **changes}) as before:
            self._person_row(person)
            before.people(person)
            for column in ("name", "hidden"):
                if column in changes:
                    self.db.execute(f"UPDATE people SET {column} = ? WHERE id = ?", (changes[column], person))

    def merge(self, who: str, person: int, others: list[int]) -> None:
        """The faces of `others` join `person` (all pinned, so the merge survives a re-cluster); they go."""
        if not others or person in others or len(set(others)) != len(others):
            raise InvalidCorrection("merge at least one other person, each once, not the person itself")
        with self._correction(who, "merge", {"person": person, "people": others}) as before:
            for p in [person, *others]:
                self._person_row(p)
            self._check_photos_apart([person, *others])
            before.people(person, *others)
            before.faces("person_id IN (%s)" % ",".join("?" * (len(others) + 1)), [person, *others])
            before.links_added(
                self.db.execute(
                    "SELECT DISTINCT face_id, ? FROM cannot_link WHERE person_id IN (%s)" % ",".join("?" * len(others))
                    + " AND face_id NOT IN (SELECT face_id FROM cannot_link WHERE person_id = ?)",
                    [person, *others, person],
                ).fetchall()
            )
            self.db.executemany("INSERT OR IGNORE INTO cannot_link VALUES (?, ?)", before.added)
            name = self.db.execute(
                "SELECT name FROM people WHERE id IN (%s) AND name IS NOT NULL ORDER BY id = ? DESC"
                % ",".join("?" * (len(others) + 1)),
                [person, *others, person],
            ).fetchone()
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", (name and name[0], person))
            self._move_faces(before, person, pinned=True)
            self._carry_apart(before, person, others)
            self.db.executemany("DELETE FROM people WHERE id = ?", [(p,) for p in others])

    def remove_face(self, who: str, person: int, face: str) -> None:
        """The face leaves the person for good (a cannot-link) and becomes unknown."""
        with self._correction(who, "remove", {"person": person, "face": face}) as before:
            self._person_row(person)
            if self._face_person(face) != person:
                raise NotInPerson(face, person)
            before.faces("id = ?", [face])
            before.links_added([(face, person)])
            self.db.execute("INSERT OR IGNORE INTO cannot_link VALUES (?, ?)", (face, person))
            self._move_faces(before, None, pinned=False)

    def create_person(self, who: str, name: str | None, faces: list[str]) -> int:
        """A new person of these faces (pinned there), named: how a face no one is suggested for gets a
        name. Undo takes the faces back to where they were and deletes the person."""
        if not faces or len(set(faces)) != len(faces):
            raise InvalidCorrection("a new person needs at least one face, each once")
        with self._correction(who, "create", {"name": name, "faces": faces}) as before:
            for face in faces:
                self._face_person(face)
            person = self._created_person(before, name)
            self._check_photos_apart_faces(faces)
            before.faces("id IN (%s)" % ",".join("?" * len(faces)), faces)
            self._move_faces(before, person, pinned=True)
        return person

    def not_person(self, who: str, face: str, person: int) -> None:
        """The face is not `person` (a rejected suggestion): it never joins that person (a cannot-link).
        Conflict when it is that person now: that is removing it (remove_face)."""
        with self._correction(who, "not-person", {"face": face, "person": person}) as before:
            self._person_row(person)
            if self._face_person(face) == person:
                raise Conflict(f"face {face} is in person {person}: remove it from that person instead")
            before.links_added([(face, person)] if not self._linked(face, person) else [])
            self.db.execute("INSERT OR IGNORE INTO cannot_link VALUES (?, ?)", (face, person))

    def not_same(self, who: str, person: int, other: int) -> None:
        """The two people are not one (a rejected merge suggestion): no re-cluster joins their faces."""
        if person == other:
            raise InvalidCorrection("a person is the same as itself: name another person")
        with self._correction(who, "not-same", {"person": person, "other": other}) as before:
            self._person_row(person)
            self._person_row(other)
            pair = (min(person, other), max(person, other))
            before.apart_added += [list(pair)] if not self._apart(*pair) else []
            self.db.execute("INSERT OR IGNORE INTO people_apart VALUES (?, ?)", pair)

    def assign_face(self, who: str, face: str, person: int | None) -> None:
        """The face joins `person` and is pinned there; None: it leaves its person for good."""
        with self.db.lock:
            current = self._face_person(face)
        if person is None:
            if current is None:
                return
            return self.remove_face(who, current, face)
        with self._correction(who, "assign", {"face": face, "person": person}) as before:
            self._person_row(person)
            self._face_person(face)
            self._check_face_fits(face, person)
            before.faces("id = ?", [face])
            before.links_removed([(face, person)])
            self.db.execute("DELETE FROM cannot_link WHERE face_id = ? AND person_id = ?", (face, person))
            self._move_faces(before, person, pinned=True)

    def delete_person(self, who: str, person: int) -> None:
        """The person goes; its faces become unknown (and free to form a person again)."""
        with self._correction(who, "delete", {"person": person}) as before:
            self._person_row(person)
            before.people(person)
            before.faces("person_id = ?", [person])
            self._move_faces(before, None, pinned=False)
            self.db.execute("DELETE FROM people WHERE id = ?", (person,))

    def register(self, who: str, name: str, faces: list[str]) -> int:
        """The faces join the person named `name` (the oldest of that name, else a new one), pinned
        there like assigned faces: the DeepStack API's register (detect_service/deepstack.py)."""
        with self._correction(who, "register", {"name": name, "faces": faces}) as before:
            row = self.db.execute("SELECT id FROM people WHERE name = ? ORDER BY id LIMIT 1", (name,)).fetchone()
            if row:
                person = row[0]
                before.people(person)
            else:
                person = self._created_person(before, name)
            for face in faces:
                self._face_person(face)
                self._check_face_fits(face, person)
            before.faces("id IN (%s)" % ",".join("?" * len(faces)), faces)
            before.links_removed([(face, person) for face in faces])
            self.db.executemany("DELETE FROM cannot_link WHERE face_id = ? AND person_id = ?", before.removed)
            self._move_faces(before, person, pinned=True)
        return person

    def _created_person(self, before, name):
        """A new person of this name (None: unnamed), which undoing `before`'s correction deletes."""
        person = self.db.execute(
            "INSERT INTO people (name, created_at) VALUES (?, ?) RETURNING id", (name, utc_now())
        ).fetchone()[0]
        before.created.append(person)
        return person

    def undo(self, who: str) -> dict:
        """Put back the rows the last correction not yet undone changed; Conflict when there is none."""
        with self.db.lock:
            with self.db.transaction():  # read inside it: the last correction of any replica
                row = self.db.execute(
                    "SELECT id, action, before FROM audit WHERE before IS NOT NULL AND undone = 0"
                    " ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if row is None:
                    raise Conflict("there is no correction to undo")
                entry, action, before = row[0], row[1], json.loads(row[2])
                moved = _Before.restore(self.db, before)
                self.db.execute("UPDATE audit SET undone = 1 WHERE id = ?", (entry,))
                self.log(who, "undo", {"audit_id": entry, "action": action}, None)
            self._remember(moved)
            return {"audit_id": entry, "action": action}

    def audit(self, page: int, limit: int) -> tuple[list[dict], int]:
        with self.db.lock:
            total = self.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
            rows = self.db.execute(
                "SELECT id, at, who, action, detail, undone FROM audit ORDER BY id DESC LIMIT ? OFFSET ?",
                (limit, (page - 1) * limit),
            ).fetchall()
        return [
            {"id": i, "at": at, "who": who, "action": a, "detail": json.loads(d), "undone": bool(u)}
            for i, at, who, a, d, u in rows
        ], total

    @contextmanager
    def _correction(self, who, action, detail):
        """with self._correction(...) as before: the lock, one transaction, the audit row with the
        before-image, then the in-memory persons."""
        with self.db.lock:
            before = _Before(self.db)
            with self.db.transaction():
                yield before
                self.log(who, action, detail, before.to_json())
            self._remember(before.moved)

    def log(self, who: str, action: str, detail: dict, before: str | None) -> None:
        self.db.execute(
            "INSERT INTO audit (at, who, action, detail, before) VALUES (?, ?, ?, ?, ?)",
            (utc_now(), who, action, json.dumps(detail), before),
        )

    def _move_faces(self, before, person, pinned):
        """Every face in the before-image goes to `person` (None: unknown), pinned or not."""
        faces = [face for face, _, _ in before.face_rows]
        self.db.executemany(
            "UPDATE faces SET person_id = ?, pinned = ? WHERE id = ?", [(person, int(pinned), f) for f in faces]
        )
        before.moved = {face: person for face in faces}

    def _remember(self, moved):
        """The store's in-memory person of each moved face (faces deleted meanwhile are skipped)."""
        index = self.db.index
        for face, person in moved.items():
            if face in index.rows:
                index.labels[index.rows[face]] = NO_PERSON if person is None else person

    def _linked(self, face, person):
        return self.db.execute(
            "SELECT 1 FROM cannot_link WHERE face_id = ? AND person_id = ?", (face, person)
        ).fetchone()

    def _apart(self, a, b):
        return self.db.execute("SELECT 1 FROM people_apart WHERE person_a = ? AND person_b = ?", (a, b)).fetchone()

    def _carry_apart(self, before, person, others):
        """A merge: the people kept apart from those merged in are kept apart from `person`; a pair
        among the merged (the user merged them after all) goes."""
        merged = [person, *others]
        marks = ",".join("?" * len(merged))
        rows = self.db.execute(
            f"SELECT person_a, person_b FROM people_apart WHERE person_a IN ({marks}) OR person_b IN ({marks})",
            merged * 2,
        ).fetchall()
        gone = [list(r) for r in rows if r[0] in others or r[1] in others]
        kept = {tuple(r) for r in rows} - {tuple(r) for r in gone}
        carried = {(min(person, b), max(person, b)) for pair in gone for b in pair if b not in merged} - kept
        before.apart_removed += gone
        before.apart_added += [list(pair) for pair in sorted(carried)]
        self.db.executemany("DELETE FROM people_apart WHERE person_a = ? AND person_b = ?", gone)
        self.db.executemany("INSERT INTO people_apart VALUES (?, ?)", sorted(carried))

    def _face_person(self, face):
        row = self.db.execute("SELECT person_id FROM faces WHERE id = ?", (face,)).fetchone()
        if row is None:
            raise UnknownFace(face)
        return row[0]

    def _check_face_fits(self, face, person):
        clash = self.db.execute(
            "SELECT o.id FROM faces f JOIN faces o ON o.photo_sha256 = f.photo_sha256 AND o.id != f.id"
            " WHERE f.id = ? AND o.person_id = ?",
            (face, person),
        ).fetchone()
        if clash:
            raise Conflict(
                f"face {clash[0]} of the same photo is already person {person}; one photo shows a person once"
            )

    def _check_photos_apart_faces(self, faces):
        clash = self.db.execute(
            "SELECT photo_sha256 FROM faces WHERE id IN (%s) GROUP BY photo_sha256 HAVING COUNT(*) > 1"
            % ",".join("?" * len(faces)),
            faces,
        ).fetchone()
        if clash:
            raise Conflict(f"photo {clash[0]} shows more than one of these faces; one photo shows a person once")

    def _check_photos_apart(self, people):
        marks = ",".join("?" * len(people))
        clash = self.db.execute(
            f"SELECT photo_sha256 FROM faces WHERE person_id IN ({marks}) GROUP BY photo_sha256 HAVING COUNT(*) > 1",
            people,
        ).fetchone()
        if clash:
            faces = self.db.execute(
                f"SELECT id, person_id FROM faces WHERE photo_sha256 = ? AND person_id IN ({marks}) ORDER BY id",
                (clash[0], *people),
            ).fetchall()
            which = ", ".join(f"face {face} of person {person}" for face, person in faces)
            raise Conflict(
                f"photo {clash[0]} shows more than one of these people ({which}); one photo shows a person once:"
                " remove one of those faces from its person first"
            )


class _Before:
    """The rows a correction changes, as they were: what undo writes back."""

    def __init__(self, db):
        self.db, self.people_rows, self.face_rows, self.added, self.removed = db, [], [], [], []
        self.apart_added, self.apart_removed = [], []  # people_apart pairs
        self.created = []  # people the correction created: undo deletes them
        self.moved = {}  # {face: person} for the store's matrix, once committed

    def people(self, *people):
        self.people_rows += [
            list(r)
            for r in self.db.execute(
                "SELECT id, name, hidden, created_at FROM people WHERE id IN (%s)" % ",".join("?" * len(people)), people
            )
        ]

    def faces(self, where, args):
        self.face_rows += [
            list(r) for r in self.db.execute(f"SELECT id, person_id, pinned FROM faces WHERE {where}", args)
        ]

    def links_added(self, links):
        self.added += [list(link) for link in links]

    def links_removed(self, links):
        self.removed += [
            list(link)
            for link in links
            if self.db.execute("SELECT 1 FROM cannot_link WHERE face_id = ? AND person_id = ?", link).fetchone()
        ]

    def to_json(self):
        return json.dumps(
            {
                "people": self.people_rows,
                "faces": self.face_rows,
                "links_added": self.added,
                "links_removed": self.removed,
                "apart_added": self.apart_added,
                "apart_removed": self.apart_removed,
                "created": self.created,
            }
        )

    @staticmethod
    def restore(db, before):
        """Write a before-image back; returns {face: person} for the store's matrix, once committed."""
        db.executemany(
            "INSERT INTO people (id, name, hidden, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
            " SET name = excluded.name, hidden = excluded.hidden, created_at = excluded.created_at",
            before["people"],
        )
        db.executemany(
            "UPDATE faces SET person_id = ?, pinned = ? WHERE id = ?",
            [(person, pinned, face) for face, person, pinned in before["faces"]],
        )
        db.executemany("DELETE FROM cannot_link WHERE face_id = ? AND person_id = ?", before["links_added"])
        db.executemany("INSERT OR IGNORE INTO cannot_link VALUES (?, ?)", before["links_removed"])
        # Audit rows written before people_apart existed have no such keys.
        db.executemany("DELETE FROM people_apart WHERE person_a = ? AND person_b = ?", before.get("apart_added", []))
        db.executemany("INSERT OR IGNORE INTO people_apart VALUES (?, ?)", before.get("apart_removed", []))
        # After the faces: a person the correction created goes once they have left it (faces that joined
        # it since keep it).
        db.executemany(
            "DELETE FROM people WHERE id = ? AND id NOT IN (SELECT person_id FROM faces WHERE person_id IS NOT NULL)",
            [(p,) for p in before.get("created", [])],
        )
        return {face: person for face, person, _ in before["faces"]}
