"""The in-memory index finds exactly what a brute-force scan finds, its first pass notwithstanding."""

import numpy as np
import pytest

from store_service.storage.index import Index


def clustered(n, seed=0):
    """Descriptor-like points: people (centres ~1 apart), each photographed many times (0.1–0.5 apart)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.09, (n // 20, 128))
    return (centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.02, (n, 128))).astype(np.float32)


def brute(vectors, ids, query, max_distance, limit, exclude):
    d = np.linalg.norm(vectors.astype(np.float64) - query, axis=1)
    return [(ids[j], float(d[j])) for j in np.argsort(d, kind="stable") if d[j] <= max_distance and ids[j] != exclude][
        :limit
    ]


@pytest.mark.parametrize("max_distance", [0.0, 0.2, 0.36, 0.6, 1.5])
def test_search_is_exact(max_distance):
    vectors = clustered(5000)
    ids = [f"f{i}" for i in range(len(vectors))]
    index = Index()
    for start in range(0, len(vectors), 700):  # the axes are refitted as it grows
        index.add(ids[start : start + 700], vectors[start : start + 700])
    for i in range(0, len(vectors), 97):
        got = index.search(vectors[i], max_distance, 50, exclude=ids[i])
        want = brute(vectors, ids, vectors[i], max_distance, 50, ids[i])
        assert [f for f, _ in got] == [f for f, _ in want]
        assert np.allclose([d for _, d in got], [d for _, d in want])


def test_removing_moves_the_last_face_into_the_hole():
    vectors = clustered(2000, seed=1)
    ids = [f"f{i}" for i in range(len(vectors))]
    index = Index()
    index.add(ids, vectors)
    for face in ids[::3]:
        index.remove(face)
    kept = [i for i in range(len(ids)) if i % 3]
    assert len(index) == len(kept) and "f0" not in index and "f1" in index
    for i in kept[::50]:
        assert index.search(vectors[i], 0.36, 100) == brute(
            vectors[kept], [ids[k] for k in kept], vectors[i], 0.36, 100, None
        )
        assert np.array_equal(index.vector(ids[i]), vectors[i])


def test_within_finds_every_face_in_the_radius():
    vectors = clustered(3000, seed=2)
    index = Index()
    index.add([f"f{i}" for i in range(len(vectors))], vectors)
    for i in range(0, len(vectors), 101):
        rows, d = index.within(vectors[i], 0.5)
        want = np.flatnonzero(np.linalg.norm(vectors.astype(np.float64) - vectors[i], axis=1) <= 0.5)
        assert sorted(rows.tolist()) == want.tolist()
        assert np.allclose(d, np.linalg.norm(vectors[rows].astype(np.float64) - vectors[i], axis=1))


def test_labels_move_with_their_faces():
    vectors = clustered(100, seed=3)
    index = Index()
    index.add([f"f{i}" for i in range(100)], vectors, labels=np.arange(100))
    index.remove("f5")
    assert index.labels[index.rows["f99"]] == 99 and len(index.labels) == 99
    index.add(["new"], vectors[:1])
    assert index.labels[index.rows["new"]] == -1
