"""The DeepStack face API (detect_service/deepstack.py) through the real client libraries from PyPI,
unchanged: deepstack-python (Home Assistant's DeepStack face integration) and deepstack-sdk, against a
real detect and store service, with API keys on (the clients send the key as the form field api_key)."""

import io
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from deepstack.core import DeepstackException, DeepstackFace
from deepstack_sdk import Face, ServerConfig
from PIL import Image

from detect_service import create_app
from facerec.vision.faces import analyse_photo
from tests.support.faces import FACES, photo, with_orientation
from tests.support.services import Service, running, service_env

KEY = "home-key"
BEN = [f"celeb5/Ben_Afflek/{n}.jpg" for n in (1, 2, 4)]
BEN_ASKED = "celeb5/Ben_Afflek/6.jpg"
ELTON = [f"celeb5/Elton_John/{n}.jpg" for n in (2, 3, 4)]
STRANGER = "celeb5/Madonna/1.jpg"  # never registered
ARIEL = [f"lfw10/Ariel_Sharon/Ariel_Sharon_000{n}.jpg" for n in (1, 2, 3)]
# Never registered, and the nearest stranger to a registered person in celeb5 and lfw10: 0.60, 0.60 and
# 0.64 from Ariel Sharon's three photos, a mean of 0.613, which the placing rule turns down (> 0.6).
NEAR_STRANGER = "lfw10/Hugo_Chavez/Hugo_Chavez_0005.jpg"
JENNIFER = [f"celeb8/Jennifer_Lawrence/{n}" for n in ("001_21a7d5e6.jpg", "002_533748b2.jpg", "003_963a3627.jpg")]
# Never registered, and a lookalike: 0.58, 0.59 and 0.56 from Jennifer Lawrence's three photos, a mean of
# 0.576, which the placing rule accepts (<= 0.6) and DEEPSTACK_MAX_DISTANCE (0.55) does not.
LOOKALIKE = "celeb8/Kate_Winslet/034_60fff082.jpg"


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    """(the store's URL, the detect service's)."""
    # 40 px: these web photos' faces are small (docs/detection.md).
    env = service_env(tmp_path_factory, DETECT_WORKERS=1, MIN_FACE_PX=40)
    store = Service("store", env)
    detect = Service("detect", dict(env, FACEREC_STORE_URL=store.url, FACEREC_API_KEYS=f'["{KEY}"]'))
    with running(store, detect):
        yield store.url, detect.url


@pytest.fixture(scope="module")
def detect_url(urls):
    return urls[1]


@pytest.fixture(scope="module")
def hass(detect_url):
    """deepstack-python's client, as Home Assistant's integration builds it."""
    parts = urlsplit(detect_url)
    return DeepstackFace(ip=parts.hostname, port=parts.port, api_key=KEY, timeout=60)


@pytest.fixture(scope="module")
def sdk(detect_url):
    return Face(ServerConfig(detect_url, api_key=KEY))


@pytest.fixture(scope="module")
def registered(hass, sdk):
    """Ben registered one photo at a time (deepstack-python), Elton three at once (deepstack-sdk)."""
    for name, paths in (("Ben", BEN), ("Ariel", ARIEL), ("Jennifer", JENNIFER)):
        for path in paths:
            assert hass.register(name, photo(path)) == "face added"
    assert sdk.registerFace([str(FACES / p) for p in ELTON], "Elton") is True


def test_a_registered_person_is_named_and_a_stranger_is_unknown(hass, registered):
    (ben,) = hass.recognize(photo(BEN_ASKED))
    assert ben["userid"] == "Ben" and 0.67 <= ben["confidence"] <= 1
    (stranger,) = hass.recognize(photo(STRANGER))
    assert stranger["userid"] == "unknown" and stranger["confidence"] == 0


def test_a_loose_min_confidence_never_names_a_stranger(detect_url, registered):
    for stranger in (STRANGER, NEAR_STRANGER):
        answer = post(detect_url, "recognize", files={"image": photo(stranger)}, data={"min_confidence": "0"})
        assert [p["userid"] for p in answer.json()["predictions"]] == ["unknown"]
    strict = post(detect_url, "recognize", files={"image": photo(BEN_ASKED)}, data={"min_confidence": "0.99"})
    assert [(p["userid"], p["confidence"]) for p in strict.json()["predictions"]] == [("unknown", 0)]


def test_a_lookalike_the_placing_rule_would_name_is_unknown(urls, models, registered):
    store_url, detect_url = urls
    _, faces = analyse_photo(models, photo(LOOKALIKE), 40)
    (rule,) = requests.post(
        f"{store_url}/people/identify", json={"descriptors": [faces[0].descriptor.tolist()]}, timeout=30
    ).json()["faces"]
    assert rule["name"] == "Jennifer" and 0.55 < rule["distance"] <= 0.6  # the store's rule alone names her
    answer = post(detect_url, "recognize", files={"image": photo(LOOKALIKE)}, data={"min_confidence": "0"})
    assert [(p["userid"], p["confidence"]) for p in answer.json()["predictions"]] == [("unknown", 0)]


