"""Background filters of a stream's or a call's video: the person cut out by the segmentation mask
(facerec/vision/segmentation.py) and put over a blurred copy of the frame, a colour or a picture, or
turned into a "hologram" (seed 003: a colour map, scan lines and ghosts) over one of those.

Run in the stream's process (reader.py, call.py) on each frame that goes out, before the faces are
drawn: boxes, names and privacy blurs go on top of the composite, where the face is the source's own
pixels (it is part of the person).

Only the person's rectangle is composited (in the clip, about 55 % of the frame): outside it the frame
is the background as it is. Every step is a uint8 OpenCV pass (no float copy of the frame), so that
the hologram at 640x360 leaves a call its 30 frames a second on two cores (bench/background.py).
"""

import cv2
import numpy as np

from facerec.vision.segmentation import Segmenter

FILTERS = (None, "background-blur", "background-replace", "hologram")
# The background blur: the frame shrunk 12 times, blurred and enlarged again; at 640x360 that leaves
# nothing finer than ~25 px (a face in the background is a blob), at a fraction of a big kernel's cost.
BLUR_SHRINK = 12
# The person's rectangle holds every pixel whose mask is above 1/255: outside it the blend would move
# a pixel by less than one level of 255. (The hologram's ghosts inside it repeat its edge where the
# whole frame's would show pixels just outside: under a mask that faint, a level or two at most.)
VISIBLE = 1 / 255
# Hologram: scan lines of BAND bright and GAP dark rows out of each BAND + GAP, the dark ones at
# 10-30 % (new each frame: they shimmer), and two ghosts offset by 1/128 of the width each way.
BAND, GAP = 3, 2
DARK = (0.1, 0.3)
GHOST_SHIFT = 1 / 128

Rect = tuple[slice, slice]


class Backdrop:
    """One video's background filter. `kind` is one of FILTERS; `background` what goes behind the
    person: None (the frame blurred), ("colour", (b, g, r)) or ("image", path of a stored picture)."""

    def __init__(self, kind: str | None = None, background: tuple | None = None, segmenter: Segmenter | None = None):
        self.kind, self.background = kind, background
        self._segmenter = segmenter
        self._picture: tuple | None = None  # ((height, width), background, the background at that size)
        self._hologram = Hologram(np.random.default_rng())

    def set(self, kind: str | None, background: tuple | None) -> None:
        self.kind, self.background = kind, background

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The frame with its background filtered: a new array, or `frame` itself when there is no filter."""
        if self.kind is None:
            return frame
        if self._segmenter is None:  # the model is loaded with the first filtered frame, not before
            self._segmenter = Segmenter()
        mask = self._segmenter.mask(frame)
        if self.kind == "background-blur" or self.background is None:
            out = blurred_background(frame)
        else:
            out = self._behind(frame.shape[:2]).copy()
        return composite(frame, mask, out, self._hologram if self.kind == "hologram" else None)

    def _behind(self, size: tuple) -> np.ndarray:
        """The background at the frame's size, made once for each size and background."""
        assert self.background is not None  # apply() blurs the frame instead
        kind, value = self.background
        if self._picture is None or self._picture[:2] != (size, self.background):
            made = np.full((*size, 3), value, np.uint8) if kind == "colour" else fitted(cv2.imread(value), size)
            self._picture = (size, self.background, made)
        return self._picture[2]


def composite(frame: np.ndarray, mask: np.ndarray, behind: np.ndarray, hologram: "Hologram | None") -> np.ndarray:
    """`behind` (written over, and returned) with the person of `frame` on it where the mask says, as a
    hologram if one is given."""
    rect = person_rect(mask)
    if rect is not None:
        person = hologram.made(frame, rect) if hologram is not None else frame[rect]
        behind[rect] = blend(person, behind[rect], mask[rect])
    return behind


def person_rect(mask: np.ndarray) -> Rect | None:
    """The rectangle (rows, columns) around every pixel of the mask above VISIBLE; None when there is
    no person."""
    left, top, width, height = cv2.boundingRect((mask > VISIBLE).view(np.uint8))
    return (slice(top, top + height), slice(left, left + width)) if width else None


