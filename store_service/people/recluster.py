"""A re-cluster, computed in a process of its own: `python -m store_service.people.recluster DB SETTINGS FD`.

It reads a snapshot of the database (one read transaction on its own read-only connection: with WAL,
the store's writes never wait for it), groups every face that no user pinned with clusters.py, matches
the clusters with the people they continue, and writes to its standard output (.npz) only what
changes: the faces whose person changes, their person as of the snapshot and their new person (an
existing ID, or NEW - k for the k-th person to create). The store then writes that in short batches
(people/reclustering.py). Apart from the store's process, its numpy and Python never hold the store's GIL, so
queries are answered meanwhile.

FD is the read end of a pipe whose write end only the store's process holds: when that process dies
(killed, say), the pipe closes and this process exits at once instead of computing for nobody. It
writes no file, so it leaves nothing behind.
"""

import io
import json
import os
import sys
import threading
from itertools import combinations
from typing import Any

import numpy as np

from ..storage.db import NO_PERSON, read_snapshot
from ..storage.index import DIM
from . import clusters

NEW = -2  # NEW - k: the k-th person the store creates for a cluster that continues nobody


def plan(path: str, settings: dict[str, Any]) -> dict[str, Any]:
    """{"ids": faces whose person changes, "was": their person in the snapshot, "persons": their new
    person (NEW - k: the k-th new one), "faces", "people", "unknown"} for the database at `path`, as of
    one snapshot."""
    faces = _snapshot(path)
    persons, pinned = faces["persons"], faces["pinned"]
    careful = faces["quality"] < settings["PEOPLE_LOW_QUALITY"]  # NaN (unknown quality): not careful
    free = np.flatnonzero(~pinned & ~careful)
    labels = np.full(len(persons), clusters.NO_CLUSTER)
    labels[free] = clusters.cluster(
        faces["vectors"][free],
        np.concatenate([same_photo_pairs(faces["photos"][free]), apart_pairs(persons[free], faces["apart"])]),
        settings["PEOPLE_CLUSTER_DISTANCE"],
        settings["PEOPLE_CLUSTER_SHARE"],
        settings["PEOPLE_SPREAD_RATIO"],
        settings["PEOPLE_NEIGHBOURS"],
        settings["PEOPLE_EXACT_LIMIT"],
        settings["PEOPLE_MIN_FACES"],
    )
    attach_careful(faces["vectors"], faces["photos"], labels, np.flatnonzero(~pinned & careful), settings)
    matched = clusters.match_people(labels, persons)
    fresh = sorted(set(np.unique(labels[labels >= 0]).tolist()) - set(matched))
    matched.update({label: NEW - k for k, label in enumerate(fresh)})
    new = np.array([matched.get(label, NO_PERSON) for label in labels.tolist()], np.int64)
    new[pinned] = persons[pinned]
    new[[i for i, p in enumerate(new.tolist()) if (i, p) in faces["removed"]]] = NO_PERSON  # removed: never back
    new[photo_clashes(new, faces["photos"], pinned)] = NO_PERSON
    changed = np.flatnonzero(new != persons)
    return {
        "ids": faces["ids"][changed],
        "was": persons[changed],
        "persons": new[changed],
        "faces": len(new),
        "people": len(set(new.tolist()) - {NO_PERSON}),
        "unknown": int(np.count_nonzero(new == NO_PERSON)),
    }


def attach_careful(
    vectors: np.ndarray, photos: np.ndarray, labels: np.ndarray, careful: np.ndarray, settings: dict[str, Any]
) -> None:
    """Give each of the `careful` rows (faces of low quality, left out of the clustering: they found
    no person and link no two) the cluster it would join as a new face joins a person (placing.py): the
    mean distance to that cluster's PEOPLE_JOIN_NEAREST nearest faces within PEOPLE_JOIN_DISTANCE, and
    PEOPLE_MARGIN less than to any other cluster, and none of its photo's faces in that cluster (else
    the clustered face would give way: a small second picture of one person in a photo of two); else it
    stays unknown. Only among each face's PEOPLE_NEIGHBOURS nearest clustered faces within PEOPLE_NEAR
    (farther ones count as PEOPLE_NEAR)."""
    clustered = np.flatnonzero(labels >= 0)
    if not len(careful) or not len(clustered):
        return
    taken = set(zip(labels[clustered].tolist(), photos[clustered].tolist()))
    near, k = settings["PEOPLE_NEAR"], settings["PEOPLE_JOIN_NEAREST"]
    pairs = clusters._knn(vectors, careful, clustered, settings["PEOPLE_NEIGHBOURS"] + 1, near)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]  # each face's neighbours together
    d = np.linalg.norm(vectors[pairs[:, 0]] - vectors[pairs[:, 1]], axis=1)
    starts = np.searchsorted(pairs[:, 0], careful)
    ends = np.searchsorted(pairs[:, 0], careful, side="right")
    for face, start, end in zip(careful.tolist(), starts.tolist(), ends.tolist()):
        theirs, distances = labels[pairs[start:end, 1]], d[start:end]
        scores = {}
        for label in np.unique(theirs).tolist():
            nearest = np.sort(distances[theirs == label])[:k]
            scores[label] = (nearest.sum() + near * (k - len(nearest))) / k
        ranked = sorted(scores.items(), key=lambda item: item[1])
        runner_up = ranked[1][1] if len(ranked) > 1 else np.inf
        if (
            ranked
            and ranked[0][1] <= settings["PEOPLE_JOIN_DISTANCE"]
            and runner_up - ranked[0][1] >= settings["PEOPLE_MARGIN"]
            and (ranked[0][0], photos[face]) not in taken
        ):
            labels[face] = ranked[0][0]
            taken.add((ranked[0][0], photos[face]))


