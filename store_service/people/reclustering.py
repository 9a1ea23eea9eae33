"""Re-clustering: every face grouped again by a process of its own (recluster.py, clusters.py) on a
snapshot, so that queries are answered meanwhile, then written in short batches that keep whatever users
changed in between."""

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from facerec.service import blas

from ..storage.db import NO_PERSON, Database
from . import recluster
from .corrections import Corrections

# A re-cluster is computed on a snapshot, outside the lock; when a correction lands meanwhile, it is
# computed again, this many times at most, then written as it is (faces changed meanwhile are left).
STALE_RETRIES = 2
# Faces a re-cluster writes per transaction: each holds the lock for a few milliseconds, so a query
# waits at most about that long (one transaction of 100,000 faces held it for 4 s).
BATCH = 50
REPO = Path(__file__).resolve().parents[2]  # where the re-cluster's process finds store_service
RECLUSTER = [sys.executable, "-m", "store_service.people.recluster"]  # + database, settings, pipe
ADDED = "faces since re-cluster"  # the counter (db.py's counters table) of faces stored since the last began


class Cancelled(Exception):
    """The store is closing: a re-cluster's process was killed, and nothing of it is written."""


class Reclustering:
    """A mixin of People: `recluster` and the background re-cluster that PEOPLE_RECLUSTER_AFTER starts."""

    db: Database
    corrections: Corrections
    settings: dict[str, Any]
    _recluster_lock: threading.Lock
    _background: threading.Thread | None
    _cancel: threading.Event

    def _new_person(self) -> int:
        raise NotImplementedError  # People's

    def _drop_empty_people(self) -> None:
        raise NotImplementedError  # People's

    def recluster(
        self, who: str = "background", cancelled: threading.Event | None = None, wait: bool = True
    ) -> dict | None:
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
        raise AssertionError("unreachable: the last attempt is written whatever landed meanwhile")

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
        created: dict[int, int] = {}
        changed = 0
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
