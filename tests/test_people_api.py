"""People over HTTP: the store app's routes through Flask's test client, real descriptors, on both
engines (real SQLite, real PostgreSQL)."""

import hashlib

import pytest

from tests.support.services import ENGINES

BOX = {"left": 10, "top": 20, "width": 100, "height": 110}


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


@pytest.fixture
def client(store_client, people_faces):
    """A store holding Ben's and Elton's photos (one face each), re-clustered into two people."""
    for name in ("ben", "elton"):
        for path, v in people_faces[name]:
            post_photo(store_client, path, v)
    assert store_client.post("/people/recluster").json["people"] == 2
    return store_client


def post_photo(client, photo, *vectors):
    body = {"photo_sha256": photo, "faces": [{"descriptor": v.tolist(), "box": BOX} for v in vectors]}
    response = client.post("/faces", json=body)
    assert response.status_code == 200, response.json
    return response.json["faces"]


def people(client, query=""):
    return client.get("/people" + query).json


def ids(client):
    """(Ben's person, Elton's person): the two listed, largest first (they have 6 faces each)."""
    listed = people(client)["people"]
    return listed[0]["id"], listed[1]["id"]


def assert_error(response, status):
    assert response.status_code == status, response.json
    assert response.json["success"] is False and response.json["status"] == status and response.json["message"]


def test_post_faces_answers_each_face_person(store_client, people_faces):
    (_, a), (_, b), (_, c) = (people_faces["ben"][k] for k in (1, 4, 5))  # 0.42 to 0.46 apart
    (first,) = post_photo(store_client, "a", a)
    assert first["person"] is None and first["person_distance"] is None  # nobody yet
    (second,) = post_photo(store_client, "b", b)
    assert second["person"] is not None and second["person_distance"] > 0  # paired with the first
    (third,) = post_photo(store_client, "c", c)
    assert third["person"] == second["person"]


def test_list_people_largest_first_with_a_cover_face(client, people_faces):
    body = people(client)
    assert body["page"] == 1 and body["total"] == 2
    assert [p["count"] for p in body["people"]] == [6, 6]
    person = client.get(f"/people/{body['people'][0]['id']}").json
    assert body["people"][0]["cover_face_id"] in {f["id"] for f in person["faces"]}
    assert set(person) == {"id", "name", "hidden", "faces"} and set(person["faces"][0]) == {
        "id",
        "photo_sha256",
        "box",
        "source",
        "source_sha256",
        "time",
    }
    assert people(client, "?limit=1&page=2")["people"][0]["id"] == body["people"][1]["id"]


def test_the_cover_is_the_best_quality_face(client, store_app):
    ben, _ = ids(client)
    faces = [f["id"] for f in client.get(f"/people/{ben}").json["faces"]]
    db = store_app.extensions["face_store"].db
    db.execute("UPDATE faces SET quality = 0.9 WHERE id = ?", (faces[3],))
    db.execute("UPDATE faces SET quality = 0.2 WHERE id = ?", (faces[1],))
    assert people(client)["people"][0]["cover_face_id"] == faces[3]


def test_rename_and_hide(client):
    ben, elton = ids(client)
    renamed = client.patch(f"/people/{ben}", json={"name": "Ben"})
    assert renamed.status_code == 200 and renamed.json["name"] == "Ben"
    assert client.patch(f"/people/{elton}", json={"hidden": True}).json["hidden"] is True
    assert [p["id"] for p in people(client)["people"]] == [ben]
    assert {p["id"] for p in people(client, "?hidden=true")["people"]} == {ben, elton}
    assert client.get(f"/people/{elton}").json["hidden"] is True


def test_merge_remove_assign_and_delete(client):
    ben, elton = ids(client)
    merged = client.post(f"/people/{ben}/merge", json={"people": [elton]})
    assert merged.status_code == 200 and merged.json["count"] == 12
    assert_error(client.get(f"/people/{elton}"), 404)
    face = client.get(f"/people/{ben}").json["faces"][0]["id"]
    assert client.post(f"/people/{ben}/faces/{face}/remove").json["count"] == 11
    assert_error(client.post(f"/people/{ben}/faces/{face}/remove"), 404)  # not in Ben any more
    assert client.put(f"/faces/{face}/person", json={"person": ben}).json == {"id": face, "person": ben}
    assert client.put(f"/faces/{face}/person", json={"person": None}).json == {"id": face, "person": None}
    assert client.delete(f"/people/{ben}").json == {"success": True, "id": ben}
    assert people(client)["total"] == 0


def test_unknown_ids_are_404(client):
    ben, _ = ids(client)
    face = client.get(f"/people/{ben}").json["faces"][0]["id"]
    for response in (
        client.get("/people/999"),
        client.get("/people/abc"),
        client.patch("/people/999", json={"name": "x"}),
        client.delete("/people/999"),
        client.post("/people/999/merge", json={"people": [ben]}),
        client.post(f"/people/{ben}/merge", json={"people": [999]}),
        client.post(f"/people/999/faces/{face}/remove"),
        client.post(f"/people/{ben}/faces/{'0' * 64}/remove"),
        client.put(f"/faces/{'0' * 64}/person", json={"person": ben}),
        client.put(f"/faces/{face}/person", json={"person": 999}),
    ):
        assert_error(response, 404)


