"""The person mask (facerec/vision/segmentation.py) on the real clip: it holds the performer's face and
not the stage behind him, in the model that fits the frame's shape, and its time smoothing cuts the
flicker of the raw mask without lagging behind a person who moves."""

import hashlib
import re

import numpy as np
import pytest

from facerec.vision.segmentation import GENERAL, LANDSCAPE, MODELS, Segmenter
from tests.support.frames import boxes_in
from tests.support.services import REPO
from tests.support.streams import read_clip

SHOT = range(90, 205)  # one shot: the performer on stage, the curtain behind him at every corner


@pytest.fixture(scope="module")
def shot():
    return read_clip(SHOT.start, SHOT.stop - 1)


def centre(mask, box):
    """The mask's mean over the middle half of a box (the face itself, not the hair or the air around)."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    return float(mask[top + h // 4 : bottom - h // 4, left + w // 4 : right - w // 4].mean())


def corners(mask, size=16):
    return [
        float(c.mean()) for c in (mask[:size, :size], mask[:size, -size:], mask[-size:, :size], mask[-size:, -size:])
    ]


def test_the_mask_holds_the_face_and_not_the_stage(models, shot):
    segmenter = Segmenter()
    checked = 0
    for frame in shot[::10]:
        mask = segmenter.mask(frame)
        assert mask.shape == frame.shape[:2] and mask.dtype == np.float32
        for box in boxes_in(models, frame):
            assert centre(mask, box) > 0.9, box
            checked += 1
        assert max(corners(mask)) < 0.1
    assert checked >= 8


def test_wide_frames_go_to_the_landscape_model_and_square_ones_to_the_general(models, shot):
    segmenter = Segmenter()
    frame = shot[60]
    (box,) = boxes_in(models, frame)
    segmenter.mask(frame)
    assert set(segmenter._sessions) == {LANDSCAPE}
    left = max(0, (box[0] + box[2]) // 2 - 180)
    square = np.ascontiguousarray(frame[:, left : left + 360])  # 360x360 around the face
    mask = segmenter.mask(square)
    assert set(segmenter._sessions) == {LANDSCAPE, GENERAL}
    shifted = (box[0] - left, box[1], box[2] - left, box[3])
    assert mask.shape == (360, 360) and centre(mask, shifted) > 0.9


def flicker(masks):
    """The fraction of pixels a frame that change side (person / background) and change back the next
    frame: the mask hesitating, not the person moving."""
    person = [m > 0.5 for m in masks]
    return float(np.mean([np.mean((a == c) & (a != b)) for a, b, c in zip(person, person[1:], person[2:])]))


def test_smoothing_in_time_cuts_the_flicker_and_keeps_up(shot):
    raw = [Segmenter(steady=1.0).mask(f) for f in shot]  # steady 1: each mask is the network's own
    smoothing = Segmenter()
    smoothed = [smoothing.mask(f) for f in shot]
    assert flicker(smoothed) < 0.7 * flicker(raw)
    # Keeping up: the smoothed mask stays within 1 % of the raw one's pixels (one that lagged would not).
    assert np.mean([np.mean((s > 0.5) != (r > 0.5)) for s, r in zip(smoothed, raw)]) < 0.01


def test_the_segmentation_models_are_the_repository_s_and_match_models_readme():
    readme = (MODELS / "README.md").read_text()
    for name in (GENERAL, LANDSCAPE):
        documented = re.search(rf"\| `{re.escape(name)}` .*\| `([0-9a-f]{{64}})` \|", readme)[1]
        assert hashlib.sha256((MODELS / name).read_bytes()).hexdigest() == documented, name
    assert MODELS == REPO / "models"  # loaded from the repository, never downloaded
