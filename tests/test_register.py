"""POST /people/register (the DeepStack API's register, in the store) and POST /people/identify's rule,
through Flask's test client on both engines (real SQLite, real PostgreSQL)."""

import numpy as np
import pytest

from tests.support.services import ENGINES

BOX = {"left": 10, "top": 20, "width": 100, "height": 110}


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def post_photo(client, photo, vector):
    body = {"photo_sha256": photo, "faces": [{"descriptor": np.asarray(vector).tolist(), "box": BOX}]}
    response = client.post("/faces", json=body)
    assert response.status_code == 200, response.json
    return response.json["faces"][0]["id"]


def identify(client, *vectors):
    response = client.post("/people/identify", json={"descriptors": [np.asarray(v).tolist() for v in vectors]})
    assert response.status_code == 200, response.json
    return response.json["faces"]


def test_register_creates_the_named_person_then_adds_to_it(store_client, people_faces):
    (p1, v1), (p2, v2), (p3, v3) = people_faces["ben"][:3]
    first = store_client.post("/people/register", json={"name": "Ben", "faces": [post_photo(store_client, p1, v1)]})
    assert first.status_code == 200 and first.json["name"] == "Ben" and first.json["count"] == 1
    more = [post_photo(store_client, p2, v2), post_photo(store_client, p3, v3)]
    again = store_client.post("/people/register", json={"name": "Ben", "faces": more})
    assert again.json["id"] == first.json["id"] and again.json["count"] == 3
    (answer,) = identify(store_client, people_faces["ben"][4][1])
    assert answer["person"] == first.json["id"] and answer["name"] == "Ben"
    audit = store_client.get("/people/audit").json["entries"]
    assert [e["action"] for e in audit[:2]] == ["register", "register"]


def test_register_refuses_bad_bodies_and_unknown_faces(store_client):
    for bad in ({}, {"name": "", "faces": ["x"]}, {"name": "A", "faces": []}, {"name": "A", "faces": [1]}):
        response = store_client.post("/people/register", json=bad)
        assert response.status_code == 400 and response.json["success"] is False
    response = store_client.post("/people/register", json={"name": "A", "faces": ["0" * 64]})
    assert response.status_code == 404
    assert store_client.get("/people").json["total"] == 0  # nothing was created


def test_identify_says_unknown_where_placing_would(store_client):
    """A face whose mean distance to a person's 3 nearest faces is within 0.6, but with only 1 of its 3
    faces within 0.6 (a share under PEOPLE_CLUSTER_SHARE 0.4), is one a new face would not join: identify
    must not name it either."""
    axes = np.eye(128, dtype=np.float32)
    faces = [0.3 * axes[0], 0.74 * axes[1], 0.74 * axes[2]]  # 0.80 to 1.05 apart: no two pair by themselves
    ids = [post_photo(store_client, f"photo{k}", v) for k, v in enumerate(faces)]
    person = store_client.post("/people/register", json={"name": "Far", "faces": ids}).json["id"]
    # From the origin: 0.3, 0.74 and 0.74 away, counted 0.3, 0.7, 0.7: a mean of 0.567.
    outside, inside = np.zeros(128), (faces[0] + faces[1] + faces[2]) / 3  # the centre: 0.40 to 0.56 away
    assert [(a["person"], round(a["distance"], 3)) for a in identify(store_client, outside)] == [(None, 0.567)]
    assert identify(store_client, inside)[0]["person"] == person
    placed = store_client.post(
        "/faces", json={"photo_sha256": "new", "faces": [{"descriptor": outside.tolist(), "box": BOX}]}
    )
    assert placed.json["faces"][0]["person"] is None  # the placing rule agrees
