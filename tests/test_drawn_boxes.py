"""A face the detector missed, added by drawing its box (issue 20): POST /detect with `box` fields, over
real HTTP between the real services, with a real store."""

import hashlib

import numpy as np
import pytest
import requests

from facerec.vision.boxes import Box
from facerec.vision.faces import analyse_photo, describe_boxes
from tests.support.faces import photo
from tests.support.services import Service, running, service_env

# Elton John in large sunglasses: HOG finds no face; YuNet is sure of it (0.93), so with the faces YuNet
# is sure of turned off (SURE_FACE_SCORE 1) the detector finds none, and only a drawn box adds it.
MISSED = "celeb5/Elton_John/12.jpg"
MISSED_BOX = Box(116, 74, 78, 78)  # where YuNet puts it, in dlib's proportions
ELTON = [f"celeb5/Elton_John/{n}.jpg" for n in (2, 3, 4, 6, 8, 15)]
OBAMA = "face_recognition_test_images/obama.jpg"


@pytest.fixture(scope="module")
def hog_only(tmp_path_factory):
    """Both services, the detector keeping only the faces HOG accepts."""
    env = service_env(tmp_path_factory, DETECT_WORKERS=1, SURE_FACE_SCORE=1)
    store, detect = Service("store", env), Service("detect", env)
    env.update(FACEREC_STORE_URL=store.url)
    with running(store, detect):
        yield store, detect


def post(detect, relative, boxes=()):
    """The photo as the multipart field `image`, each box a form field `box` (as a browser's FormData sends them)."""
    fields = {"box": [",".join(map(str, b.to_json().values())) if isinstance(b, Box) else b for b in boxes]}
    files = {"image": ("photo.jpg", photo(relative), "image/jpeg")}
    return requests.post(detect.url + "/detect", data=fields, files=files, timeout=60)


def face_count(store):
    return requests.get(store.url + "/health", timeout=5).json()["faces"]


def test_a_drawn_box_adds_the_face_the_detector_missed(hog_only, models):
    store, detect = hog_only
    assert requests.post(detect.url + "/detect", data=photo(MISSED), timeout=60).json()["faces"] == []
    body = post(detect, MISSED, [MISSED_BOX]).json()
    [face] = body["faces"]
    assert face["detector"] == "manual" and Box.from_json(face["box"]) == MISSED_BOX
    stored = requests.get(f"{store.url}/faces/{face['id']}", timeout=5).json()
    assert stored["detector"] == "manual" and Box.from_json(stored["box"]) == MISSED_BOX
    # The service described exactly that region (the ID is the descriptor's hash), and it is Elton John.
    [described] = describe_boxes(models, photo(MISSED), [MISSED_BOX])[1]
    assert hashlib.sha256(described.descriptor.astype("<f4").tobytes()).hexdigest() == face["id"]
    eltons = [analyse_photo(models, photo(p), 100, small_face_px=40)[1][0].descriptor for p in ELTON]
    assert np.median([np.linalg.norm(described.descriptor - e) for e in eltons]) <= 0.6


def test_the_same_box_drawn_again_is_the_same_face(hog_only):
    store, detect = hog_only
    first = post(detect, MISSED, [MISSED_BOX]).json()["faces"][0]
    count = face_count(store)
    again = post(detect, MISSED, [MISSED_BOX]).json()["faces"][0]
    assert again["id"] == first["id"] and face_count(store) == count


def test_a_box_round_a_face_the_detector_found_adds_nothing(hog_only):
    _, detect = hog_only
    [found] = requests.post(detect.url + "/detect", data=photo(OBAMA), timeout=60).json()["faces"]
    box = Box.from_json(found["box"])
    faces = post(detect, OBAMA, [Box(box.left + 10, box.top + 10, box.width, box.height)]).json()["faces"]
    assert [(f["id"], f["detector"]) for f in faces] == [(found["id"], "hog")]


@pytest.mark.parametrize(
    "boxes, status, message",
    [
        (["10,10,50"], 400, "left,top,width,height"),
        (["10,10,-50,50"], 400, "left,top,width,height"),
        (["a,b,c,d"], 400, "left,top,width,height"),
        (["10,10,19,50"], 400, "at least 20 pixels"),
        ([Box(200, 150, 200, 100)], 422, "reaches past the 305×225 photo"),
        ([MISSED_BOX] * 21, 400, "at most 20 boxes"),
    ],
)
def test_a_bad_box_is_a_json_4xx_and_stores_nothing(hog_only, boxes, status, message):
    store, detect = hog_only
    count = face_count(store)
    response = post(detect, MISSED, boxes)
    assert response.status_code == status and message in response.json()["message"]
    assert face_count(store) == count
