"""Where HOG looks for a face YuNet proposes: a square window around the proposal, zoomed so that the face
is about as small as HOG can still find (a cheap look); and where a window's, or a reduced image's,
pixels lie in the photo (`Placement`)."""

from dataclasses import dataclass
from typing import Any

import cv2
import dlib
import numpy as np

from .boxes import Box
from .images import HOG_WINDOW_PX
from .proposals import Proposal

# dlib's box is about 1.075 times as wide as YuNet's, and its centre lies lower by 0.07 of YuNet's width
# (YuNet's box reaches higher up the forehead).
DLIB_PER_PROPOSED_WIDTH = 1.075
DLIB_CENTRE_BELOW = 0.07
# HOG looks for a proposed face in a square window this many times its expected size, around its centre.
WINDOW_FACES = 2.0
# A face larger than this in the window is shrunk to it first: HOG's 80 px window still finds it, for
# a fraction of the cost, and the encoder's 150 px chip still gets about as many pixels as it shows.
MAX_WINDOW_FACE_PX = 110
# A proposal whose face would be less than this share of the smallest face wanted holds no face to keep;
# a face YuNet is sure of counts from this size (24 px on a small photo): YuNet proposes faces from 16 px,
# and on celeb5's small web photos 3 of the 4 faces HOG never found measured 26-31 px (docs/detection.md).
MIN_PROPOSED_SHARE = 0.6


def dlib_rect(proposal: Proposal) -> Any:
    """Where dlib's detector would put its box around a face YuNet proposes (image pixels)."""
    x, y, w, h, _ = proposal
    side = DLIB_PER_PROPOSED_WIDTH * w
    left, top = x + (w - side) / 2, y + h / 2 + DLIB_CENTRE_BELOW * w - side / 2
    return dlib.rectangle(round(left), round(top), round(left + side) - 1, round(top + side) - 1)


@dataclass
class Window:
    """The square around a proposed face where HOG looks for it, in the image's pixels, and how much it
    is zoomed for HOG (window pixels per image pixel)."""

    left: int
    top: int
    right: int
    bottom: int
    zoom: float
    proposal: Proposal  # (left, top, width, height, score), image pixels

    @property
    def pixels(self) -> float:
        return (self.right - self.left) * (self.bottom - self.top) * self.zoom**2

    def image(self, pixels: np.ndarray) -> np.ndarray:
        crop = pixels[self.top : self.bottom, self.left : self.right]
        if self.zoom == 1:
            return np.ascontiguousarray(crop)
        size = (max(1, round(crop.shape[1] * self.zoom)), max(1, round(crop.shape[0] * self.zoom)))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if self.zoom < 1 else cv2.INTER_LINEAR)

    def placement(self, image: np.ndarray, scale: tuple[float, float], width: int, height: int) -> "Placement":
        sx = (self.right - self.left) / image.shape[1]
        sy = (self.bottom - self.top) / image.shape[0]
        return Placement(
            self.left * scale[0], self.top * scale[1], sx * scale[0], sy * scale[1], width * scale[0], height * scale[1]
        )

    def within(self, rect: Any, image: np.ndarray) -> Any:
        """An image's rectangle in the window's zoomed pixels."""
        zx = image.shape[1] / (self.right - self.left)
        zy = image.shape[0] / (self.bottom - self.top)
        return dlib.rectangle(
            round((rect.left() - self.left) * zx),
            round((rect.top() - self.top) * zy),
            round((rect.right() - self.left) * zx),
            round((rect.bottom() - self.top) * zy),
        )

    def holds(self, rect: Any, image: np.ndarray) -> bool:
        """Whether a detection is the proposed face: its centre lies inside the proposal's box."""
        x, y, w, h, _ = self.proposal
        zx = image.shape[1] / (self.right - self.left)
        zy = image.shape[0] / (self.bottom - self.top)
        cx, cy = self.left + rect.center().x / zx, self.top + rect.center().y / zy
        return x <= cx <= x + w and y <= cy <= y + h


def proposal_window(proposal: Proposal, wanted: float, width: int, height: int) -> Window | None:
    """The window for one proposal (image pixels); None when it cannot hold a face of `wanted` pixels."""
    x, y, w, h, _ = proposal
    expected = DLIB_PER_PROPOSED_WIDTH * w
    if expected < MIN_PROPOSED_SHARE * wanted:
        return None
    zoom = min(HOG_WINDOW_PX / wanted, MAX_WINDOW_FACE_PX / expected)
    # YuNet may see a face smaller than dlib does: the window holds at least the smallest face wanted.
    return _square(x + w / 2, y + h / 2, WINDOW_FACES * max(expected, wanted) / 2, zoom, proposal, width, height)


def window_around(rect: Any, width: int, height: int) -> Window:
    """The window of a face whose box is `rect` (image pixels), zoomed out to MAX_WINDOW_FACE_PX."""
    side = max(rect.width(), rect.height())
    proposal = (rect.left(), rect.top(), rect.width(), rect.height(), 1.0)
    centre = rect.dcenter()
    window = _square(
        centre.x, centre.y, WINDOW_FACES * side / 2, min(1.0, MAX_WINDOW_FACE_PX / side), proposal, width, height
    )
    assert window is not None, "a face's box within the image has pixels around it"
    return window


def _square(
    cx: float, cy: float, half: float, zoom: float, proposal: Proposal, width: int, height: int
) -> Window | None:
    """The window of the square of `half` its side around (cx, cy), within the image; None if empty."""
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    if right - left < 1 or bottom - top < 1:
        return None
    return Window(left, top, right, bottom, zoom, proposal)


@dataclass
class Placement:
    """Where an image's pixels lie in the photo: photo x = left + x · sx (y likewise); the photo's size."""

    left: float
    top: float
    sx: float
    sy: float
    width: float
    height: float

    def side(self, rect: Any) -> float:
        """A detection's size in photo pixels."""
        return max(rect.width() * self.sx, rect.height() * self.sy)

    def box(self, rect: Any) -> Box:
        # dlib's rectangles may reach past the edges for a face cut by them; clamp as face_recognition does.
        left = max(self.left + rect.left() * self.sx, 0)
        top = max(self.top + rect.top() * self.sy, 0)
        right = min(self.left + rect.right() * self.sx, self.width)
        bottom = min(self.top + rect.bottom() * self.sy, self.height)
        return Box(round(left), round(top), round(right - left), round(bottom - top))

    def point(self, p: Any) -> list[int]:
        return [round(self.left + p.x * self.sx), round(self.top + p.y * self.sy)]
