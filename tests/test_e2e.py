"""Both services as real gunicorn processes, real HTTP, real photos, a real SQLite file."""

import io
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from tests.support.faces import FACES, photo, with_orientation

OBAMA = "face_recognition_test_images/obama.jpg"
OBAMA3 = "face_recognition_test_images/obama3.jpg"  # another photo, 0.33 from obama.jpg
BIDEN = "face_recognition_test_images/biden.jpg"


def post(detect, relative=None, data=None, **kwargs):
    return requests.post(detect.url + "/detect", data=photo(relative) if relative else data, timeout=60, **kwargs)


def only_face(response):
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 1
    return faces[0]


def face_count(store):
    return requests.get(store.url + "/health", timeout=5).json()["faces"]


def test_detect_answers_the_documented_shape(services):
    _, detect = services
    body = post(detect, OBAMA).json()
    assert body["image"]["width"] == 910 and body["image"]["height"] == 1137
    assert body["image"]["orientation"] == 1 and len(body["image"]["sha256"]) == 64
    face = body["faces"][0]
    assert set(face) == {"id", "box", "landmarks", "detector", "matches", "person", "person_distance"}
    assert face["detector"] == "hog"
    # The box is on the face: face_recognition puts it at left 349..617, top 142..409 (the same face: IoU >= 0.5).
    box = face["box"]
    overlap = max(0, min(box["left"] + box["width"], 617) - max(box["left"], 349)) * max(
        0, min(box["top"] + box["height"], 409) - max(box["top"], 142)
    )
    assert overlap / (box["width"] * box["height"] + 268 * 267 - overlap) >= 0.5
    nose = face["landmarks"][4]
    assert box["left"] < nose[0] < box["left"] + box["width"] and box["top"] < nose[1] < box["top"] + box["height"]


def test_same_person_matches_and_a_different_one_does_not(services):
    store, detect = services
    obama = only_face(post(detect, OBAMA))
    obama3 = only_face(post(detect, OBAMA3))
    biden = only_face(post(detect, BIDEN))
    assert [m["id"] for m in obama3["matches"]] == [obama["id"]]
    assert 0 < obama3["matches"][0]["distance"] <= 0.36
    assert biden["matches"] == []
    similar = requests.get(f"{store.url}/faces/{obama['id']}/similar", timeout=5).json()
    assert [f["id"] for f in similar["faces"]] == [obama3["id"]]
    assert requests.get(f"{store.url}/faces/{biden['id']}/similar", timeout=5).json()["faces"] == []


def test_reposting_a_photo_is_idempotent(services):
    store, detect = services
    first = only_face(post(detect, BIDEN))
    count = face_count(store)
    again = only_face(post(detect, BIDEN))
    assert again["id"] == first["id"] and again["box"] == first["box"]
    assert face_count(store) == count


def test_multipart_upload(services):
    _, detect = services
    response = requests.post(detect.url + "/detect", files={"image": ("o.jpg", photo(OBAMA), "image/jpeg")}, timeout=60)
    assert only_face(response)["box"]["width"] > 200


def test_a_photo_without_faces(services):
    _, detect = services
    suit = Image.open(io.BytesIO(photo(OBAMA))).crop((0, 700, 910, 1137))  # below the face
    out = io.BytesIO()
    suit.save(out, "JPEG")
    response = post(detect, data=out.getvalue())
    assert response.status_code == 200 and response.json()["faces"] == []


def test_jalbum_detect_with_a_chunked_body(services):
    _, detect = services

    def chunks():
        data = photo(OBAMA)
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    response = requests.put(detect.url + "/api/detect", data=chunks(), timeout=60)  # a generator is sent chunked
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["count"] == 1 and len(body["faces"]) == 1
    face = body["faces"][0]
    assert set(face) == {"token", "rectangle", "age", "quality", "gender"}
    assert isinstance(face["token"], str) and len(face["token"]) == 64
    assert all(isinstance(face["rectangle"][k], int) for k in ("width", "height", "left", "top"))
    assert (face["age"], face["gender"]) == (0, 0) and 0 < face["quality"] <= 1