def _snapshot(path):
    """Every face's ID, descriptor, photo, pinned flag, person and quality, the removed (face row,
    person) pairs and the people kept apart, read in one transaction."""
    rows, removed, apart = read_snapshot(
        path,
        [
            "SELECT id, descriptor, photo_sha256, pinned, person_id, quality FROM faces",
            "SELECT face_id, person_id FROM cannot_link",
            "SELECT person_a, person_b FROM people_apart",
        ],
    )
    ids, blobs, photos, pinned, persons, quality = zip(*rows) if rows else ((),) * 6
    row = {face: i for i, face in enumerate(ids)}
    return {
        "ids": np.array(ids, "S64"),
        "vectors": np.frombuffer(b"".join(blobs), "<f4").reshape(-1, DIM),
        "photos": np.array(photos, object),
        "pinned": np.array(pinned, bool),
        "persons": np.array([NO_PERSON if p is None else p for p in persons], np.int64),
        "quality": np.array([np.nan if q is None else q for q in quality], np.float64),
        "removed": {(row[face], person) for face, person in removed if face in row},
        "apart": apart,
    }


def photo_clashes(persons: np.ndarray, photos: np.ndarray, pinned: np.ndarray) -> list[int]:
    """Rows to leave unknown so that no person holds two faces of one photo (pinned faces stay).

    A cluster never holds two, but its person's pinned faces may share a photo with it."""
    seen, clashes = set(), []
    for i in np.argsort(~pinned, kind="stable").tolist():  # pinned first
        key = (persons[i], photos[i])
        if persons[i] != NO_PERSON and key in seen:
            clashes.append(i)
        seen.add(key)
    return clashes


def apart_pairs(persons: np.ndarray, apart: Any) -> np.ndarray:
    """(m, 2) index pairs of faces whose people a user said are two (people_apart): never one cluster,
    so neither person's faces end up with the other's. A face of one with a face of the other: at 100
    faces each, 10,000 pairs, which the first merges of each side fold into one."""
    pairs = [
        np.stack(np.meshgrid(np.flatnonzero(persons == a), np.flatnonzero(persons == b)), axis=-1).reshape(-1, 2)
        for a, b in apart
    ]
    return np.concatenate([np.zeros((0, 2), np.int64), *pairs]).astype(np.int64)


def same_photo_pairs(photos: np.ndarray) -> np.ndarray:
    """(m, 2) index pairs of faces of one photo: never one cluster."""
    by_photo: dict[str, list[int]] = {}
    for i, p in enumerate(photos.tolist()):
        by_photo.setdefault(p, []).append(i)
    pairs = [pair for rows in by_photo.values() if len(rows) > 1 for pair in combinations(rows, 2)]
    return np.array(pairs, np.int64).reshape(-1, 2)


def exit_with_parent(fd: int) -> None:
    """Exit as soon as the pipe `fd` reads end of file: the store's process, its only writer, is gone."""

    def watch() -> None:
        os.read(fd, 1)  # nothing is ever written: this returns only when the write end closes
        os._exit(1)

    threading.Thread(target=watch, name="parent", daemon=True).start()


def main(path: str, settings: str, fd: str) -> None:
    exit_with_parent(int(fd))
    os.nice(10)  # background work: the store's queries come first on a busy machine
    result = io.BytesIO()
    np.savez(result, **plan(path, json.loads(settings)))
    sys.stdout.buffer.write(result.getvalue())


if __name__ == "__main__":
    main(*sys.argv[1:])
