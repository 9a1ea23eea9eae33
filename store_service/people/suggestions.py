"""Suggestions: the people a face most likely belongs to ("is this X?"), and the people most likely to
be the same as a person ("are these the same?"), for a user to answer one at a time.

Read-only, over the store's index (each face's person is its label) under the database's lock. Neither
suggests a person the user ruled out (cannot_link, people_apart), a hidden person, or a person who
already has a face in the same photo (one photo shows a person once: accepting would be a 409).
"""

import numpy as np

from ..exceptions import UnknownFace, UnknownPerson
from ..storage.db import NO_PERSON, Database
from .placing import People

# A person's faces compared with every other face, this many at most (evenly spaced): on celeb8 (about
# 100 faces an actor) the mean distance between two actors over 64 of one's faces is within 0.007 of
# the mean over all of them (their faces' distances have a spread of about 0.05).
PERSON_SAMPLE = 64
# Rows of the index compared at once: 8,192 x 64 float64 is 4 MB.
BLOCK = 8192


class Suggestions:
    """`for_face` and `for_person`; `people` is the People whose placing rule measures a face's distance
    to a person, and whose settings bound how far a suggestion may be."""

    def __init__(self, db: Database, people: People):
        self.db, self.people = db, people

    def for_face(self, face: str, limit: int) -> list[dict]:
        """[{"person", "name", "distance", "cover_face_id"}]: up to `limit` people the face may belong to,
        nearest first, by the placing rule's distance (the mean distance to the person's
        PEOPLE_JOIN_NEAREST nearest faces), only people with a face within PEOPLE_NEAR (0.7), and never
        the face's own person."""
        with self.db.lock:
            if face not in self.db.index:
                raise UnknownFace(face)
            row, index = self.db.index.rows[face], self.db.index
            scores = self.people.distances_to_people(index.vector(face), row)
            ruled_out = self._ruled_out_for_face(face) | {int(index.labels[row])}
            ranked = sorted((d, p) for p, d in scores.items() if p not in ruled_out)[:limit]
            names = self._names([p for _, p in ranked])
            return [
                {"person": p, "name": names[p], "distance": round(float(d), 4), "cover_face_id": self.people.cover(p)}
                for d, p in ranked
            ]

    def for_person(self, person: int, limit: int) -> list[dict]:
        """[{"person", "name", "count", "distance", "cover_face_id"}]: up to `limit` other people who may
        be this one, nearest first, by the average-linkage distance (the mean distance between a face of
        one and a face of the other), those within PEOPLE_SUGGEST_DISTANCE."""
        with self.db.lock:
            self._check_person(person)
            labels = self.db.index.labels
            distances, counts = self._mean_distances(person, labels)
            ruled_out = self._ruled_out_for_person(person) | {person, NO_PERSON}
            bound = self.people.settings["PEOPLE_SUGGEST_DISTANCE"]
            ranked = sorted((d, p) for p, d in distances.items() if p not in ruled_out and d <= bound)[:limit]
            names = self._names([p for _, p in ranked])
            return [
                {
                    "person": p,
                    "name": names[p],
                    "count": counts[p],
                    "distance": round(float(d), 4),
                    "cover_face_id": self.people.cover(p),
                }
                for d, p in ranked
            ]

    def _mean_distances(self, person, labels):
        """({person: mean distance between a face of `person` (a sample) and a face of theirs},
        {person: faces}) over every other person."""
        mine = np.flatnonzero(labels == person)
        if not len(mine):
            return {}, {}
        sample = self.db.index.vectors[mine[:: -(-len(mine) // PERSON_SAMPLE)]].astype(np.float64)
        others = np.flatnonzero((labels != person) & (labels != NO_PERSON))
        people, slot = np.unique(labels[others], return_inverse=True)
        sums = np.zeros(len(people))
        for start in range(0, len(others), BLOCK):
            rows = others[start : start + BLOCK]
            block = self.db.index.vectors[rows].astype(np.float64)
            sq = (block**2).sum(1)[:, None] - 2 * block @ sample.T + (sample**2).sum(1)[None, :]
            sums += np.bincount(slot[start : start + BLOCK], np.sqrt(np.maximum(sq, 0)).mean(1), len(people))
        counts = np.bincount(slot, minlength=len(people))
        keys = people.tolist()
        return dict(zip(keys, (sums / np.maximum(counts, 1)).tolist())), dict(zip(keys, counts.tolist()))

    def _ruled_out_for_face(self, face):
        """People this face may not join: rejected for it, hidden, or holding a face of its photo."""
        return self._ids(
            "SELECT person_id FROM cannot_link WHERE face_id = ?"
            " UNION SELECT o.person_id FROM faces f JOIN faces o ON o.photo_sha256 = f.photo_sha256"
            " AND o.id <> f.id WHERE f.id = ? AND o.person_id IS NOT NULL"
            " UNION SELECT id FROM people WHERE hidden = 1",
            (face, face),
        )

    def _ruled_out_for_person(self, person):
        """People this one may not merge with: said to be apart, hidden, or in a photo together."""
        return self._ids(
            "SELECT person_b FROM people_apart WHERE person_a = ?"
            " UNION SELECT person_a FROM people_apart WHERE person_b = ?"
            " UNION SELECT o.person_id FROM faces f JOIN faces o ON o.photo_sha256 = f.photo_sha256"
            " AND o.id <> f.id WHERE f.person_id = ? AND o.person_id IS NOT NULL"
            " UNION SELECT id FROM people WHERE hidden = 1",
            (person, person, person),
        )

    def _ids(self, sql, args):
        return {row[0] for row in self.db.execute(sql, args)}

    def _names(self, people):
        if not people:
            return {}
        marks = ",".join("?" * len(people))
        return dict(self.db.execute(f"SELECT id, name FROM people WHERE id IN ({marks})", people).fetchall())

    def _check_person(self, person):
        if self.db.execute("SELECT 1 FROM people WHERE id = ?", (person,)).fetchone() is None:
            raise UnknownPerson(person)