def test_a_burst_of_40_jalbum_photos_at_once_is_served_whole(services):
    """jAlbum scans with 20 threads and never retries a 503: a burst of 40 on two workers all gets 200."""
    _, detect = services
    photos = sorted((FACES / "lfw10").rglob("*.jpg"))[:40]
    with ThreadPoolExecutor(len(photos)) as pool:
        answers = list(
            pool.map(
                lambda path: requests.put(detect.url + "/api/detect", data=iter([path.read_bytes()]), timeout=600),
                photos,
            )
        )
    assert [a.status_code for a in answers] == [200] * 40, [a.text for a in answers if a.status_code != 200]
    assert sum(a.json()["count"] for a in answers) > 0


@pytest.mark.parametrize("orientation", [6, 8])
def test_jalbum_rectangle_is_in_stored_pixels(services, orientation):
    _, detect = services
    upright = requests.put(detect.url + "/api/detect", data=photo(OBAMA), timeout=60).json()["faces"][0]["rectangle"]
    turned_data = with_orientation(photo(OBAMA), orientation)
    turned = requests.put(detect.url + "/api/detect", data=turned_data, timeout=60).json()["faces"][0]["rectangle"]
    # Stored turned a quarter: the stored image is 1137 wide and 910 high, and the face lies where
    # turning the upright box puts it.
    w, h = 910, 1137
    if orientation == 6:  # stored = upright turned counter-clockwise
        expected_left, expected_top = upright["top"], w - upright["left"] - upright["width"]
    else:  # stored = upright turned clockwise
        expected_left, expected_top = h - upright["top"] - upright["height"], upright["left"]
    assert abs(turned["left"] - expected_left) <= 6 and abs(turned["top"] - expected_top) <= 6
    assert abs(turned["width"] - upright["height"]) <= 6 and abs(turned["height"] - upright["width"]) <= 6
    # /detect answers in upright pixels, whatever the stored orientation.
    body = post(detect, data=turned_data).json()
    assert body["image"]["orientation"] == orientation and (body["image"]["width"], body["image"]["height"]) == (w, h)
    assert abs(body["faces"][0]["box"]["left"] - upright["left"]) <= 6


@pytest.mark.parametrize(
    "data, status",
    [
        (b"", 400),
        (b"just some text", 415),
        (b"<!doctype html><html><body>hi</body></html>", 415),
        (photo(OBAMA)[:60_000], 422),
    ],
)
def test_bad_uploads_get_a_json_4xx_and_store_nothing(services, data, status):
    store, detect = services
    count = face_count(store)
    response = post(detect, data=data)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["status"] == status and body["message"]
    assert "Traceback" not in response.text
    assert face_count(store) == count


def test_an_enormous_upload_is_refused(services):
    _, detect = services
    response = post(detect, data=b"\xff" * (51 * 1024 * 1024))
    assert response.status_code == 413 and response.json()["status"] == 413


def test_wrong_method_is_a_json_405(services):
    _, detect = services
    response = requests.get(detect.url + "/detect", timeout=5)
    assert response.status_code == 405 and response.json()["status"] == 405


def test_data_survives_a_store_restart(services):
    store, detect = services
    face = only_face(post(detect, OBAMA3))
    count = face_count(store)
    store.stop(signal.SIGTERM)
    store.start()
    assert face_count(store) == count
    assert requests.get(f"{store.url}/faces/{face['id']}", timeout=5).json()["id"] == face["id"]
    assert only_face(post(detect, OBAMA3))["id"] == face["id"]


def test_store_down_is_a_503_and_recovery_needs_no_restart(services):
    store, detect = services
    store.stop(signal.SIGKILL)
    response = post(detect, BIDEN)
    assert response.status_code == 503 and "store" in response.json()["message"]
    assert "Retry-After" in response.headers
    assert requests.get(detect.url + "/health", timeout=5).status_code == 503
    store.start()
    assert only_face(post(detect, BIDEN))["id"]
    health = requests.get(detect.url + "/health", timeout=5).json()
    assert health["status"] == "ready" and health["detector"] == "proposals"  # the default
