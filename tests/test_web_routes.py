"""The people page's routes, the thumbnail route and CORS (Flask test clients over real SQLite files)."""

import base64

import numpy as np
import pytest

from detect_service import create_app as create_detect_app
from facerec.vision.thumbnails import SIZE_PX, encode_jpeg
from store_service import create_app as create_store_app
from tests.support.faces import BOX, descriptors

PAGE_ORIGIN = "http://127.0.0.1:5001"  # the store's page at its default address (CORS_ORIGINS)
THUMBNAIL = encode_jpeg(np.full((SIZE_PX, SIZE_PX, 3), 128, np.uint8))


def post_face(client, **extra):
    face = {"descriptor": descriptors(1)[0].tolist(), "box": BOX, **extra}
    response = client.post("/faces", json={"photo_sha256": "f" * 64, "faces": [face]})
    assert response.status_code == 200, response.json
    return response.json["faces"][0]["id"]


def test_the_page_is_served_with_the_detect_url(store_app):
    store_app.config["DETECT_URL"] = "http://photos.example:5000"
    response = store_app.test_client().get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'data-detect-url="http://photos.example:5000"' in page
    assert 'src="/web/app.js"' in page and 'href="/web/style.css"' in page


@pytest.mark.parametrize("name, mimetype", [("app.js", "text/javascript"), ("style.css", "text/css")])
def test_the_page_files(store_client, name, mimetype):
    response = store_client.get(f"/web/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype


@pytest.mark.parametrize("name", ["missing.js", "..", "index.html"])
def test_no_other_file_is_served(store_client, name):
    response = store_client.get(f"/web/{name}")
    assert response.status_code == 404 and response.json["success"] is False


def test_the_page_is_open_when_keys_are_on(tmp_path):
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "API_KEYS": "secret"})
    client = app.test_client()
    try:
        assert client.get("/").status_code == 200 and client.get("/web/app.js").status_code == 200
        assert client.get(f"/faces/{'0' * 64}/thumbnail.jpg").status_code == 401
    finally:
        app.extensions["face_store"].close()


def test_a_thumbnail_is_served_as_a_jpeg(store_client):
    face = post_face(store_client, thumbnail=base64.b64encode(THUMBNAIL).decode(), quality=0.5)
    response = store_client.get(f"/faces/{face}/thumbnail.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == THUMBNAIL
    assert response.headers["ETag"] == f'"{face}"'
    assert response.cache_control.private and response.cache_control.max_age == 86400


def test_a_thumbnail_the_browser_has_is_not_sent_again(store_client):
    face = post_face(store_client, thumbnail=base64.b64encode(THUMBNAIL).decode())
    response = store_client.get(f"/faces/{face}/thumbnail.jpg", headers={"If-None-Match": f'"{face}"'})
    assert response.status_code == 304 and response.data == b""


def test_no_thumbnail_is_a_404(store_client):
    face = post_face(store_client)  # stored without one, as faces were before thumbnails
    for path in (f"/faces/{face}/thumbnail.jpg", f"/faces/{'0' * 64}/thumbnail.jpg"):
        response = store_client.get(path)
        assert response.status_code == 404 and response.json["success"] is False


@pytest.mark.parametrize("extra", [{"thumbnail": "bm90IGEganBlZw=="}, {"quality": 2}])
def test_a_bad_thumbnail_or_quality_is_a_400(store_client, extra):
    response = store_client.post(
        "/faces", json={"faces": [{"descriptor": descriptors(1)[0].tolist(), "box": BOX, **extra}]}
    )
    assert response.status_code == 400
    assert store_client.get("/health").json["faces"] == 0


@pytest.fixture(scope="module")
def detect_client():
    return create_detect_app({"TESTING": True, "API_KEYS": "secret"}).test_client()


def test_cors_allows_the_page_origin(detect_client):
    response = detect_client.post("/detect", headers={"Origin": PAGE_ORIGIN, "X-API-Key": "secret"})
    assert response.status_code == 400  # no photo: an error, which the page can read too
    assert response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert "Origin" in response.headers["Vary"]


def test_cors_ignores_other_origins(detect_client):
    response = detect_client.post("/detect", headers={"Origin": "http://evil.example", "X-API-Key": "secret"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_is_answered_without_a_key(detect_client):
    headers = {
        "Origin": PAGE_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    response = detect_client.options("/detect", headers=headers)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
    assert "X-API-Key" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_a_plain_options_request_still_needs_a_key(detect_client):
    assert detect_client.options("/detect").status_code == 401


def test_cors_origins_as_a_string_or_a_list():
    from facerec.service.cors import parse_origins

    assert (
        parse_origins("http://a:1, http://b:2")
        == parse_origins(["http://a:1", "http://b:2"])
        == ["http://a:1", "http://b:2"]
    )
    with pytest.raises(ValueError):
        parse_origins(5001)
