"""Photos without people (tests/photos/no_people/README.md) and 200 views cut from them."""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

FOLDER = Path(__file__).resolve().parents[1] / "photos" / "no_people"


def no_people_photos() -> list[Path]:
    """The 20 photos, by name."""
    return sorted(FOLDER.glob("*.jpg"))


def no_people_views(photos: list[Path] | None = None) -> Iterator[tuple[str, bytes]]:
    """(name/view, JPEG bytes) of 10 views of each photo (default: all 20): a face-like pattern is looked
    for at every size a face may take, on small photos (whole scan) and over 1 MP (proposals) alike."""
    for path in no_people_photos() if photos is None else photos:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for view, pixels in views_of(image):
            yield f"{path.stem}/{view}", cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def views_of(image: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    height, width = image.shape[:2]
    yield "whole", image
    yield "mirrored", image[:, ::-1]
    yield "enlarged", cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
    yield "reduced", cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    yield "dark", cv2.convertScaleAbs(image, alpha=0.5)
    yield "centre", cv2.resize(image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4], (width, height))
    for i, (top, left) in enumerate([(0, 0), (0, width // 2), (height // 2, 0), (height // 2, width // 2)]):
        quarter = image[top : top + height // 2, left : left + width // 2]
        yield f"quarter{i + 1}", cv2.resize(quarter, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
