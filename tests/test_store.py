"""The face store's core, on real SQLite files, without HTTP."""

import hashlib
import sqlite3

import numpy as np
import pytest

from store_service.exceptions import InvalidFace, UnknownFace
from store_service.storage.db import MIGRATIONS, SCHEMA_VERSION
from store_service.store import FaceStore, canonical, face_id
from tests.support.faces import BOX, descriptors, near


@pytest.fixture
def store(tmp_path):
    s = FaceStore(str(tmp_path / "faces.sqlite3"))
    yield s
    s.close()


def add(store, *vectors, photo="p" * 64, max_distance=0.36):
    return store.add_faces(photo, [{"descriptor": v, "box": BOX} for v in vectors], max_distance, 100)


def test_face_id_is_sha256_of_little_endian_float32():
    v = descriptors(1)[0]
    assert face_id(v) == hashlib.sha256(v.astype("<f4").tobytes()).hexdigest()
    assert face_id(v.tolist()) == face_id(v)  # JSON numbers give the same bytes back
    assert face_id(v.astype(">f4")) == face_id(v)  # byte order is canonicalised


def test_canonical_refuses_wrong_shapes_and_non_finite_values():
    for bad in ([0.0] * 127, [[0.0] * 128], [float("nan")] + [0.0] * 127, ["x"] * 128):
        with pytest.raises((InvalidFace, ValueError)):
            canonical(bad)


def test_storing_twice_gives_the_same_id_and_no_new_row(store):
    v = descriptors(1)[0]
    (first,) = add(store, v)
    (again,) = add(store, v)
    assert first["id"] == again["id"] == face_id(v)
    assert (first["created"], again["created"]) == (True, False)
    assert len(store) == 1


def test_a_face_records_its_photo_box_and_creation_time(store):
    (face,) = add(store, descriptors(1)[0], photo="a" * 64)
    record = store.get(face["id"])
    assert record["photo_sha256"] == "a" * 64 and record["box"] == BOX
    assert record["created_at"].endswith("+00:00")


def test_similar_is_within_the_threshold_nearest_first_without_itself(store):
    v = descriptors(1)[0]
    ids = [f["id"] for f in add(store, v, near(v, 0.30, 1), near(v, 0.10, 2), near(v, 0.50, 3), *descriptors(50, 9))]
    hits = store.similar(ids[0], 0.36, 100)
    assert [h["id"] for h in hits] == [ids[2], ids[1]]
    assert hits[0]["distance"] == pytest.approx(0.10, abs=1e-5)
    assert [h["id"] for h in store.similar(ids[0], 0.6, 100)] == [ids[2], ids[1], ids[3]]
    assert [h["id"] for h in store.similar(ids[0], 0.6, 1)] == [ids[2]]


def test_search_agrees_with_brute_force(store):
    vectors = descriptors(300, 4)
    vectors[1:40] = [near(vectors[0], d, s) for s, d in enumerate(np.linspace(0.2, 0.8, 39))]
    ids = [f["id"] for f in add(store, *vectors)]
    exact = np.linalg.norm(vectors.astype(np.float64) - vectors[0], axis=1)
    expected = [ids[i] for i in np.argsort(exact) if 0 < exact[i] <= 0.5]
    assert [h["id"] for h in store.similar(ids[0], 0.5, 100)] == expected


def test_matches_on_insert_exclude_the_face_itself(store):
    v = descriptors(1)[0]
    (first,) = add(store, v)
    (second,) = add(store, near(v, 0.2), photo="q" * 64)  # another photo of the same person
    assert first["matches"] == []
    assert [m["id"] for m in second["matches"]] == [first["id"]]


def test_delete_removes_the_face_and_keeps_the_others_searchable(store):
    v = descriptors(1)[0]
    a, b, c = (f["id"] for f in add(store, v, near(v, 0.2, 1), near(v, 0.3, 2)))
    store.delete(a)
    with pytest.raises(UnknownFace):
        store.get(a)
    assert [h["id"] for h in store.similar(b, 0.6, 10)] == [c]
    with pytest.raises(UnknownFace):
        store.delete(a)


def test_unknown_ids_raise(store):
    for call in (store.get, lambda f: store.similar(f, 0.36, 10), store.delete):
        with pytest.raises(UnknownFace):
            call("0" * 64)


def test_a_bad_face_in_a_batch_stores_none_of_it(store):
    with pytest.raises(InvalidFace):
        store.add_faces(
            "p", [{"descriptor": descriptors(1)[0], "box": BOX}, {"descriptor": [1.0], "box": BOX}], 0.36, 10
        )
    with pytest.raises(InvalidFace):
        store.add_faces(
            "p",
            [{"descriptor": descriptors(1)[0], "box": BOX}, {"descriptor": descriptors(1, 3)[0], "box": {}}],
            0.36,
            10,
        )
    assert len(store) == 0