def test_boxes_are_in_the_stored_file_pixels(detect_url, registered):
    """A photo stored turned (EXIF 6) gets its box in the turned file's pixels, as DeepStack answers."""
    upright = photo(BEN_ASKED)
    turned = with_orientation(upright, 6)
    (a,) = post(detect_url, "recognize", files={"image": upright}).json()["predictions"]
    (b,) = post(detect_url, "recognize", files={"image": turned}).json()["predictions"]
    assert b["userid"] == "Ben"
    assert (b["x_max"] - b["x_min"], b["y_max"] - b["y_min"]) == pytest.approx(
        (a["y_max"] - a["y_min"], a["x_max"] - a["x_min"]), abs=4
    )
    width = Image.open(io.BytesIO(upright)).width
    # EXIF 6: the file holds the upright photo turned 90° anticlockwise, upright (x, y) at (y, width - x).
    assert b["x_min"] == pytest.approx(a["y_min"], abs=4) and b["y_max"] == pytest.approx(width - a["x_min"], abs=4)


def test_list_and_delete(sdk, detect_url, registered):
    assert sorted(sdk.listFaces().list) == ["Ariel", "Ben", "Elton", "Jennifer"]
    assert sdk.deleteFace("Elton") is True
    assert sorted(sdk.listFaces().list) == ["Ariel", "Ben", "Jennifer"]
    (elton,) = post(detect_url, "recognize", files={"image": photo("celeb5/Elton_John/6.jpg")}).json()["predictions"]
    assert elton["userid"] == "unknown"
    assert sdk.registerFace([str(FACES / p) for p in ELTON], "Elton") is True  # back, for the other tests
    assert sorted(sdk.listFaces().list) == ["Ariel", "Ben", "Elton", "Jennifer"]


def test_detection_and_recognition_through_the_sdk(sdk, registered):
    found = sdk.detectFace(photo(BEN_ASKED))
    assert len(found) == 1 and 0 < found[0].confidence <= 1 and found[0].x_max > found[0].x_min
    (named,) = sdk.recognizeFace(photo(BEN_ASKED)).detections
    assert named.userid == "Ben"


def test_match_is_the_confidence_of_the_distance_between_the_largest_faces(detect_url, models):
    def descriptor(path):
        _, faces = analyse_photo(models, photo(path), 40)
        return max(faces, key=lambda f: f.box.area).descriptor

    similarity = {}
    for other in (BEN_ASKED, STRANGER):
        answer = post(detect_url, "match", files={"image1": photo(BEN[0]), "image2": photo(other)}).json()
        distance = float(np.linalg.norm(descriptor(BEN[0]) - descriptor(other)))
        assert answer["success"] is True and answer["similarity"] == pytest.approx(1 - 0.6 * distance, abs=1e-3)
        similarity[other] = answer["similarity"]
    assert similarity[BEN_ASKED] > similarity[STRANGER]


def test_bad_input_is_success_false_with_a_4xx_and_changes_nothing(hass, detect_url, registered):
    before = post(detect_url, "list").json()["faces"]
    with pytest.raises(DeepstackException):
        hass.register("Nobody", b"not an image at all")
    for route, files, data in [
        ("register", {"image": b"not an image at all"}, {"userid": "Nobody"}),
        ("register", {"image": photo(BEN_ASKED)}, {}),  # no userid
        ("recognize", {"image": b"\xff\xd8\xff\xe0 broken"}, {}),
        ("recognize", {"picture": photo(BEN_ASKED)}, {}),  # not the field "image"
        ("recognize", {"image": photo(BEN_ASKED)}, {"min_confidence": "lots"}),
        ("match", {"image1": photo(BEN_ASKED)}, {}),
    ]:
        answer = post(detect_url, route, files=files, data=data)
        assert 400 <= answer.status_code < 500 and answer.json()["success"] is False and answer.json()["error"]
    assert post(detect_url, "list").json()["faces"] == before


def test_an_image_without_a_face_registers_nothing(detect_url, registered):
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 130, 140)).save(blank, "JPEG")
    answer = post(detect_url, "register", files={"a": photo(BEN_ASKED), "b": blank.getvalue()}, data={"userid": "Half"})
    assert answer.status_code == 400 and answer.json()["success"] is False
    assert "Half" not in post(detect_url, "list").json()["faces"]


def test_the_key_is_required(detect_url):
    for data in ({}, {"api_key": "wrong"}):
        answer = requests.post(f"{detect_url}/v1/vision/face/list", data=data, timeout=30)
        assert answer.status_code == 401 and answer.json()["success"] is False
    assert requests.post(f"{detect_url}/v1/vision/face/list", headers={"X-API-Key": KEY}, timeout=30).ok


def post(detect_url, route, files=None, data=None):
    path = "/v1/vision/face" + ("" if route == "detect" else f"/{route}")
    return requests.post(detect_url + path, files=files, data={"api_key": KEY, **(data or {})}, timeout=120)


@pytest.mark.parametrize("bound", [0, -0.5, 2, "0.55", True, None])
def test_a_bad_deepstack_max_distance_stops_the_service_at_start(bound):
    with pytest.raises(ValueError, match="DEEPSTACK_MAX_DISTANCE"):
        create_app({"TESTING": True, "DEEPSTACK_MAX_DISTANCE": bound})
