"""The detect service's HTTP edge in-process, for what needs one edge isolated."""

import pytest

from detect_service import create_app
from tests.support.faces import photo


@pytest.fixture(scope="module")
def detect_app():
    # No store listens on port 9: the edge cases below never reach it, or must answer 503 when they do.
    return create_app({"TESTING": True, "STORE_URL": "http://127.0.0.1:9", "STORE_TIMEOUT": 2, "MAX_QUEUE_SECONDS": 2})


def test_a_queue_longer_than_its_seconds_is_answered_at_once_with_retry_after(detect_app):
    queue = detect_app.extensions["photo_queue"]
    queue.held, queue.seconds_per_photo = 5, 1.0  # 5 s of photos ahead, 2 s allowed
    try:
        response = detect_app.test_client().post("/detect", data=photo("face_recognition_test_images/obama.jpg"))
    finally:
        queue.held = 0
    assert response.status_code == 503 and response.headers["Retry-After"] == "3"
    assert "busy" in response.json["message"] and "5 s" in response.json["message"]


def test_a_queue_within_its_seconds_admits_the_photo(detect_app):
    queue = detect_app.extensions["photo_queue"]
    queue.held, queue.seconds_per_photo = 1, 1.0  # 1 s ahead, 2 s allowed: admitted (the store is down: 503)
    try:
        response = detect_app.test_client().post("/detect", data=photo("face_recognition_test_images/obama.jpg"))
    finally:
        queue.held = 0
    assert response.status_code == 503 and "nothing was stored" in response.json["message"]


def test_the_queue_frees_its_slot_after_each_photo(detect_app):
    client = detect_app.test_client()
    for _ in range(3):
        assert client.post("/detect", data=b"not a photo").status_code == 415
    assert detect_app.extensions["photo_queue"].held == 0


def test_store_unreachable_is_a_503_and_the_health_says_so(detect_app):
    client = detect_app.test_client()
    response = client.post("/detect", data=photo("face_recognition_test_images/obama.jpg"))
    assert response.status_code == 503 and "nothing was stored" in response.json["message"]
    assert client.get("/health").status_code == 503


@pytest.mark.parametrize("min_face", [0, 10, 5000, "100", True])
def test_a_minimum_face_size_outside_20_to_2000_px_stops_the_service_at_start(min_face):
    with pytest.raises(ValueError, match="MIN_FACE_PX"):
        create_app({"TESTING": True, "MIN_FACE_PX": min_face})


@pytest.mark.parametrize(
    "setting, value",
    [
        ("DETECTOR", "cnn"),
        ("DETECTOR", None),
        ("SMALL_FACE_PX", 10),
        ("SMALL_FACE_PX", "40"),
        ("SMALL_FACE_PX", True),
        ("SURE_FACE_SCORE", 0.4),
        ("SURE_FACE_SCORE", 1.5),
        ("SURE_FACE_SCORE", "0.9"),
        ("SURE_FACE_SCORE", True),
    ],
)
def test_a_bad_detector_setting_stops_the_service_at_start(setting, value):
    with pytest.raises(ValueError, match=setting):
        create_app({"TESTING": True, setting: value})