def test_everything_survives_reopening(tmp_path):
    path = str(tmp_path / "faces.sqlite3")
    store = FaceStore(path)
    vectors = descriptors(2000, 5)
    ids = [f["id"] for f in add(store, *vectors)]
    store.delete(ids[7])
    store.close()
    reopened = FaceStore(path)
    assert len(reopened) == 1999
    assert reopened.similar(ids[0], 4, 5) == store_similar_brute(vectors, ids, 0, skip={7})[:5]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    stored = db.execute("SELECT descriptor FROM faces WHERE id = ?", (ids[3],)).fetchone()[0]
    assert stored == vectors[3].astype("<f4").tobytes()
    reopened.close()


def store_similar_brute(vectors, ids, i, skip):
    d = np.linalg.norm(vectors.astype(np.float64) - vectors[i], axis=1)
    return [{"id": ids[j], "distance": float(d[j])} for j in np.argsort(d) if j != i and j not in skip]


def test_the_matrix_grows_past_its_first_allocation(store):
    vectors = descriptors(3000, 6)
    for chunk in np.array_split(vectors, 10):
        add(store, *chunk)
    assert len(store) == 3000
    assert (
        store.similar(face_id(vectors[2999]), 4, 1)[0]["id"]
        == store_similar_brute(vectors, [face_id(v) for v in vectors], 2999, set())[0]["id"]
    )


def test_the_same_descriptor_twice_in_one_photo_is_one_face(store):
    v = descriptors(1)[0]
    first, second = add(store, v, v)
    assert first["id"] == second["id"] and len(store) == 1
    assert store.similar(first["id"], 0.36, 10) == []


def test_a_photo_posted_again_answers_with_its_stored_faces_and_ids(store):
    """Another detector finds the same photo's faces with boxes and descriptors moved a little: the
    stored faces answer, under their IDs, and nothing new is stored."""
    a, b = descriptors(2)
    other_box = {"left": 300, "top": 40, "width": 120, "height": 120}
    first = store.add_faces("p" * 64, [{"descriptor": a, "box": BOX}, {"descriptor": b, "box": other_box}], 0.36, 100)
    moved, other_moved = (
        {"left": 16, "top": 26, "width": 96, "height": 104},
        {"left": 290, "top": 45, "width": 125, "height": 118},
    )
    again = store.add_faces(
        "p" * 64,
        [{"descriptor": near(b, 0.15), "box": other_moved}, {"descriptor": near(a, 0.1), "box": moved}],
        0.36,
        100,
    )
    assert [f["id"] for f in again] == [first[1]["id"], first[0]["id"]]
    assert not any(f["created"] for f in again) and len(store) == 2


def test_only_the_same_photo_place_and_face_is_a_stored_face(store):
    a = descriptors(1)[0]
    (first,) = add(store, a)
    (elsewhere,) = add(store, near(a, 0.1), photo="q" * 64)  # the same face in another photo
    (someone_else,) = add(store, near(a, 0.5))  # the same photo and place, a different descriptor
    (aside,) = store.add_faces("p" * 64, [{"descriptor": near(a, 0.1, seed=2), "box": {**BOX, "left": 200}}], 0.36, 100)
    assert all(f["created"] for f in (elsewhere, someone_else, aside)) and len(store) == 4
    assert first["id"] not in {elsewhere["id"], someone_else["id"], aside["id"]}


def test_a_second_store_on_the_same_file_waits_for_the_first(tmp_path):
    path = str(tmp_path / "faces.sqlite3")
    first = FaceStore(path)
    with pytest.raises(RuntimeError, match="another store process"):
        FaceStore(path, lock_timeout=0.3)
    first.close()
    FaceStore(path, lock_timeout=0.3).close()


def test_a_database_left_by_version_1_is_migrated_once(tmp_path):
    path = str(tmp_path / "faces.sqlite3")
    old = sqlite3.connect(path)
    old.execute(MIGRATIONS[0])
    v = descriptors(1)[0]
    old.execute("INSERT INTO faces VALUES (?, ?, 'p', 1, 2, 3, 4, 'then')", (face_id(v), v.astype("<f4").tobytes()))
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    for _ in range(2):  # the second open finds nothing left to migrate
        store = FaceStore(path)
        assert store.get(face_id(v))["box"] == {"left": 1, "top": 2, "width": 3, "height": 4}
        assert store.get(face_id(v))["detector"] == "hog"  # every face stored before was HOG's
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'faces_by_photo'").fetchone()


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = str(tmp_path / "faces.sqlite3")
    sqlite3.connect(path).execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="schema version"):
        FaceStore(path)
