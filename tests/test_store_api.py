"""The store's HTTP edge (Flask test client), on both engines: a real SQLite file and a real PostgreSQL database."""

import pytest

from tests.support.faces import BOX, descriptors, near
from tests.support.services import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def post_faces(client, *vectors):
    body = {"photo_sha256": "f" * 64, "faces": [{"descriptor": v.tolist(), "box": BOX} for v in vectors]}
    response = client.post("/faces", json=body)
    assert response.status_code == 200, response.json
    return [f["id"] for f in response.json["faces"]]


@pytest.fixture
def two_close_faces(store_client):
    v = descriptors(1)[0]
    return post_faces(store_client, v, near(v, 0.3), *descriptors(5, 2))


def test_get_face(store_client, two_close_faces):
    face = store_client.get(f"/faces/{two_close_faces[0]}").json
    assert face["id"] == two_close_faces[0] and face["box"] == BOX and face["photo_sha256"] == "f" * 64


def test_similar_uses_the_configured_default_threshold(store_client, two_close_faces):
    a, b = two_close_faces[:2]
    body = store_client.get(f"/faces/{a}/similar").json
    assert body["id"] == a
    assert [f["id"] for f in body["faces"]] == [b]
    assert body["faces"][0]["distance"] == pytest.approx(0.3, abs=1e-5)
    assert store_client.get(f"/faces/{a}/similar?max_distance=0.2").json["faces"] == []


def test_jalbum_search_answers_exactly_what_jalbum_parses(store_client, two_close_faces):
    a, b = two_close_faces[:2]
    response = store_client.put(f"/api/search?facetoken={a}&max-distance=0.36")
    assert response.status_code == 200
    body = response.json
    assert body == {"success": True, "count": 1, "faces": [{"token_id": b, "distance": body["faces"][0]["distance"]}]}
    assert isinstance(body["faces"][0]["distance"], float)


def test_jalbum_delete(store_client, two_close_faces):
    a = two_close_faces[0]
    assert store_client.delete(f"/api/delete?facetoken={a}").json == {"success": True}
    assert store_client.get(f"/faces/{a}").status_code == 404


def test_delete_face(store_client, two_close_faces):
    a, b = two_close_faces[:2]
    assert store_client.delete(f"/faces/{a}").status_code == 200
    assert store_client.get(f"/faces/{a}").status_code == 404
    assert store_client.get(f"/faces/{b}/similar").json["faces"] == []


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/faces/{unknown}"),
        ("get", "/faces/{unknown}/similar"),
        ("delete", "/faces/{unknown}"),
        ("put", "/api/search?facetoken={unknown}"),
        ("delete", "/api/delete?facetoken={unknown}"),
        ("get", "/faces/not-an-id"),
    ],
)
def test_unknown_ids_get_a_json_404(store_client, method, url):
    response = getattr(store_client, method)(url.format(unknown="0" * 64))
    assert response.status_code == 404
    assert response.json["success"] is False and response.json["status"] == 404
    assert "no face" in response.json["message"] or "not found" in response.json["message"].lower()


@pytest.mark.parametrize(
    "query", ["max-distance=abc", "max-distance=-1", "max-distance=nan", "max-distance=inf", "limit=0", "limit=x"]
)
def test_malformed_parameters_get_a_json_400(store_client, two_close_faces, query):
    response = store_client.put(f"/api/search?facetoken={two_close_faces[0]}&{query}")
    assert response.status_code == 400
    assert response.json["error"] == "Bad Request" and response.json["message"]


def test_missing_facetoken_is_a_400(store_client):
    assert store_client.put("/api/search").status_code == 400


def test_wrong_method_is_a_json_405_with_allow(store_client):
    response = store_client.post("/faces/" + "0" * 64)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"] and response.json["status"] == 405


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"faces": "nope"},
        {"faces": [{"descriptor": [0.1] * 127, "box": BOX}]},
        {"faces": [{"descriptor": [0.1] * 128}]},
        {"faces": [{"descriptor": ["x"] * 128, "box": BOX}]},
        # Found by schemathesis: numbers SQLite cannot hold were a 500.
        {"faces": [{"descriptor": [0.1] * 128, "box": dict(BOX, width=10**36)}]},
        {"faces": [{"descriptor": [0.1] * 128, "box": dict(BOX, left=float("inf"))}]},  # JSON's Infinity
        {"faces": [{"descriptor": [0.1] * 128, "box": dict(BOX, top=-1)}]},
    ],
)
def test_malformed_writes_get_a_400_and_store_nothing(store_client, store_app, body):
    response = store_client.post("/faces", json=body) if body else store_client.post("/faces", data=b"\x80\x04pickle")
    assert response.status_code == 400
    assert len(store_app.extensions["face_store"]) == 0


def test_unexpected_errors_are_json_without_a_traceback(store_app):
    @store_app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    store_app.config["PROPAGATE_EXCEPTIONS"] = False
    response = store_app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json["status"] == 500 and "secret" not in response.get_data(as_text=True)


def test_health_counts_faces(store_client, two_close_faces):
    assert store_client.get("/health").json == {"status": "ready", "faces": 7}


# Found by tests/test_fuzz.py: each gave a 500. JSON allows Infinity, integers of any size and lone
# surrogates, and Python's json module reads them all.
GOOD_BOX = '{"left": 1, "top": 1, "width": 1, "height": 1}'


@pytest.mark.parametrize(
    "descriptor, box, photo",
    [
        (None, '{"left": Infinity, "top": 1, "width": 1, "height": 1}', '"f"'),
        (None, '{"left": 1000000000000000000000, "top": 1, "width": 1, "height": 1}', '"f"'),
        ("[%s]" % ", ".join(["1" + "0" * 400] * 128), GOOD_BOX, '"f"'),
        (None, GOOD_BOX, '"\\ud800"'),
    ],
)
def test_unstorable_numbers_and_text_are_a_400_and_store_nothing(store_client, descriptor, box, photo):
    descriptor = descriptor or str(descriptors(1)[0].tolist())
    body = '{"photo_sha256": %s, "faces": [{"descriptor": %s, "box": %s}]}' % (photo, descriptor, box)
    response = store_client.post("/faces", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json["message"]
    assert store_client.get("/health").json["faces"] == 0


def test_each_face_keeps_how_it_was_found(store_client):
    hog, cnn, manual, unsaid = descriptors(4, 7)
    faces = [
        {"descriptor": v.tolist(), "box": BOX, "detector": d}
        for v, d in ((hog, "hog"), (cnn, "cnn"), (manual, "manual"))
    ]
    faces.append({"descriptor": unsaid.tolist(), "box": BOX})
    ids = [f["id"] for f in store_client.post("/faces", json={"photo_sha256": "d" * 64, "faces": faces}).json["faces"]]
    assert [store_client.get(f"/faces/{face}").json["detector"] for face in ids] == ["hog", "cnn", "manual", "hog"]


@pytest.mark.parametrize("detector", ["sift", "", None, 1])
def test_an_unknown_detector_is_a_400_and_stores_nothing(store_client, detector):
    face = {"descriptor": descriptors(1, 8)[0].tolist(), "box": BOX, "detector": detector}
    response = store_client.post("/faces", json={"photo_sha256": "d" * 64, "faces": [face]})
    assert response.status_code == 400 and "detector" in response.json["message"]
    assert store_client.get("/faces").json["faces"] == []
