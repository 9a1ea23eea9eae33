"""Face thumbnails and quality scores: made from real photos by real dlib, kept by the store."""

import base64
import io
import sqlite3

import cv2
import numpy as np
import pytest
from PIL import Image

from facerec.service import config
from facerec.vision.faces import analyse_photo
from facerec.vision.thumbnails import SIZE_PX, THUMBNAIL_MAX_BYTES, encode_jpeg, frontal_score, lighting_score
from store_service.exceptions import InvalidFace, NoThumbnail, UnknownFace
from store_service.store import FaceStore
from tests.support.faces import BOX, descriptors, photo

OBAMA = "face_recognition_test_images/obama.jpg"


def faces_of(models, data):
    return analyse_photo(models, data)[1]


def jpeg(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_library_makes_no_thumbnail_the_store_would_refuse():
    assert THUMBNAIL_MAX_BYTES == config.THUMBNAIL_MAX_BYTES


@pytest.mark.parametrize("relative", [OBAMA, "face_recognition_test_images/biden.jpg"])
def test_a_thumbnail_is_a_small_jpeg_of_the_face(models, relative):
    (face,) = faces_of(models, photo(relative))
    assert len(face.thumbnail) <= THUMBNAIL_MAX_BYTES
    image = jpeg(face.thumbnail)
    assert image.format == "JPEG" and image.size == (SIZE_PX, SIZE_PX)


def test_the_thumbnail_is_the_face_aligned(models):
    (face,) = faces_of(models, photo(OBAMA))
    chip = np.asarray(jpeg(face.thumbnail))
    # The face fills the middle of the thumbnail (dlib's padding of a quarter around it), eyes level.
    (found,) = models.detector(chip, 1)  # upsampled once: the face is under HOG's 80 px window
    shape = models.predictor(chip, found)
    centre = found.center()
    assert abs(centre.x - SIZE_PX / 2) < 12 and abs(centre.y - SIZE_PX / 2) < 16
    eyes = [(shape.part(0).y + shape.part(1).y) / 2, (shape.part(2).y + shape.part(3).y) / 2]
    assert abs(eyes[0] - eyes[1]) < 3


def test_quality_is_lower_for_a_blurred_copy(models):
    sharp = photo(OBAMA)
    pixels = cv2.imdecode(np.frombuffer(sharp, np.uint8), cv2.IMREAD_COLOR)
    blurred = cv2.imencode(".jpg", cv2.GaussianBlur(pixels, (0, 0), 3))[1].tobytes()
    (a,), (b,) = faces_of(models, sharp), faces_of(models, blurred)
    assert 0 < b.quality < a.quality <= 1


def test_quality_is_lower_for_a_smaller_copy(models):
    image = Image.open(io.BytesIO(photo(OBAMA)))
    out = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(out, "JPEG", quality=95)
    (a,), (b,) = faces_of(models, photo(OBAMA)), faces_of(models, out.getvalue())
    assert b.quality < a.quality


def test_frontal_score_falls_as_the_nose_moves_towards_an_eye():
    # dlib's 5 points: one eye's two corners, the other's, the bottom of the nose.
    eyes = [(70, 40), (60, 40), (30, 40), (40, 40)]
    scores = [frontal_score(np.array(eyes + [(x, 70)], float)) for x in (50, 45, 40, 35)]
    assert scores[0] == 1 and scores == sorted(scores, reverse=True) and scores[-1] == 0


def test_a_detailed_picture_is_squeezed_under_the_limit():
    noise = np.random.default_rng(0).integers(0, 256, (SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    assert len(cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]) > THUMBNAIL_MAX_BYTES
    assert len(encode_jpeg(noise)) <= THUMBNAIL_MAX_BYTES
    assert jpeg(encode_jpeg(noise)).size == (SIZE_PX, SIZE_PX)


def test_every_face_of_a_group_photo_has_a_thumbnail_under_the_limit(models):
    faces = faces_of(models, photo("fr_examples/_unlabeled_group/obama_and_biden.jpg"))
    assert len(faces) >= 2
    assert all(len(f.thumbnail) <= THUMBNAIL_MAX_BYTES and 0 < f.quality <= 1 for f in faces)


# The store's side.


@pytest.fixture
def store(tmp_path):
    s = FaceStore(str(tmp_path / "faces.sqlite3"))
    yield s
    s.close()


def a_jpeg():
    return encode_jpeg(np.full((SIZE_PX, SIZE_PX, 3), 128, np.uint8))


def add(store, **extra):
    face = {"descriptor": descriptors(1)[0], "box": BOX, **extra}
    return store.add_faces("p" * 64, [face], 0.36, 100)[0]["id"]


def test_the_store_keeps_a_thumbnail_and_its_quality(store, tmp_path):
    thumbnail = a_jpeg()
    face = add(store, thumbnail=base64.b64encode(thumbnail).decode(), quality=0.75)
    assert store.thumbnail(face) == thumbnail
    with sqlite3.connect(tmp_path / "faces.sqlite3") as db:
        assert db.execute("SELECT quality FROM faces").fetchone() == (0.75,)


def test_a_face_without_a_thumbnail(store):
    face = add(store)
    with pytest.raises(NoThumbnail):
        store.thumbnail(face)
    with pytest.raises(UnknownFace):
        store.thumbnail("0" * 64)


def test_a_face_stored_without_a_thumbnail_gets_one_when_its_photo_comes_again(store):
    face = add(store)
    thumbnail = a_jpeg()
    assert add(store, thumbnail=base64.b64encode(thumbnail).decode(), quality=0.5) == face
    assert store.thumbnail(face) == thumbnail
    add(store, thumbnail=base64.b64encode(encode_jpeg(np.zeros((8, 8, 3), np.uint8))).decode())
    assert store.thumbnail(face) == thumbnail  # one it has is kept


@pytest.mark.parametrize(
    "extra",
    [
        {"thumbnail": base64.b64encode(b"GIF89a not a jpeg").decode()},
        {"thumbnail": "not base64!"},
        {"thumbnail": 12},
        {"thumbnail": base64.b64encode(b"\xff\xd8\xff" + bytes(THUMBNAIL_MAX_BYTES) + b"\xff\xd9").decode()},
        {"quality": 1.5},
        {"quality": -0.1},
        {"quality": float("nan")},
        {"quality": "0.5"},
        {"quality": True},
    ],
)
def test_a_bad_thumbnail_or_quality_stores_nothing(store, extra):
    with pytest.raises(InvalidFace):
        add(store, **extra)
    assert len(store) == 0


def test_lighting_scores_lower_a_face_in_shadow_or_lit_from_one_side(models):
    pixels = cv2.imdecode(np.frombuffer(photo(OBAMA), np.uint8), cv2.IMREAD_COLOR).astype(np.float32)
    (face,) = faces_of(models, photo(OBAMA))
    dim = pixels * 0.25  # a quarter of the light: underexposed, the shadows near black
    side = pixels.copy()
    side[:, : face.box.left + face.box.width // 2] *= 0.35  # the face's left half in shadow
    (a,), (b,), (c,) = (
        faces_of(models, cv2.imencode(".png", np.clip(p, 0, 255).astype(np.uint8))[1].tobytes())
        for p in (pixels, dim, side)
    )
    well, dark, one_side = (lighting_score(np.asarray(jpeg(f.thumbnail).convert("L"))) for f in (a, b, c))
    assert dark < well - 0.1 and one_side < well - 0.1
    assert 0 < b.quality < a.quality and 0 < c.quality < a.quality
