"""Background filters of a stream's or a call's video: the person cut out by the segmentation mask
(facerec/vision/segmentation.py) and put over a blurred copy of the frame, a colour or a picture, or
turned into a "hologram" (seed 003: a colour map, scan lines and ghosts) over one of those.

Run in the stream's process (reader.py, call.py) on each frame that goes out, before the faces are
drawn: boxes, names and privacy blurs go on top of the composite, where the face is the source's own
pixels (it is part of the person).
"""

import cv2
import numpy as np

from facerec.vision.segmentation import Segmenter

FILTERS = (None, "background-blur", "background-replace", "hologram")
# The background blur: the frame shrunk 12 times, blurred and enlarged again; at 640x360 that leaves
# nothing finer than ~25 px (a face in the background is a blob), at a fraction of a big kernel's cost.
BLUR_SHRINK = 12
# Hologram: scan lines of BAND bright and GAP dark rows out of each BAND + GAP, the dark ones at
# 10-30 % (new each frame: they shimmer), and two ghosts offset by 1/128 of the width each way.
BAND, GAP = 3, 2
GHOST_SHIFT = 1 / 128


class Backdrop:
    """One video's background filter. `kind` is one of FILTERS; `background` what goes behind the
    person: None (the frame blurred), ("colour", (b, g, r)) or ("image", path of a stored picture)."""

    def __init__(self, kind: str | None = None, background: tuple | None = None, segmenter: Segmenter | None = None):
        self.kind, self.background = kind, background
        self._segmenter = segmenter
        self._picture: tuple | None = None  # ((height, width), background, the background at that size)
        self._random = np.random.default_rng()

    def set(self, kind: str | None, background: tuple | None) -> None:
        self.kind, self.background = kind, background

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The frame with its background filtered: a new array, or `frame` itself when there is no filter."""
        if self.kind is None:
            return frame
        if self._segmenter is None:  # the model is loaded with the first filtered frame, not before
            self._segmenter = Segmenter()
        mask = self._segmenter.mask(frame)
        person = hologram(frame, self._random) if self.kind == "hologram" else frame
        if self.kind == "background-blur" or self.background is None:
            behind = blurred_background(frame)
        else:
            behind = self._behind(frame.shape[:2])
        return blend(person, behind, mask)

    def _behind(self, size: tuple) -> np.ndarray:
        """The background at the frame's size, made once for each size and background."""
        assert self.background is not None  # apply() blurs the frame instead
        kind, value = self.background
        if self._picture is None or self._picture[:2] != (size, self.background):
            made = np.full((*size, 3), value, np.uint8) if kind == "colour" else fitted(cv2.imread(value), size)
            self._picture = (size, self.background, made)
        return self._picture[2]


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


def hologram(frame: np.ndarray, random: np.random.Generator) -> np.ndarray:
    """Seed 003's hologram: the frame in a blue-green colour map, with scan lines and two ghosts,
    over half of the frame itself (so that the person stays recognisable)."""
    holo = cv2.applyColorMap(frame, cv2.COLORMAP_WINTER)
    rows = np.arange(frame.shape[0]) % (BAND + GAP) >= BAND
    dark = holo[rows].astype(np.float32) * random.uniform(0.1, 0.3, (int(rows.sum()), 1, 1)).astype(np.float32)
    holo[rows] = dark.astype(np.uint8)
    shift = max(1, round(frame.shape[1] * GHOST_SHIFT))
    ghosts = cv2.addWeighted(holo, 0.2, shifted(holo, shift), 0.8, 0)
    ghosts = cv2.addWeighted(ghosts, 0.4, shifted(holo, -shift), 0.6, 0)
    return cv2.addWeighted(frame, 0.5, ghosts, 0.6, 0)


def shifted(image: np.ndarray, by: int) -> np.ndarray:
    """The image moved `by` pixels right and down (left and up when negative), its edge repeated."""
    matrix = np.array([[1, 0, by], [0, 1, by]], np.float32)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
