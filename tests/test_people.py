"""People, the core without HTTP: real faces (celeb5), real dlib descriptors, a real SQLite file."""
import sqlite3
import threading

import numpy as np
import pytest

from store_service import clusters
from store_service.db import MIGRATIONS, SCHEMA_VERSION
from store_service.exceptions import Conflict, NotInPerson
from store_service.store import FaceStore, face_id
from test_store import descriptors, near

BOX = {"left": 10, "top": 20, "width": 100, "height": 110}


@pytest.fixture
def store(tmp_path):
    s = FaceStore(str(tmp_path / "faces.sqlite3"), settings={"PEOPLE_RECLUSTER_AFTER": 0})
    yield s
    s.close()


def add_photo(store, photo, *vectors):
    return store.add_faces(photo, [{"descriptor": v, "box": BOX} for v in vectors], 0.36, 10)


def add_people(store, people_faces, names=("ben", "elton", "madonna")):
    """Each labelled photo as its own photo; {name: [face IDs]}."""
    return {name: [add_photo(store, path, v)[0]["id"] for path, v in people_faces[name]] for name in names}


def person_of(store, face):
    return store.db.execute("SELECT person_id FROM faces WHERE id = ?", (face,)).fetchone()[0]


def people_of(store, faces):
    return {person_of(store, f) for f in faces}


def test_each_person_is_one_person_after_a_recluster_and_no_two_share_one(store, people_faces):
    faces = add_people(store, people_faces)
    store.people.recluster()
    found = [people_of(store, ids) for ids in faces.values()]
    assert all(len(p) == 1 and None not in p for p in found)
    assert len(set.union(*found)) == 3


def test_a_new_face_joins_its_person_on_arrival(store, people_faces):
    faces = add_people(store, people_faces, ("ben", "elton"))
    store.people.recluster()
    ben = person_of(store, faces["ben"][0])
    (path, vector), = people_faces["ben"][-1:]
    store.delete(face_id(vector))
    placed, = add_photo(store, "again", vector)
    assert placed["person"] == ben and 0 < placed["person_distance"] <= 0.55


def test_two_faces_of_one_photo_are_never_one_person(store, people_faces):
    add_people(store, people_faces, ("ben", "elton"))
    store.people.recluster()
    # Two real photos of Ben, stored as if they were one photo of two people.
    (_, a), (_, b) = people_faces["ben"][:2]
    for face in (face_id(a), face_id(b)):
        store.delete(face)
    first, second = add_photo(store, "one photo", a, b)
    assert first["person"] is None or first["person"] != second["person"]
    store.people.recluster()
    assert person_of(store, first["id"]) is None or person_of(store, first["id"]) != person_of(store, second["id"])


def test_a_removed_face_never_returns_after_a_recluster(store, people_faces):
    faces = add_people(store, people_faces)
    store.people.recluster()
    ben = person_of(store, faces["ben"][0])
    store.corrections.remove_face("test", ben, faces["ben"][0])
    assert person_of(store, faces["ben"][0]) is None
    store.people.recluster()
    assert person_of(store, faces["ben"][0]) != ben
    assert person_of(store, faces["ben"][1]) == ben  # the rest of Ben stays Ben
    with pytest.raises(NotInPerson):
        store.corrections.remove_face("test", ben, faces["ben"][0])


def test_an_assigned_face_stays_where_the_user_put_it(store, people_faces):
    faces = add_people(store, people_faces)
    store.people.recluster()
    ben, elton = person_of(store, faces["ben"][0]), person_of(store, faces["elton"][0])
    store.corrections.assign_face("test", faces["elton"][0], ben)
    for _ in range(2):
        store.people.recluster()
        assert person_of(store, faces["elton"][0]) == ben
        assert person_of(store, faces["elton"][1]) == elton  # Elton keeps his ID without that face


def test_merges_names_and_ids_survive_a_recluster(store, people_faces):
    faces = add_people(store, people_faces)
    store.people.recluster()
    ben, elton, madonna = (person_of(store, ids[0]) for ids in faces.values())
    store.corrections.update_person("test", ben, {"name": "Ben and Elton"})
    store.corrections.update_person("test", madonna, {"name": "Madonna", "hidden": True})
    store.corrections.merge("test", ben, [elton])
    store.people.recluster()
    assert people_of(store, faces["ben"] + faces["elton"]) == {ben}
    assert people_of(store, faces["madonna"]) == {madonna}
    assert store.people.summary(ben)["name"] == "Ben and Elton"
    assert store.people.summary(madonna) == {**store.people.summary(madonna), "name": "Madonna", "hidden": True}