def blend(person: np.ndarray, behind: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """person where the mask is 1, behind where it is 0, mixed in between (the soft edge)."""
    return cv2.blendLinear(person, behind, mask, 1 - mask)


def blurred_background(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    small = cv2.resize(
        frame, (max(2, width // BLUR_SHRINK), max(2, height // BLUR_SHRINK)), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(cv2.GaussianBlur(small, (5, 5), 0), (width, height), interpolation=cv2.INTER_LINEAR)


def fitted(picture: np.ndarray | None, size: tuple) -> np.ndarray:
    """The picture scaled to cover (height, width) and cut to it, centred; grey if it cannot be read."""
    height, width = size
    if picture is None:  # deleted meanwhile: the stream goes on over grey rather than failing
        return np.full((height, width, 3), 128, np.uint8)
    scale = max(width / picture.shape[1], height / picture.shape[0])
    w, h = max(width, round(picture.shape[1] * scale)), max(height, round(picture.shape[0] * scale))
    resized = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    left, top = (w - width) // 2, (h - height) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


class Hologram:
    """Seed 003's hologram of a video's frames: the person in a blue-green colour map, with scan lines
    and two ghosts, over half of the frame itself (so that the person stays recognisable).

    The scan lines are a multiplication by a table of gains (255 on bright rows, 10-30 % of it on dark
    ones, drawn once per frame size, twice the frame's height): each frame takes the frame's rows at a
    new random offset into it (a whole number of BAND + GAP periods, so the lines stay on the same rows
    of the frame, and never the last frame's), which redraws the dark rows' shimmer without drawing a
    random number a row."""

    def __init__(self, random: np.random.Generator):
        self._random = random
        self._gains: np.ndarray | None = None
        self._period = 0  # the table's offset, in periods of BAND + GAP rows

    def made(self, frame: np.ndarray, rect: Rect) -> np.ndarray:
        """The hologram of frame[rect] (a new array of its size)."""
        rows, cols = rect
        image = frame[rect]
        holo = cv2.applyColorMap(image, cv2.COLORMAP_WINTER)
        gains = self._gains_for(frame.shape)
        periods = frame.shape[0] // (BAND + GAP) + 2  # the offsets at which a frame's rows fit in the table
        self._period = (self._period + int(self._random.integers(1, periods))) % periods
        offset = (BAND + GAP) * self._period
        cv2.multiply(holo, gains[offset + rows.start : offset + rows.stop, cols], dst=holo, scale=1 / 255)
        # The ghosts, `shift` pixels down-right and up-left, the edge repeated: views into one copy with
        # a border, where the holo itself starts at (shift, shift).
        shift = max(1, round(frame.shape[1] * GHOST_SHIFT))
        bordered = cv2.copyMakeBorder(holo, shift, shift, shift, shift, cv2.BORDER_REPLICATE)
        height, width = holo.shape[:2]
        ghosts = cv2.addWeighted(holo, 0.2, bordered[:height, :width], 0.8, 0)
        ghosts = cv2.addWeighted(ghosts, 0.4, bordered[2 * shift :, 2 * shift :][:height, :width], 0.6, 0, dst=ghosts)
        return cv2.addWeighted(image, 0.5, ghosts, 0.6, 0, dst=ghosts)

    def _gains_for(self, shape: tuple) -> np.ndarray:
        """The table of gains for frames of this shape: 2 x height + a period rows, the frame's width."""
        height, width = shape[:2]
        rows = 2 * height + BAND + GAP
        if self._gains is None or self._gains.shape[:2] != (rows, width):
            gains = np.full((rows, 1, 3), 255, np.uint8)
            dark = np.arange(rows) % (BAND + GAP) >= BAND
            low, high = (round(255 * d) for d in DARK)
            gains[dark] = self._random.integers(low, high + 1, (int(dark.sum()), 1, 1), dtype=np.uint8)
            self._gains = np.ascontiguousarray(np.broadcast_to(gains, (rows, width, 3)))
        return self._gains
