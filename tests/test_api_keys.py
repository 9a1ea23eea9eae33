"""Optional API keys (facerec/service/auth.py): Flask test clients, then both services for real with keys."""

import pytest
import requests

from detect_service import create_app as create_detect_app
from facerec.service.auth import key_matches, parse_keys
from store_service import create_app as create_store_app
from tests.support.faces import photo

BOX = {"left": 10, "top": 20, "width": 100, "height": 110}
FACE = {"photo_sha256": "f" * 64, "faces": [{"descriptor": [0.05] * 128, "box": BOX}]}


@pytest.fixture
def keyed_store(tmp_path):
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEYS": "first-key, second-key"})
    yield app.test_client()
    app.extensions["face_store"].close()


def assert_401(response):
    assert response.status_code == 401
    body = response.json
    assert body["success"] is False and body["status"] == 401 and body["error"] == "Unauthorized"
    assert "X-API-Key" in body["message"]


@pytest.mark.parametrize(
    "method, url",
    [
        ("post", "/faces"),
        ("get", "/faces/" + "0" * 64),
        ("get", "/faces/x/similar"),
        ("delete", "/faces/x"),
        ("put", "/api/search?facetoken=x"),
        ("delete", "/api/delete?facetoken=x"),
        ("get", "/no/such/route"),
    ],
)
def test_store_without_a_key_is_401(keyed_store, method, url):
    assert_401(getattr(keyed_store, method)(url, json=FACE))


def test_store_with_a_wrong_key_is_401_and_stores_nothing(keyed_store):
    for wrong in ("third-key", "first-key ", "", "FIRST-KEY"):
        assert_401(keyed_store.post("/faces", json=FACE, headers={"X-API-Key": wrong}))
    assert keyed_store.get("/health").json["faces"] == 0


def test_store_with_either_right_key_answers(keyed_store):
    added = keyed_store.post("/faces", json=FACE, headers={"X-API-Key": "first-key"})
    assert added.status_code == 200
    face = added.json["faces"][0]["id"]
    got = keyed_store.get(f"/faces/{face}", headers={"X-API-Key": "second-key"})
    assert got.status_code == 200 and got.json["id"] == face


def test_health_and_the_spec_stay_open(keyed_store):
    assert keyed_store.get("/health").status_code == 200
    assert keyed_store.get("/openapi.json").json["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"


def test_without_keys_every_route_is_open(store_client):
    assert store_client.post("/faces", json=FACE).status_code == 200


def test_only_digests_are_kept(tmp_path):
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEYS": ["plain-key"]})
    try:
        assert app.config["API_KEYS"] is None
        assert "plain-key" not in repr(app.config)
        assert app.test_client().get("/faces/x", headers={"X-API-Key": "plain-key"}).status_code == 404
    finally:
        app.extensions["face_store"].close()


def test_keys_from_a_file_and_from_the_environment(tmp_path, monkeypatch):
    key_file = tmp_path / "keys"
    key_file.write_text("\n  file-key  \n\nother-file-key\n")
    monkeypatch.setenv("FACEREC_API_KEYS", '["env-key"]')  # read as JSON: a list
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEY_FILE": str(key_file)})
    try:
        client = app.test_client()
        for key in ("file-key", "other-file-key", "env-key"):
            assert client.get("/faces/x", headers={"X-API-Key": key}).status_code == 404, key
        assert_401(client.get("/faces/x", headers={"X-API-Key": "file-key other-file-key"}))
    finally:
        app.extensions["face_store"].close()


@pytest.mark.parametrize("config", [{"API_KEYS": 12345}, {"API_KEYS": [1, 2]}, {"API_KEYS": True}])
def test_keys_json_would_misread_are_refused_at_start(tmp_path, config):
    with pytest.raises(ValueError, match="API_KEYS"):
        create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), **config})


def test_an_empty_or_missing_key_file_is_refused_at_start(tmp_path):
    empty = tmp_path / "keys"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no key"):
        create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEY_FILE": str(empty)})
    with pytest.raises(FileNotFoundError):
        create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEY_FILE": str(tmp_path / "none")})


def test_parse_keys():
    assert parse_keys(None) == [] and parse_keys("") == [] and parse_keys([]) == []
    assert parse_keys("a, b,,c ") == ["a", "b", "c"]
    assert parse_keys([" a ", "b"]) == ["a", "b"]


def test_key_matches_compares_digests():
    from facerec.service.auth import digest

    digests = [digest("one"), digest("two")]
    assert key_matches("two", digests) and not key_matches("three", digests) and not key_matches("two", [])


def test_detect_requires_its_key_but_not_for_health():
    app = create_detect_app({"TESTING": True, "API_KEYS": "detect-key", "STORE_URL": "http://127.0.0.1:9"})
    client = app.test_client()
    assert_401(client.post("/detect", data=b"not checked before the key"))
    assert_401(client.put("/api/detect", data=b"x", headers={"X-API-Key": "wrong"}))
    # With the right key the request reaches the view: these bytes are no image.
    assert client.post("/detect", data=b"not an image", headers={"X-API-Key": "detect-key"}).status_code == 415
    assert client.get("/health").status_code == 503  # open; 503 because nothing listens on port 9


def test_detect_stores_faces_through_a_keyed_store(keyed_services):
    store, detect = keyed_services
    obama = photo("face_recognition_test_images/obama.jpg")
    assert requests.post(detect.url + "/detect", data=obama, timeout=60).status_code == 401
    response = requests.post(detect.url + "/detect", data=obama, headers={"X-API-Key": "detect-key"}, timeout=60)
    assert response.status_code == 200, response.text
    face = response.json()["faces"][0]["id"]
    # The face is in the store, readable with the store's key only: the detect key opens nothing there.
    assert requests.get(f"{store.url}/faces/{face}", timeout=5).status_code == 401
    assert requests.get(f"{store.url}/faces/{face}", headers={"X-API-Key": "detect-key"}, timeout=5).status_code == 401
    got = requests.get(f"{store.url}/faces/{face}", headers={"X-API-Key": "store-key"}, timeout=5)
    assert got.status_code == 200 and got.json()["id"] == face


def test_a_detect_service_with_the_wrong_store_key_stores_nothing(keyed_services):
    store, _ = keyed_services
    count = requests.get(store.url + "/health", timeout=5).json()["faces"]
    app = create_detect_app({"TESTING": True, "STORE_URL": store.url, "STORE_API_KEY": "not-the-store-key"})
    response = app.test_client().post("/detect", data=photo("face_recognition_test_images/biden.jpg"))
    assert response.status_code == 503 and "STORE_API_KEY" in response.json["message"]
    assert requests.get(store.url + "/health", timeout=5).json()["faces"] == count
