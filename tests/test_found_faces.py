"""Every face a person can see (issue 21), on real photos through the real pipeline: a face only YuNet
finds, no face where there is none, and a drawn box described as a face."""

import numpy as np
import pytest

from facerec.vision.boxes import Box, iou
from facerec.vision.faces import analyse_photo, describe_boxes
from tests.support.faces import photo
from tests.support.no_people import no_people_photos, no_people_views

SERVICE = {"min_face_px": 100, "small_face_px": 40}  # the service's defaults (facerec/service/config.py)
# Elton John in large sunglasses: dlib's HOG detector finds no face, YuNet is sure of it (score 0.93).
ONLY_YUNET = "celeb5/Elton_John/12.jpg"
ELTON = [f"celeb5/Elton_John/{n}.jpg" for n in (2, 3, 4, 6, 8, 15)]
OTHERS = [f"celeb5/{p}/{n}.jpg" for p in ("Ben_Afflek", "Madonna") for n in (1, 2, 4)]
SAME_PERSON = 0.6  # dlib's ResNet keeps one person within 0.6


def descriptors_of(models, paths):
    return [analyse_photo(models, photo(p), **SERVICE)[1][0].descriptor for p in paths]


def test_a_face_only_yunet_finds_is_answered_as_a_cnn_face_of_that_person(models):
    assert analyse_photo(models, photo(ONLY_YUNET), **SERVICE, sure_score=1)[1] == []  # HOG alone: none
    [face] = analyse_photo(models, photo(ONLY_YUNET), **SERVICE)[1]
    assert face.detector == "cnn" and face.descriptor.shape == (128,) and face.thumbnail and 0 < face.quality <= 1
    to_elton = [np.linalg.norm(face.descriptor - d) for d in descriptors_of(models, ELTON)]
    to_others = [np.linalg.norm(face.descriptor - d) for d in descriptors_of(models, OTHERS)]
    assert np.median(to_elton) <= SAME_PERSON < min(to_others)


def test_faces_hog_finds_stay_hog_faces(models):
    faces = analyse_photo(models, photo("face_recognition_test_images/obama.jpg"), **SERVICE)[1]
    assert [f.detector for f in faces] == ["hog"]


@pytest.mark.parametrize("path", no_people_photos(), ids=lambda p: p.stem)
def test_photos_without_people_give_no_face(models, path):
    """The hard cases (a cat, coins with heads, a motorcycle's lamps) get YuNet scores of at most 0.77
    (make bench: all 200 views), HOG none: three views of each, one over 1 MP (the proposals' path)."""
    views = [data for name, data in no_people_views([path]) if name.split("/")[1] in ("whole", "enlarged", "centre")]
    assert [analyse_photo(models, data, **SERVICE)[1] for data in views] == [[]] * len(views)


def test_a_drawn_box_is_described_as_the_face_in_it(models):
    [found] = analyse_photo(models, photo("face_recognition_test_images/obama.jpg"), **SERVICE)[1]
    drawn = Box(found.box.left + 8, found.box.top - 6, found.box.width - 10, found.box.height + 4)
    [face] = describe_boxes(models, photo("face_recognition_test_images/obama.jpg"), [drawn])[1]
    assert face.detector == "manual" and face.box == drawn and iou(face.box, found.box) > 0.8
    # The same face: landmarks within a few pixels, the descriptor well within one person.
    assert np.abs(np.array(face.landmarks) - np.array(found.landmarks)).max() <= 12
    assert np.linalg.norm(face.descriptor - found.descriptor) < 0.25
