"""The one box convention: a face's box is `Box(left, top, width, height)` in whole pixels of the upright
image (the picture as a person sees it, EXIF orientation applied), left/top inclusive, so that
right = left + width is the first column past the box. On the wire it is the JSON object
{"left", "top", "width", "height"} (`to_json`, `from_json`); dlib's rectangles, YuNet's (x, y, w, h)
proposals and OpenCV's corner pairs become a Box where they enter, never travel further."""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def area(self) -> int:
        return self.width * self.height

    @classmethod
    def from_corners(cls, left: float, top: float, right: float, bottom: float) -> "Box":
        """The box from its top-left corner to the first column and row past it, rounded to pixels."""
        left, top = round(left), round(top)
        return cls(left, top, round(right) - left, round(bottom) - top)

    @classmethod
    def from_json(cls, value: Mapping) -> "Box":
        return cls(int(value["left"]), int(value["top"]), int(value["width"]), int(value["height"]))

    def to_json(self) -> dict:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}

    def corners(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), as OpenCV draws and crops."""
        return self.left, self.top, self.right, self.bottom

    def scaled(self, factor: float) -> "Box":
        """The same box in an image `factor` times as large."""
        return Box.from_corners(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def clamped(self, width: int, height: int) -> "Box":
        """The part of the box inside an image of `width` x `height` pixels."""
        return Box.from_corners(max(self.left, 0), max(self.top, 0), min(self.right, width), min(self.bottom, height))


def iou(a: Box, b: Box) -> float:
    """Intersection over union: 1 for the same box, 0 for boxes that do not overlap."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)