def test_bad_bodies_and_queries_are_400(client):
    ben, elton = ids(client)
    face = client.get(f"/people/{ben}").json["faces"][0]["id"]
    for response in (
        client.patch(f"/people/{ben}", json={}),
        client.patch(f"/people/{ben}", json={"name": ""}),
        client.patch(f"/people/{ben}", json={"name": "x" * 201}),
        client.patch(f"/people/{ben}", json={"hidden": "yes"}),
        client.patch(f"/people/{ben}", json={"nickname": "B"}),
        client.patch(f"/people/{ben}", data="not json"),
        client.post(f"/people/{ben}/merge", json={"people": []}),
        client.post(f"/people/{ben}/merge", json={"people": [ben]}),
        client.post(f"/people/{ben}/merge", json={"people": ["x"]}),
        client.post(f"/people/{ben}/merge", json=[elton]),
        client.put(f"/faces/{face}/person", json={}),
        client.put(f"/faces/{face}/person", json={"person": True}),
        client.get("/people?page=0"),
        client.get("/people?limit=201"),
        client.get("/people?hidden=yes"),
        client.get("/people/audit?limit=x"),
    ):
        assert_error(response, 400)


def test_a_photo_shows_a_person_once_409(store_client, people_faces):
    (_, ben), (_, elton) = people_faces["ben"][0], people_faces["elton"][0]
    together = post_photo(store_client, "together", ben, elton)
    post_photo(store_client, "ben", people_faces["ben"][1][1])
    post_photo(store_client, "elton", people_faces["elton"][1][1])
    store_client.post("/people/recluster")
    faces = [store_client.get(f"/faces/{f['id']}").json for f in together]
    persons = [p["id"] for p in people(store_client)["people"]]
    assert len(persons) == 2
    refused = store_client.post(f"/people/{persons[0]}/merge", json={"people": [persons[1]]})
    assert_error(refused, 409)
    # The answer names the photo and its faces, so that the user can take one out and merge again.
    assert faces[0]["photo_sha256"] == "together"
    assert all(f"face {f['id']} of person {f['person']}" in refused.json["message"] for f in faces)
    store_client.post(f"/people/{faces[1]['person']}/faces/{faces[1]['id']}/remove")
    assert store_client.post(f"/people/{persons[0]}/merge", json={"people": [persons[1]]}).status_code == 200


def test_audit_says_who_did_what_and_undo_reverts_it(client):
    ben, _ = ids(client)
    client.patch(f"/people/{ben}", json={"name": "Ben"}, headers={"X-Facerec-User": "ann"})
    client.patch(f"/people/{ben}", json={"name": "Benjamin"}, headers={"X-API-Key": "secret"})
    entries = client.get("/people/audit").json["entries"]
    key = hashlib.sha256(b"secret").hexdigest()[:12]
    assert [(e["who"], e["action"], e["detail"]) for e in entries[:2]] == [
        (f"key:{key}", "update", {"person": ben, "name": "Benjamin"}),
        ("user:ann", "update", {"person": ben, "name": "Ben"}),
    ]
    assert client.post("/people/undo").json == {"undone": {"audit_id": entries[0]["id"], "action": "update"}}
    assert client.get(f"/people/{ben}").json["name"] == "Ben"
    client.post("/people/undo")
    assert_error(client.post("/people/undo"), 409)
    assert client.get("/people/audit?limit=1").json["entries"][0]["who"] == "anonymous"


def test_recluster_answers_counts(client):
    body = client.post("/people/recluster").json
    assert body == {**body, "faces": 12, "people": 2, "unknown": 0, "changed": 0}


def test_identify_answers_the_person_by_the_placing_rule_and_stores_nothing(client, people_faces):
    ben, elton = ids(client)
    client.patch(f"/people/{ben}", json={"name": "Ben"})
    madonna = [v for _, v in people_faces["madonna"]]
    faces_before = client.get("/health").json["faces"]
    body = {
        "descriptors": [people_faces["ben"][0][1].tolist(), people_faces["elton"][0][1].tolist(), madonna[0].tolist()]
    }
    answers = client.post("/people/identify", json=body).json["faces"]
    assert [(a["person"], a["name"]) for a in answers] == [(ben, "Ben"), (elton, None), (None, None)]
    assert 0 < answers[0]["distance"] < 0.6 and (answers[2]["distance"] is None or answers[2]["distance"] > 0.6)
    assert client.get("/health").json["faces"] == faces_before
    for bad in ({}, {"descriptors": []}, {"descriptors": [[0.1] * 127]}, {"descriptors": [[0.1] * 128] * 101}):
        assert_error(client.post("/people/identify", json=bad), 400)
