"""The face_recognition library's own asserted values on its test images, run against our pipeline.

face_recognition detects with HOG upsample 1 and aligns with the 5-point model; with those settings our
core must give its boxes, landmarks and distance verdicts (../shared/data/face_recognition_expectations.md).
"""

import numpy as np
import pytest

from facerec.vision.boxes import iou
from facerec.vision.faces import Models, analyse_photo, find_faces
from facerec.vision.images import decode_image
from tests.support.faces import FR_IMAGES


def faces_in(models, name, upsample=1):
    photo = decode_image((FR_IMAGES / name).read_bytes())
    return photo, find_faces(models, photo.pixels, upsample)


def css(box):
    """face_recognition's (top, right, bottom, left)."""
    return box.top, box.right, box.bottom, box.left


@pytest.fixture(scope="module")
def encodings(models):
    return {
        name: faces_in(models, name)[1][0].descriptor
        for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face2.jpg", "32bit.png")
    }


def test_load_image_file_shapes():
    assert decode_image((FR_IMAGES / "obama.jpg").read_bytes()).pixels.shape == (1137, 910, 3)
    assert decode_image((FR_IMAGES / "32bit.png").read_bytes()).pixels.shape == (1200, 626, 3)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("obama.jpg", (142, 617, 409, 349)),
        ("32bit.png", (290, 438, 558, 171)),
        ("obama_partial_face.jpg", (142, 191, 365, 0)),  # clamped at the left edge
        ("obama_partial_face2.jpg", (142, 551, 409, 349)),  # clamped at the right edge (W = 551)
    ],
)
def test_face_locations(models, name, expected):
    _, faces = faces_in(models, name)
    assert [css(f.box) for f in faces] == [expected]


def test_small_model_landmarks(models):
    _, faces = faces_in(models, "obama.jpg")
    assert len(faces[0].landmarks) == 5
    assert faces[0].landmarks[4] == [496, 295]  # the nose tip


def test_68_point_landmarks_are_opt_in():
    large = Models(landmarks=68)
    photo = decode_image((FR_IMAGES / "obama.jpg").read_bytes())
    landmarks = find_faces(large, photo.pixels, 1)[0].landmarks
    assert len(landmarks) == 68 and landmarks[10] == [552, 399]
    chin = [
        (369, 220),
        (372, 254),
        (378, 289),
        (384, 322),
        (395, 353),
        (414, 382),
        (437, 407),
        (464, 424),
        (495, 428),
        (527, 420),
        (552, 399),
        (576, 372),
        (594, 344),
        (604, 314),
        (610, 282),
        (613, 250),
        (615, 219),
    ]
    assert [tuple(p) for p in landmarks[:17]] == chin


def test_face_encodings_are_128_float32(encodings):
    assert encodings["obama.jpg"].shape == (128,) and encodings["obama.jpg"].dtype == np.float32


def test_face_distance_verdicts(encodings):
    known = np.array([encodings[n] for n in ("obama2.jpg", "obama3.jpg", "biden.jpg")])
    distance = np.linalg.norm(known - encodings["obama.jpg"], axis=1)
    assert list(distance <= 0.6) == [True, True, False]  # compare_faces at its default tolerance


@pytest.mark.parametrize(
    "other, measured",
    [
        ("obama2.jpg", 0.346),
        ("obama3.jpg", 0.332),
        ("obama_partial_face2.jpg", 0.284),
        ("32bit.png", 0.338),
        ("biden.jpg", 0.840),
    ],
)
def test_distances_match_the_measured_values(encodings, other, measured):
    assert np.linalg.norm(encodings["obama.jpg"] - encodings[other]) == pytest.approx(measured, abs=0.002)


def test_the_service_default_keeps_the_verdicts_and_the_boxes_close(models):
    """Our default (upsample 0 for faces of 100 px or more) finds the same faces and keeps the verdicts."""
    found = {}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        _, faces = analyse_photo(models, (FR_IMAGES / name).read_bytes())
        _, reference = faces_in(models, name)
        assert len(faces) == 1 and iou(faces[0].box, reference[0].box) >= 0.5  # the benchmark's "same face"
        found[name] = faces[0].descriptor
    d = {n: np.linalg.norm(found["obama.jpg"] - found[n]) for n in found}
    assert d["obama2.jpg"] <= 0.6 and d["obama3.jpg"] <= 0.6 and d["biden.jpg"] > 0.6
