"""Real photos and descriptors for the tests: shared/data/faces (FACEREC_SHARED points elsewhere), a
photo stored turned with its EXIF orientation, and random descriptors at exact distances."""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "data" / "faces"
FR_IMAGES = FACES / "face_recognition_test_images"
CLIP = SHARED / "data" / "video" / "short_hamilton_clip.mp4"  # 640x360, 30 fps, 9 s: a performer, an audience


def photo(relative):
    """The bytes of a real photo under shared/data/faces."""
    return (FACES / relative).read_bytes()


def with_orientation(data, orientation):
    """The same photo stored turned, with the EXIF orientation that makes it upright again."""
    # Pillow's transpose methods that undo each orientation, applied in reverse to store it turned.
    undo = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    image = Image.open(io.BytesIO(data))
    stored = image.transpose(undo[orientation]) if orientation != 1 else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


# People tests: a few labelled photos per person, described once per session (a few seconds of dlib).
# These web photos are small: their faces are found with MIN_FACE_PX 40 (docs/detection.md).
PEOPLE_MIN_FACE_PX = 40
PEOPLE_PHOTOS = {
    "ben": [f"celeb5/Ben_Afflek/{n}.jpg" for n in (1, 2, 4, 5, 6, 8)],
    "elton": [f"celeb5/Elton_John/{n}.jpg" for n in (2, 3, 4, 6, 8, 15)],
    "madonna": [f"celeb5/Madonna/{n}.jpg" for n in (1, 2, 3, 4, 5, 6)],
}


BOX = {"left": 10, "top": 20, "width": 100, "height": 110}


def descriptors(n, seed=0):
    # dlib descriptors are about 1.4 long; these random ones are too, and far apart from each other.
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True) * 1.4


def near(v, distance, seed=1):
    """A descriptor exactly `distance` (to float32 precision) away from v."""
    step = np.random.default_rng(seed).normal(size=128)
    return (v + step / np.linalg.norm(step) * distance).astype(np.float32)
