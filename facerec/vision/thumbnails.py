"""A small aligned picture of each face, and a score of how good a picture of the face it is.

Both come from the working-scale pixels and dlib's landmarks, so the people page can show a face
without the original photo, and choose the best of a person's faces as the cover.
"""

from typing import Any

import cv2
import dlib
import numpy as np

# The largest thumbnail made; the store refuses larger ones (its THUMBNAIL_MAX_BYTES, the same number:
# tests/test_thumbnails.py checks they agree).
THUMBNAIL_MAX_BYTES = 8 * 1024

# 112 px a side: a face in a grid of people, and twice that on a high-density screen, still reads.
SIZE_PX = 112
# dlib's default: a quarter of the face's size around it, so the hair and chin are in the picture.
PADDING = 0.25
# JPEG qualities tried in turn until the thumbnail fits THUMBNAIL_MAX_BYTES. At 85, the 130 faces of
# shared/data/faces we measured take 2.1 to 4.0 KB (median 2.9 KB); only a picture far busier than a
# face needs less: 112 px of pure noise takes 10 KB at 85, 7.6 KB at 70 and 3.7 KB at 25.
JPEG_QUALITIES = (85, 70, 55, 40, 25)
# A face of this many pixels or more in the full-resolution photo scores full marks for size: twice the
# smallest face looked for by default (MIN_FACE_PX 100), the size at which a 112 px thumbnail is made
# from more pixels than it shows.
FULL_SIZE_PX = 200
# Sharpness is the variance of the Laplacian of the grey thumbnail, v, scored v / (v + SHARP_VARIANCE):
# a half mark at 50. The thumbnails of 130 faces of shared/data/faces measure 14 to 700 (median 68);
# the same photos blurred by a Gaussian of sigma 2 (a face slightly out of focus), median 10.
SHARP_VARIANCE = 50.0
# Lighting, from the face's middle (the central half of the grey thumbnail, inside the face at dlib's
# padding): its shadows, the 5th percentile p, (p + 1) / SHADOW_LEVEL up to 1 (a face whose darkest
# twentieth is under 30 of 255 is in shadow or underexposed), and its evenness, 1 − |mean of the left half
# − mean of the right half| / UNEVEN_LEVEL (a face lit from one side), each scored from LIGHTING_FLOOR
# (at worst) to 1. Over the 1,083 labelled faces of shared/data/faces whose person has 5 faces or more,
# a face lies 0.324 from its person's centre (median), the darkest twentieth by p 0.375, the most
# unevenly lit twentieth 0.350: worse, less so than the twentieth of lowest quality (0.41). With the
# term, quality ranks faces by that distance better on every set (rank correlation: celeb8 0.31 → 0.36,
# celeb5 0.36 → 0.39, lfw10 0.31 → 0.32, deepface_tests 0.15 → 0.21) and puts 8 more of the 1,111 faces
# under PEOPLE_LOW_QUALITY. Without the floor (each term down to 0) celeb8 reached 0.39, but lfw10 fell
# to 0.29 and 32 faces fell under it, which cost celeb5's re-cluster 0.992 → 0.963 (docs/api.md).
SHADOW_LEVEL = 30.0
UNEVEN_LEVEL = 150.0
LIGHTING_FLOOR = 0.5
# The eyes' corners and the bottom of the nose among each landmark model's points.
EYES_AND_NOSE = {5: ((0, 1), (2, 3), 4), 68: ((36, 39), (42, 45), 33)}


def face_thumbnail(pixels: np.ndarray, shape: Any, side_px: float) -> tuple[bytes, float]:
    """(JPEG bytes, quality 0..1) of the face whose landmarks are `shape` (a dlib detection) in `pixels`
    (upright RGB); `side_px` is the face's size in the full-resolution photo."""
    chip = dlib.get_face_chip(pixels, shape, size=SIZE_PX, padding=PADDING)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    quality = float(size_score(side_px) * sharpness_score(grey) * frontal_score(points) * lighting_score(grey))
    return encode_jpeg(chip), quality


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """The picture as a JPEG of at most THUMBNAIL_MAX_BYTES: the best of JPEG_QUALITIES that fits."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for quality in JPEG_QUALITIES:
        jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        if len(jpeg) <= THUMBNAIL_MAX_BYTES:
            return jpeg
    raise ValueError(f"a {rgb.shape[1]}×{rgb.shape[0]} picture does not fit {THUMBNAIL_MAX_BYTES} bytes as a JPEG")


def size_score(side_px: float) -> float:
    return min(1.0, side_px / FULL_SIZE_PX)


def sharpness_score(grey: np.ndarray) -> float:
    variance = cv2.Laplacian(grey, cv2.CV_64F).var()
    return variance / (variance + SHARP_VARIANCE)


def lighting_score(grey: np.ndarray) -> float:
    """1 for a face lit evenly and well, down to LIGHTING_FLOOR² for a face in deep shadow and lit from one
    side (SHADOW_LEVEL, UNEVEN_LEVEL), from the middle half of its grey thumbnail."""
    side = grey.shape[0]
    middle = grey[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4].astype(np.float32)
    half = middle.shape[1] // 2
    shadows = min(1.0, (float(np.percentile(middle, 5)) + 1) / SHADOW_LEVEL)
    evenness = max(0.0, 1.0 - abs(float(middle[:, :half].mean() - middle[:, half:].mean())) / UNEVEN_LEVEL)
    return float(np.prod([LIGHTING_FLOOR + (1 - LIGHTING_FLOOR) * term for term in (shadows, evenness)]))


def frontal_score(points: np.ndarray) -> float:
    """1 for a face seen from the front, falling to 0 as it turns away: how far the nose lies from the
    middle of the eyes, along the line through them, in eye distances (0.5 = below one eye)."""
    (a, b), (c, d), nose = EYES_AND_NOSE[len(points)]
    eye1, eye2 = (points[a] + points[b]) / 2, (points[c] + points[d]) / 2
    axis = eye2 - eye1
    offset = (points[nose] - (eye1 + eye2) / 2) @ axis / (axis @ axis)
    return max(0.0, 1.0 - 2.0 * abs(offset))
