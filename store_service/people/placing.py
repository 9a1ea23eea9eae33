"""People: which stored faces are one person (corrections.py: what users correct, audited).

Over the database's one connection and lock (db.py; the store is the single writer). Every face belongs
to at most one person. A new face joins a person as it arrives (`place`, inside the store's insert
transaction) only when clearly closer to that person than to any other, and as a re-cluster would; a
re-cluster (`recluster`) groups all faces again in a process of its own (recluster.py, clusters.py)
and keeps each person's ID, name and corrections.

What users are promised, whatever re-clusters and new faces do:
- two faces of one photo are never one person;
- a face a user removed from a person never goes back to it (the cannot_link table);
- a face a user assigned stays there (faces.pinned), and so do the faces of merged people;
- names, hidden flags and merges survive a re-cluster.
"""

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from facerec.service.clock import utc_now
from facerec.service.config import DEFAULTS

from ..storage.db import NO_PERSON, Database
from . import clusters
from .corrections import Corrections
from .reading import Reading
from .reclustering import ADDED, Reclustering

# A person's centre and spread for the spread ratio on arrival, from this many of its faces at most
# (evenly spaced): within a few percent, at a bounded cost for a person of 100,000 faces.
SPREAD_SAMPLE = 1000


class People(Reading, Reclustering):
    """Placing new faces, reading people, re-clustering; `corrections` is what users change by hand."""

    def __init__(self, db: Database, corrections: Corrections, settings: Mapping[str, Any] | None = None) -> None:
        self.db, self.corrections = db, corrections
        self.settings = {k: v for k, v in DEFAULTS.items() if k.startswith("PEOPLE_")}
        self.settings.update({k: v for k, v in (settings or {}).items() if k.startswith("PEOPLE_")})
        self._recluster_lock = threading.Lock()  # one re-cluster at a time
        self._background = None
        self._cancel = threading.Event()

    # -- placing new faces (inside the store's insert transaction and lock) ------------------------

    def place(
        self, photo: str, ids: list[str], vectors: list[np.ndarray], created: list[bool]
    ) -> tuple[list[dict], dict[str, int]]:
        """Each face's {"person", "person_distance"}, and {face: person} for the index once committed.

        Called after the photo's new rows are inserted, before they enter the matrix: new faces are
        compared with the stored ones. A new face joins the nearest person when its distance is within
        PEOPLE_JOIN_DISTANCE and PEOPLE_MARGIN closer than the next person, and that person holds no
        face of this photo; else it may pair with an unknown face into a new person; else it stays unknown.
        """
        persons = self.db.index.labels.copy()
        taken = {
            p
            for (p,) in self.db.execute(
                "SELECT DISTINCT person_id FROM faces WHERE photo_sha256 = ? AND person_id IS NOT NULL", (photo,)
            )
        }
        placed: list[dict] = [{}] * len(ids)
        changes: dict[str, int] = {}
        # The photo's best faces first: a low-quality face (a small second picture of someone) does not
        # take the person that a good face of the same photo would join.
        for k in sorted(range(len(ids)), key=lambda k: -self._quality(ids[k])):
            face, vector, new = ids[k], vectors[k], created[k]
            nearby = self._nearby(vector)
            scores = self._person_scores(nearby, persons, self.db.index.rows.get(face))
            if new and face not in changes:  # one descriptor twice in a photo is one face, placed once
                person, distance = self._place_new(face, vector, nearby, photo, persons, scores, taken, changes)
            else:
                person = self._current_person(face)
                distance = scores.get(person, _nearest(scores)[1]) if scores else None
            placed[k] = {"person": person, "person_distance": None if distance is None else float(distance)}
        self.db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            (ADDED, sum(created)),
        )
        return placed, changes

    def identify(self, vectors: list[np.ndarray]) -> list[dict]:
        """Per descriptor {"person", "name", "distance"}: the person a new face of it would join (the rule
        of `place`: within PEOPLE_JOIN_DISTANCE, PEOPLE_MARGIN clearer than the next, and as a re-cluster
        would), else person None. Reads only: nothing is stored, no one is paired."""
        answers = []
        with self.db.lock:
            persons = self.db.index.labels
            for vector in vectors:
                nearby = self._nearby(vector)
                scores = self._person_scores(nearby, persons)
                best = self._joined(vector, nearby, persons, scores)
                distance = _nearest(scores)[1]
                name = best and self.db.execute("SELECT name FROM people WHERE id = ?", (best,)).fetchone()[0]
                answers.append(
                    {"person": best, "name": name, "distance": None if distance is None else float(distance)}
                )
        return answers

    def distances_to_people(self, vector: np.ndarray, exclude: int | None = None) -> dict:
        """{person: the placing rule's distance} for every person with a face within PEOPLE_NEAR, the
        index row `exclude` (the face itself) left out; the caller holds the lock."""
        return self._person_scores(self._nearby(vector), self.db.index.labels, exclude)

    def commit_places(self, changes: dict[str, int]) -> None:
        for face, person in changes.items():
            self.db.index.labels[self.db.index.rows[face]] = person
        after = self.settings["PEOPLE_RECLUSTER_AFTER"]
        if after and self.db.execute("SELECT value FROM counters WHERE name = ?", (ADDED,)).fetchone()[0] >= after:
            self._start_background()

    def _place_new(self, face, vector, nearby, photo, persons, scores, taken, changes):
        best, distance = _nearest(scores)
        if best is not None and distance <= self.settings["PEOPLE_JOIN_DISTANCE"]:
            if best in taken or self._joined(vector, nearby, persons, scores) != best:
                return None, distance  # near a person, but not clearly that one, or not as a re-cluster would: unknown
            self._set_person(face, best, changes, taken)
            self._place_unknown_near(best, nearby, persons, changes)
            return best, distance
        if self._careful(face):  # a face described badly joins a person, but founds none
            return None, distance
        partner, pair_distance = self._unknown_partner(nearby, photo, persons)
        if (
            partner is None
            or (distance is not None and distance - pair_distance < self.settings["PEOPLE_MARGIN"])
            or self._pair_joins_someone(vector, nearby, partner, persons)
        ):
            return None, distance
        person = self._new_person()
        self._set_person(partner, person, changes, taken)
        self._set_person(face, person, changes, taken)
        persons[self.db.index.rows[partner]] = person
        self._place_unknown_near(person, nearby, persons, changes)
        return person, pair_distance

    def _place_unknown_near(self, person, nearby, persons, changes):
        """Unknown faces within PEOPLE_JOIN_DISTANCE of a face just placed with `person`, which arrived
        before there was anyone to join (a face of low quality founds no one; a first face has no
        partner): each joins `person` by the rule of a new face (nearest, within PEOPLE_JOIN_DISTANCE,
        PEOPLE_MARGIN clearer than the next, as a re-cluster would), unless a user removed it from that
        person or said it is not them, or its photo shows that person already. Else it waits for a
        re-cluster. The nearest PEOPLE_NEIGHBOURS of them at most: each costs a search of the index."""
        rows, d = nearby
        unknown = (d <= self.settings["PEOPLE_JOIN_DISTANCE"]) & (persons[rows] == NO_PERSON)
        for row in rows[unknown][np.argsort(d[unknown])][: self.settings["PEOPLE_NEIGHBOURS"]].tolist():
            face = self.db.index.ids[row]
            vector = self.db.index.vector(face)
            around = self._nearby(vector)
            scores = self._person_scores(around, persons, row)
            if self._joined(vector, around, persons, scores) == person and not self._kept_from(face, person):
                self._set_person(face, person, changes, set())
                persons[row] = person

    def _joined(self, vector, nearby, persons, scores):
        """The person a face joins by the placing rule (`scores`: its _person_scores): the nearest, within
        PEOPLE_JOIN_DISTANCE, PEOPLE_MARGIN nearer than the next, and as a re-cluster would; else None."""
        best, distance = _nearest(scores)
        runner_up = min((d for p, d in scores.items() if p != best), default=np.inf)
        if (
            best is None
            or distance > self.settings["PEOPLE_JOIN_DISTANCE"]
            or runner_up - distance < self.settings["PEOPLE_MARGIN"]
            or not self._would_join(best, [vector], [self._shares(nearby, persons)], persons)
        ):
            return None
        return best

    def _kept_from(self, face, person):
        """Whether a user removed `face` from `person` (or said it is not them), or its photo shows
        `person` already."""
        return (
            self.db.execute("SELECT 1 FROM cannot_link WHERE face_id = ? AND person_id = ?", (face, person)).fetchone()
            or self.db.execute(
                "SELECT 1 FROM faces WHERE person_id = ? AND photo_sha256 = ?", (person, self._photo(face))
            ).fetchone()
        ) is not None

    def _nearby(self, vector):
        """(rows, distances) of the stored faces within PEOPLE_NEAR or PEOPLE_PAIR_DISTANCE, whichever is
        farther: one scan of the index serves both the person scores and the search for a partner."""
        return self.db.index.within(vector, max(self.settings["PEOPLE_NEAR"], self.settings["PEOPLE_PAIR_DISTANCE"]))

    def _person_scores(self, nearby, persons, exclude=None):
        """{person: distance}: the mean distance to its PEOPLE_JOIN_NEAREST nearest faces, for every
        person with a face within PEOPLE_NEAR (faces beyond it count as PEOPLE_NEAR)."""
        near, k = self.settings["PEOPLE_NEAR"], self.settings["PEOPLE_JOIN_NEAREST"]
        rows, d = nearby
        keep = (d <= near) & (persons[rows] != NO_PERSON) & (rows != (-1 if exclude is None else exclude))
        rows, d = rows[keep], d[keep]
        scores = {}
        for person in np.unique(persons[rows]).tolist():
            nearest = np.sort(d[persons[rows] == person])[:k]
            # A person with fewer than k faces in all is averaged over those; counting them scans every
            # row, so only when fewer than k lie near (k near ones are k of its faces).
            counted = (
                k
                if len(nearest) == k
                else min(
                    k, int(np.count_nonzero(persons == person)) - (exclude is not None and persons[exclude] == person)
                )
            )
            scores[person] = (nearest.sum() + near * max(counted - len(nearest), 0)) / max(counted, len(nearest))
        return scores

    def _shares(self, nearby, persons):
        """{person: the share of its faces within PEOPLE_CLUSTER_DISTANCE}, for each person near: the
        test a re-cluster applies to a face alone and a person."""
        rows, d = nearby
        near = persons[rows[d <= self.settings["PEOPLE_CLUSTER_DISTANCE"]]]
        people, counts = np.unique(near[near != NO_PERSON], return_counts=True)
        return {p: c / np.count_nonzero(persons == p) for p, c in zip(people.tolist(), counts.tolist())}

    def _pair_joins_someone(self, vector, nearby, partner, persons):
        """Whether a new face and its partner, as a cluster of two, would join a person in a re-cluster:
        then they are no new person."""
        partner_vector = self.db.index.vector(partner)
        partner_nearby = self.db.index.within(partner_vector, self.settings["PEOPLE_CLUSTER_DISTANCE"])
        shares = [self._shares(nearby, persons), self._shares(partner_nearby, persons)]
        near = {p for found in shares for p in found} | set(np.unique(persons[nearby[0]]).tolist()) - {NO_PERSON}
        return any(self._would_join(p, [vector, partner_vector], shares, persons) for p in near)

    def _would_join(self, person, vectors, shares, persons):
        """Whether faces (`shares`: each one's _shares) would join `person` as a cluster in a re-cluster
        (clusters.py): at least PEOPLE_CLUSTER_SHARE of the pairs between them and its faces within
        PEOPLE_CLUSTER_DISTANCE, or, when the person has clusters.SPREAD_FACES faces or more, their spread ratio to
        it within PEOPLE_SPREAD_RATIO."""
        if np.mean([found.get(person, 0) for found in shares]) >= self.settings["PEOPLE_CLUSTER_SHARE"]:
            return True
        rows = np.flatnonzero(persons == person)
        if len(rows) < clusters.SPREAD_FACES:
            return False
        step = -(-len(rows) // SPREAD_SAMPLE)  # rounded up: SPREAD_SAMPLE rows at most
        mine = self.db.index.vectors[rows[::step]].astype(np.float64)
        centre = mine.mean(axis=0)
        spread = np.mean(np.sum((mine - centre) ** 2, axis=1))
        mean_sq = np.mean(np.sum((np.asarray(vectors, np.float64) - centre) ** 2, axis=1))
        return clusters.spread_ratio(mean_sq, spread, len(mine)) <= self.settings["PEOPLE_SPREAD_RATIO"]

    def _unknown_partner(self, nearby, photo, persons):
        """The nearest unknown face of another photo within PEOPLE_PAIR_DISTANCE, and its distance."""
        rows, d = nearby
        for k in np.argsort(d):
            face = self.db.index.ids[rows[k]]
            if (
                persons[rows[k]] == NO_PERSON
                and d[k] <= self.settings["PEOPLE_PAIR_DISTANCE"]
                and self._photo(face) != photo
                and not self._careful(face)
            ):
                return face, float(d[k])
        return None, None

    def _careful(self, face):
        """Whether a face's quality is under PEOPLE_LOW_QUALITY (turned aside, blurred, dim, tiny):
        its descriptor may lie far from its person's, so it founds no person (unknown quality: not careful)."""
        return self._quality(face) < self.settings["PEOPLE_LOW_QUALITY"]

    def _quality(self, face):
        """A face's quality, 1 where it is not known (a client that sends none)."""
        (quality,) = self.db.execute("SELECT quality FROM faces WHERE id = ?", (face,)).fetchone()
        return 1.0 if quality is None else quality

    def _photo(self, face):
        return self.db.execute("SELECT photo_sha256 FROM faces WHERE id = ?", (face,)).fetchone()[0]

    def _current_person(self, face):
        return self.db.execute("SELECT person_id FROM faces WHERE id = ?", (face,)).fetchone()[0]

    def _set_person(self, face, person, changes, taken):
        self.db.execute("UPDATE faces SET person_id = ? WHERE id = ?", (person, face))
        changes[face] = person
        taken.add(person)

    def _new_person(self):
        return self.db.execute("INSERT INTO people (created_at) VALUES (?) RETURNING id", (utc_now(),)).fetchone()[0]

    def forget_face(self, face: str) -> None:
        """Inside the store's delete transaction: the face's links go, and its person if left empty."""
        self.db.execute("DELETE FROM cannot_link WHERE face_id = ?", (face,))
        self._drop_empty_people()

    def _drop_empty_people(self):
        """People with no face, no name and not hidden are nobody a user cares about."""
        self.db.execute(
            "DELETE FROM people WHERE name IS NULL AND hidden = 0"
            " AND id NOT IN (SELECT person_id FROM faces WHERE person_id IS NOT NULL)"
        )


def _nearest(scores):
    if not scores:
        return None, None
    person = min(scores, key=scores.get)
    return person, scores[person]
