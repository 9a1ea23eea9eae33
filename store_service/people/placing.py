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

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from facerec.service import blas
from facerec.service.clock import utc_now
from facerec.service.config import DEFAULTS

from ..exceptions import UnknownPerson
from ..storage.db import NO_PERSON, Database
from . import clusters, recluster
from .corrections import Corrections, person_row

# A re-cluster is computed on a snapshot, outside the lock; when a correction lands meanwhile, it is
# computed again, this many times at most, then written as it is (faces changed meanwhile are left).
STALE_RETRIES = 2
# Faces a re-cluster writes per transaction: each holds the lock for a few milliseconds, so a query
# waits at most about that long (one transaction of 100,000 faces held it for 4 s).
BATCH = 50
# A person's centre and spread for the spread ratio on arrival, from this many of its faces at most
# (evenly spaced): within a few percent, at a bounded cost for a person of 100,000 faces.
SPREAD_SAMPLE = 1000
REPO = Path(__file__).resolve().parents[2]  # where the re-cluster's process finds store_service
RECLUSTER = [sys.executable, "-m", "store_service.people.recluster"]  # + database, settings, pipe
ADDED = "faces since re-cluster"  # the counter (db.py's counters table) of faces stored since the last began


class Cancelled(Exception):
    """The store is closing: a re-cluster's process was killed, and nothing of it is written."""


