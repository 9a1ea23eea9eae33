"""The background filters' compositing (stream_service/backdrop.py) on real frames of the clip and
their real person masks, in this process: only the person's rectangle is worked on, and that changes
no pixel; the hologram keeps its scan lines and their shimmer."""

import cv2
import numpy as np
import pytest

from facerec.vision.segmentation import Segmenter
from stream_service.backdrop import BAND, GAP, Hologram, blend, blurred_background, composite, person_rect
from tests.support.streams import read_clip

SHOT = range(90, 205)  # the performer on stage, the curtain behind him: he fills about half the frame
GHOST = 5  # pixels: the ghosts' offset at 640 px wide


@pytest.fixture(scope="module")
def shot():
    return read_clip(SHOT.start, SHOT.stop - 1)[::10]  # every tenth frame, 640x360


@pytest.fixture(scope="module")
def masked(shot):
    """The shot's frames with their person masks."""
    segmenter = Segmenter()
    return [(frame, segmenter.mask(frame)) for frame in shot]


@pytest.fixture(scope="module")
def masked_720p(shot):
    segmenter = Segmenter()
    frames = [cv2.resize(frame, (1280, 720)) for frame in shot]
    return [(frame, segmenter.mask(frame)) for frame in frames]


def whole(frame):
    return slice(0, frame.shape[0]), slice(0, frame.shape[1])


@pytest.mark.parametrize("size", ["640x360", "1280x720"])
@pytest.mark.parametrize("kind", ["background-blur", "background-replace", "hologram"])
def test_compositing_the_persons_rectangle_only_changes_no_pixel(masked, masked_720p, kind, size):
    # The same filter worked on the whole frame is the reference; the holograms draw the same scan lines.
    ours, reference = Hologram(np.random.default_rng(0)), Hologram(np.random.default_rng(0))
    for frame, mask in masked if size == "640x360" else masked_720p:
        behind = blurred_background(frame) if kind == "background-blur" else np.full_like(frame, (0, 255, 0))
        rows, cols = person_rect(mask)
        assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.8 * mask.size  # a rectangle, not the frame
        person = reference.made(frame, whole(frame)) if kind == "hologram" else frame
        expected = blend(person, behind, mask)
        got = composite(frame, mask, behind.copy(), ours if kind == "hologram" else None)
        # Rounding, and the hologram's ghosts at the rectangle's edge (see VISIBLE): two levels at most.
        assert np.abs(got.astype(int) - expected).max() <= 2


def test_no_person_leaves_the_background_as_it_is(masked):
    frame, _ = masked[0]
    behind = blurred_background(frame)
    nobody = np.zeros(frame.shape[:2], np.float32)
    assert person_rect(nobody) is None
    assert np.array_equal(composite(frame, nobody, behind.copy(), Hologram(np.random.default_rng())), behind)


def test_the_hologram_has_scan_lines_that_shimmer(masked):
    hologram = Hologram(np.random.default_rng())
    frame, mask = masked[5]
    first, second = hologram.made(frame, whole(frame)), hologram.made(frame, whole(frame))
    # The person's middle, away from the top and bottom rows, where the ghosts repeat the edge row.
    person = mask > 0.9
    rows = np.arange(frame.shape[0])[:, None]
    person &= (rows >= GHOST) & (rows < frame.shape[0] - GHOST)
    dark, bright = (rows % (BAND + GAP) >= BAND) & person, (rows % (BAND + GAP) < BAND) & person
    # Dark rows: the colour map at 10-30 % where bright rows have it whole (each over half the frame).
    assert first[dark].mean() < 0.75 * first[bright].mean()
    # The next frame's dark rows are darkened anew; the bright rows do not change (at 640 px wide the
    # ghosts are 5 rows off, a whole period: they mix bright rows with bright rows only).
    assert np.abs(first[dark].astype(int) - second[dark]).mean() > 1.5
    assert np.array_equal(first[bright], second[bright])