def test_ids_stay_when_more_faces_arrive_and_people_are_reclustered(store, people_faces):
    first = {name: [(p, v) for p, v in faces[:4]] for name, faces in people_faces.items()}
    faces = add_people(store, first)
    store.people.recluster()
    before = {name: person_of(store, ids[0]) for name, ids in faces.items()}
    later = {name: [add_photo(store, p, v)[0]["id"] for p, v in people_faces[name][4:]] for name in people_faces}
    store.people.recluster()
    for name in people_faces:
        assert people_of(store, faces[name] + later[name]) == {before[name]}


def test_a_face_between_two_people_stays_unknown(store):
    a, b = descriptors(2, 7)
    mid = (a + b) / 2
    a, b = mid + (a - mid) / np.linalg.norm(a - mid) * 0.35, mid + (b - mid) / np.linalg.norm(b - mid) * 0.35
    for i, centre in enumerate((a, a, b, b)):  # two people 0.7 apart, two faces each
        add_photo(store, f"p{i}", near(centre, 0.05, i))
    store.people.recluster()
    between, = add_photo(store, "between", mid)  # 0.35 from both: near enough, but not clearly either
    closer, = add_photo(store, "closer", (mid + a * 3) / 4)  # 0.09 from a, 0.61 from b
    assert between["person"] is None and between["person_distance"] < 0.55
    assert closer["person"] == person_of(store, face_id(near(a, 0.05, 0)))


def test_undo_puts_back_the_last_correction_and_then_the_one_before(store, people_faces):
    faces = add_people(store, people_faces, ("ben", "elton"))
    store.people.recluster()
    ben, elton = person_of(store, faces["ben"][0]), person_of(store, faces["elton"][0])
    store.corrections.update_person("ann", ben, {"name": "Ben"})
    store.corrections.merge("bob", ben, [elton])
    assert store.corrections.undo("carol")["action"] == "merge"
    assert people_of(store, faces["elton"]) == {elton} and store.people.summary(ben)["name"] == "Ben"
    store.corrections.undo("carol")
    assert store.people.summary(ben)["name"] is None
    with pytest.raises(Conflict):
        store.corrections.undo("carol")
    entries, total = store.corrections.audit(1, 10)
    assert [(e["who"], e["action"], e["undone"]) for e in entries[:4]] == [
        ("carol", "undo", False), ("carol", "undo", False), ("bob", "merge", True), ("ann", "update", True)]


def test_a_merge_of_people_sharing_a_photo_is_refused(store, people_faces):
    (_, a), (_, b) = people_faces["ben"][0], people_faces["elton"][0]
    first, second = add_photo(store, "together", a, b)
    add_photo(store, "ben again", people_faces["ben"][1][1])
    add_photo(store, "elton again", people_faces["elton"][1][1])
    store.people.recluster()
    ben, elton = person_of(store, first["id"]), person_of(store, second["id"])
    assert None not in (ben, elton) and ben != elton
    with pytest.raises(Conflict):
        store.corrections.merge("test", ben, [elton])
    with pytest.raises(Conflict):
        store.corrections.assign_face("test", second["id"], ben)


def test_a_database_left_by_version_4_is_migrated_and_its_faces_grouped(tmp_path, people_faces):
    path = str(tmp_path / "faces.sqlite3")
    old = sqlite3.connect(path)
    for migration in MIGRATIONS[:4]:
        old.execute(migration)
    for path_, v in people_faces["ben"]:
        old.execute("INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height, created_at)"
                    " VALUES (?, ?, ?, 1, 2, 3, 4, 'then')", (face_id(v), v.astype("<f4").tobytes(), path_))
    old.execute("PRAGMA user_version=4")
    old.commit()
    old.close()
    store = FaceStore(path)
    assert store.people.list_people(1, 10) == ([], 0)
    assert store.people.recluster()["people"] == 1
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_closing_the_store_cancels_a_running_background_recluster_and_applies_none_of_it(
        tmp_path, people_faces, monkeypatch):
    started = threading.Event()
    real_graph = clusters.neighbour_graph

    def long_graph(vectors, k, radius, exact_limit, cancelled=None):
        """A re-cluster that runs until it is cancelled (or 30 s, when closing cannot cancel it)."""
        started.set()
        cancelled.wait(30)
        return real_graph(vectors, k, radius, exact_limit, cancelled)

    monkeypatch.setattr(clusters, "neighbour_graph", long_graph)
    path = str(tmp_path / "faces.sqlite3")
    store = FaceStore(path, settings={"PEOPLE_RECLUSTER_AFTER": 3})
    add_people(store, people_faces, ("ben",))  # more than 3 faces: a background re-cluster starts
    assert started.wait(30)
    persons = store.db.execute("SELECT id, person_id FROM faces ORDER BY id").fetchall()
    background = store.people._background
    store.close()
    assert not background.is_alive()
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action = 'recluster'").fetchone()[0] == 0
    assert db.execute("SELECT id, person_id FROM faces ORDER BY id").fetchall() == persons