class People:
    """Placing new faces, reading people, re-clustering; `corrections` is what users change by hand."""

    def __init__(self, db: Database, corrections: Corrections, settings=None):
        self.db, self.corrections = db, corrections
        self.settings = {k: v for k, v in DEFAULTS.items() if k.startswith("PEOPLE_")}
        self.settings.update({k: v for k, v in (settings or {}).items() if k.startswith("PEOPLE_")})
        self._recluster_lock = threading.Lock()  # one re-cluster at a time
        self._background = None
        self._cancel = threading.Event()

    # -- placing new faces (inside the store's insert transaction and lock) ------------------------

    def place(self, photo, ids, vectors, created):
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
        placed, changes = [], {}
        for face, vector, new in zip(ids, vectors, created):
            nearby = self._nearby(vector)
            scores = self._person_scores(nearby, persons, self.db.index.rows.get(face))
            if new and face not in changes:  # one descriptor twice in a photo is one face, placed once
                person, distance = self._place_new(face, vector, nearby, photo, persons, scores, taken, changes)
            else:
                person = self._current_person(face)
                distance = scores.get(person, _nearest(scores)[1]) if scores else None
            placed.append({"person": person, "person_distance": None if distance is None else float(distance)})
        self.db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            (ADDED, sum(created)),
        )
        return placed, changes

    def identify(self, vectors):
        """Per descriptor {"person", "name", "distance"}: the person a new face of it would join (the rule
        of `place`: within PEOPLE_JOIN_DISTANCE, PEOPLE_MARGIN clearer than the next, and as a re-cluster
        would), else person None. Reads only: nothing is stored, no one is paired."""
        join, margin = self.settings["PEOPLE_JOIN_DISTANCE"], self.settings["PEOPLE_MARGIN"]
        answers = []
        with self.db.lock:
            persons = self.db.index.labels
            for vector in vectors:
                nearby = self._nearby(vector)
                scores = self._person_scores(nearby, persons)
                best, distance = _nearest(scores)
                runner_up = min((d for p, d in scores.items() if p != best), default=np.inf)
                if (
                    best is None
                    or distance > join
                    or runner_up - distance < margin
                    or not self._would_join(best, [vector], [self._shares(nearby, persons)], persons)
                ):
                    best = None
                name = best and self.db.execute("SELECT name FROM people WHERE id = ?", (best,)).fetchone()[0]
                answers.append(
                    {"person": best, "name": name, "distance": None if distance is None else float(distance)}
                )
        return answers

    def distances_to_people(self, vector: np.ndarray, exclude: int | None = None) -> dict:
        """{person: the placing rule's distance} for every person with a face within PEOPLE_NEAR, the
        index row `exclude` (the face itself) left out; the caller holds the lock."""
        return self._person_scores(self._nearby(vector), self.db.index.labels, exclude)

    def commit_places(self, changes):
        for face, person in changes.items():
            self.db.index.labels[self.db.index.rows[face]] = person
        after = self.settings["PEOPLE_RECLUSTER_AFTER"]
        if after and self.db.execute("SELECT value FROM counters WHERE name = ?", (ADDED,)).fetchone()[0] >= after:
            self._start_background()

    def _place_new(self, face, vector, nearby, photo, persons, scores, taken, changes):
        best, distance = _nearest(scores)
        runner_up = min((d for p, d in scores.items() if p != best), default=np.inf)
        if best is not None and distance <= self.settings["PEOPLE_JOIN_DISTANCE"]:
            if (
                runner_up - distance < self.settings["PEOPLE_MARGIN"]
                or best in taken
                or not self._would_join(best, [vector], [self._shares(nearby, persons)], persons)
            ):
                return None, distance  # near a person, but not clearly that one, or not as a re-cluster would: unknown
            self._set_person(face, best, changes, taken)
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
        return person, pair_distance

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
        (quality,) = self.db.execute("SELECT quality FROM faces WHERE id = ?", (face,)).fetchone()
        return quality is not None and quality < self.settings["PEOPLE_LOW_QUALITY"]

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

    # -- reading -----------------------------------------------------------------------------------

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

    # -- re-clustering -----------------------------------------------------------------------------

    def recluster(self, who: str = "background", cancelled=None, wait=True) -> dict | None:
        """Group every face again; returns {"faces", "people", "unknown", "changed", "seconds"}. One
        replica at a time: with wait=False, None at once while another re-clusters.

        Computed by a process of its own on a snapshot of the database (recluster.py), so that queries
        are answered meanwhile, then written in batches of BATCH faces, each a short transaction of its
        own. When a correction lands while it is computed, it is computed again (STALE_RETRIES times at
        most); whatever lands later, each face is written only if it is still as the snapshot saw it.
        """
        started = time.monotonic()
        with self._recluster_lock, self.db.run_once("recluster", wait) as mine:
            if not mine:
                return None
            for attempt in range(STALE_RETRIES + 1):
                with self.db.lock:
                    generation = self.corrections.generation
                    self.db.execute("UPDATE counters SET value = 0 WHERE name = ?", (ADDED,))
                plan = self._plan(cancelled)
                try:
                    return self._apply(who, plan, started, generation if attempt < STALE_RETRIES else None, cancelled)
                except _Stale:
                    pass

    def _plan(self, cancelled):
        """recluster.py's plan for the database as it is now, from a process of its own, which exits
        when this process dies (it watches a pipe only this process writes to)."""
        lifeline, keep = os.pipe()  # neither end is inherited by other children (PEP 446)
        try:
            try:
                child = subprocess.Popen(
                    [*RECLUSTER, self.db.location, json.dumps(self.settings), str(lifeline)],
                    cwd=REPO,
                    pass_fds=(lifeline,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(os.environ, **blas.environment()),
                )
            finally:
                os.close(lifeline)  # the child has its own copy
            out, errors = _communicate(child, cancelled)
        finally:
            os.close(keep)  # the child has exited, or exits now
        if child.returncode:
            raise RuntimeError(f"the re-cluster failed: {errors[-2000:].decode(errors='replace')}")
        with np.load(io.BytesIO(out)) as plan:
            return {key: plan[key] for key in plan.files}

    def _apply(self, who, plan, started, generation=None, cancelled=None):
        """Write a plan, BATCH faces a transaction, the lock let go between them (for as long as a batch
        took, so that waiting queries get it): the people it creates, each changed face's person.

        _Stale at once when `generation` is given and a correction (on any replica) landed since. A face
        is moved only while it still has the person the plan's snapshot saw, is not pinned, and its new
        person exists and holds no other face of its photo: so corrections, deletions and new faces that
        land between batches are kept, whatever the plan says."""
        faces = plan["ids"].astype(str).tolist()
        was, persons = plan["was"].tolist(), plan["persons"].tolist()
        created, changed = {}, 0
        for start in range(0, max(len(faces), 1), BATCH):
            if cancelled is not None and cancelled.is_set():
                raise Cancelled
            began = time.monotonic()
            with self.db.lock:
                with self.db.transaction():
                    if start == 0 and generation is not None and generation != self.corrections.generation:
                        raise _Stale
                    moved = self._move_faces(
                        faces[start : start + BATCH],
                        was[start : start + BATCH],
                        persons[start : start + BATCH],
                        created,
                    )
                    if start + BATCH >= len(faces):  # the last batch
                        self._drop_empty_people()
                        self.corrections.log(who, "recluster", {"changed": changed + len(moved)}, None)
                for face, person in moved:
                    row = self.db.index.rows.get(face)
                    if row is not None:
                        self.db.index.labels[row] = NO_PERSON if person is None else person
            changed += len(moved)
            _pause(time.monotonic() - began)
        return {
            "faces": int(plan["faces"]),
            "people": int(plan["people"]),
            "unknown": int(plan["unknown"]),
            "changed": changed,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _move_faces(self, faces, was, persons, created):
        """[(face, new person)] of the faces moved: each only if it is as the snapshot saw it (see _apply);
        a person the plan creates (recluster.NEW - k) is created with its first face."""
        moved = []
        for face, old, new in zip(faces, was, persons):
            if new <= recluster.NEW and new not in created:
                created[new] = self._new_person()
            person = created.get(new, None if new == NO_PERSON else new)
            if person is None:
                done = self.db.execute(
                    "UPDATE faces SET person_id = NULL WHERE id = ? AND pinned = 0 AND person_id = ?", (face, old)
                )
            else:  # "+": find the photo's few faces by their photo, not the person's many by person
                done = self.db.execute(
                    "UPDATE faces SET person_id = ? WHERE id = ? AND pinned = 0 AND coalesce(person_id, ?) = ?"
                    " AND EXISTS (SELECT 1 FROM people WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM faces other"
                    " WHERE other.photo_sha256 = faces.photo_sha256 AND +other.person_id = ? AND other.id <> faces.id)",
                    (person, face, NO_PERSON, old, person, person),
                )
            if done.rowcount:
                moved.append((face, person))
        return moved

    def _start_background(self):
        if self._background is None or not self._background.is_alive():
            self._background = threading.Thread(target=self._recluster_in_background, name="recluster", daemon=True)
            self._background.start()

    def _recluster_in_background(self):
        try:
            self.recluster(cancelled=self._cancel, wait=False)  # another replica's re-cluster will do
        except Cancelled:
            pass

    def stop(self) -> None:
        """Stop a background re-cluster (its process is killed) and wait for it."""
        self._cancel.set()
        if self._background is not None:
            self._background.join()


class _Stale(Exception):
    pass


def _pause(seconds):
    """Between two batches of a re-cluster's write, outside the lock: the queries waiting for it go first."""
    time.sleep(seconds)


def _communicate(child, cancelled):
    """(stdout, stderr) of the re-cluster's process once it exits; it is killed, and Cancelled raised,
    when the store closes meanwhile."""
    while True:
        try:
            return child.communicate(timeout=0.1)
        except subprocess.TimeoutExpired:
            if cancelled is not None and cancelled.is_set():
                child.kill()
                child.communicate()
                raise Cancelled from None


def _nearest(scores):
    if not scores:
        return None, None
    person = min(scores, key=scores.get)
    return person, scores[person]


def _summary(row, cover):
    person, name, hidden, count = row
    return {"id": person, "name": name, "hidden": bool(hidden), "count": count, "cover_face_id": cover}
