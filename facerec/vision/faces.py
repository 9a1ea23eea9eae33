"""Finding faces in an upright photo and describing each as a 128-D dlib descriptor."""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import dlib
import numpy as np

from .boxes import Box, iou
from .images import (
    HOG_WINDOW_PX,
    MAX_IMAGE_PIXELS,
    ImageError,
    Photo,
    at_working_scale,
    cheap_to_scan,
    decode_image,
    working_scale,
)
from .proposals import MIN_LONG_SIDE, Proposal, Proposer
from .thumbnails import face_thumbnail
from .windows import (
    MAX_WINDOW_FACE_PX,
    MIN_PROPOSED_SHARE,
    Placement,
    Window,
    dlib_rect,
    proposal_window,
    window_around,
)

log = logging.getLogger(__name__)

MODEL_FILES = {
    5: "shape_predictor_5_face_landmarks.dat",  # CC0
    68: "shape_predictor_68_face_landmarks.dat",  # iBUG 300-W training data: no commercial use
    "encoder": "dlib_face_recognition_resnet_model_v1.dat",  # CC0
}


@dataclass
class Face:
    box: Box  # upright, full-resolution pixels, clamped to the photo
    landmarks: list[list[int]]  # [[x, y], ...] upright, full-resolution pixels
    descriptor: np.ndarray | None  # 128 float32; None when not described (find_frame_faces)
    thumbnail: bytes | None  # a small aligned JPEG of the face (thumbnails.py); None when not described
    quality: float | None  # 0..1, how good a picture of the face it is (thumbnails.py); None when not described
    detector: str = "hog"  # how it was found: one of FOUND_BY


DETECTORS = ("proposals", "hog")
# How a face was found: HOG accepted it ("hog"), YuNet alone was sure of it ("cnn", SURE_SCORE), or a
# person drew its box ("manual", describe_boxes).
FOUND_BY = ("hog", "cnn", "manual")
# A proposal scoring this much is a face even where HOG turns it down (a hat brim, a turned head, stage
# light): docs/detection.md gives the share of YuNet's proposals at each score that are faces.
SURE_SCORE = 0.9
# A window's image pyramid never lines up with the whole image's, so a face that scores just above
# HOG's threshold 0 there may score just below it in the window: accept slightly less there.
WINDOW_THRESHOLD = -0.1
# dlib measures a face by its pyramid level, in steps of 6/5, and a window's pyramid lines up with the
# whole image's at another phase: the same face may measure one step smaller there. So a window keeps a
# face of 5/6 of MIN_FACE_PX or more.
MIN_WINDOW_SIZE_SHARE = 5 / 6
# When the windows would scan more than this share of the pixels of the whole scan (a photo of many
# faces), the whole scan costs no more and misses nothing YuNet did not propose.
MAX_WINDOW_SHARE = 0.5
# A video frame is searched for faces of this many pixels or more unless the caller says otherwise, and
# YuNet looks at it reduced as far as that allows (a frame's faces are followed from frame to frame,
# so one missed in one frame is found in the next).
FRAME_MIN_FACE_PX = 40
FRAME_PROPOSAL_LONG_SIDE = 0
# A face whose box overlaps a known face's box (found in an earlier frame) by more than this is that face.
KNOWN_IOU = 0.3
# Two scans of one photo found the same face when their boxes overlap by more than this: one face's boxes
# from two scales overlap by 0.6 to 0.9, two faces' boxes hardly ever by 0.3.
SAME_FACE_IOU = 0.3


class Models:
    """dlib's HOG detector, a landmark predictor, the ResNet encoder and YuNet's proposer, loaded once
    per worker (or per thread: dlib's objects are not shared between threads)."""

    def __init__(self, models_dir: str | None = None, landmarks: int = 5) -> None:
        if landmarks not in (5, 68):
            raise ValueError(f"LANDMARKS must be 5 or 68, not {landmarks!r}")
        models_dir = models_dir or default_models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(os.path.join(models_dir, MODEL_FILES[landmarks]))
        self.encoder = dlib.face_recognition_model_v1(os.path.join(models_dir, MODEL_FILES["encoder"]))
        self.proposer = Proposer()
        self.build = dlib_build()
        log.info("models loaded from %s (%d-point landmarks); dlib %s", models_dir, landmarks, self.build)


def default_models_dir() -> str:
    """The model folder of the face-recognition-models package, found by path: its helper functions
    import pkg_resources, which newer setuptools no longer ships."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("no models: set FACEREC_MODELS_DIR or install face-recognition-models")
    return os.path.join(os.path.dirname(spec.origin), "models")


def dlib_build() -> str:
    blas = "with BLAS" if getattr(dlib, "DLIB_USE_BLAS", False) else "without BLAS (slow encoding)"
    return f"{dlib.__version__} {blas}"


def analyse_photo(
    models: "Models",
    data: bytes,
    min_face_px: float = 100,
    max_pixels: int = MAX_IMAGE_PIXELS,
    small_face_px: float | None = None,
    detector: str = "proposals",
    sure_score: float = SURE_SCORE,
) -> tuple[Photo, list[Face]]:
    """decode → detect → align → encode: the whole pipeline for one uploaded photo.

    `detector` "proposals": HOG confirms YuNet's proposals in small windows; the whole scan where that
    costs little (a small photo, see images.face_floor) or no less (many faces); either way a proposal
    scoring `sure_score` or more is a face although HOG turns it down. "hog": HOG's whole scan alone.
    Returns (Photo, [Face]) with boxes and landmarks in the upright photo's full-resolution pixels.
    """
    photo = decode_image(data, min_face_px, max_pixels, small_face_px, exact=False)
    if detector == "proposals" and not cheap_to_scan(photo):
        faces = find_proposed_faces(models, photo.pixels, photo.scale, photo.min_face_px, sure_score=sure_score)
        if faces is not None:
            return photo, faces
    photo = at_working_scale(photo)
    faces = find_faces(models, photo.pixels, 0, photo.scale, photo.min_face_px)
    if photo.min_face_px < min_face_px:
        faces += find_faces_lost_to_the_small_scan(models, photo, min_face_px, faces)
    if detector == "proposals":
        faces += find_sure_faces(models, photo.pixels, photo.scale, photo.min_face_px, faces, sure_score)
    return photo, faces


def find_faces_lost_to_the_small_scan(
    models: "Models", photo: Photo, min_face_px: float, found: list[Face]
) -> list[Face]:
    """The faces of `min_face_px` or more that HOG's scan at that size finds in a small photo scanned for
    smaller faces (photo.min_face_px, at a larger scale), and that none of the `found` faces is.

    dlib's HOG measures a face in a pyramid of 5/6 steps, and a face cut by the photo's edge may be found
    at one scale and lost at another: a 224 px face cut by the top of a 780×438 photo was lost by the scan
    for 40 px faces (the photo enlarged 1.9×) and found by the scan for 100 px faces (0.8×). So the search
    for small faces adds to the search any photo gets; it costs a small photo 0.64 of its pixels more of HOG.
    """
    scale = working_scale(min_face_px, photo.width, photo.height)
    size = (max(1, int(photo.width * scale)), max(1, int(photo.height * scale)))
    pixels = cv2.resize(photo.pixels, size, interpolation=cv2.INTER_AREA)
    to_photo = Placement(0.0, 0.0, photo.width / size[0], photo.height / size[1], photo.width, photo.height)
    rects = [r for r in models.detector.run(pixels, 0, 0.0)[0] if to_photo.side(r) >= min_face_px]
    lost = [r for r in rects if all(iou(to_photo.box(r), f.box) <= SAME_FACE_IOU for f in found)]
    return [_described(models, pixels, r, to_photo, "hog") for r in lost]


def describe_boxes(
    models: "Models", data: bytes, boxes: list[Box], max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[Photo, list[Face]]:
    """The faces in `boxes` (upright full-resolution pixels, as Face.box) of the photo `data`, one per box
    whether a detector finds a face there or not: landmarks found inside each box, described as any face,
    `detector` "manual". ImageError for a box that reaches past the photo."""
    # Decoded at the scale that shows the smallest box at MAX_WINDOW_FACE_PX, never enlarged.
    smallest = min((max(box.width, box.height) for box in boxes), default=HOG_WINDOW_PX)
    photo = decode_image(data, max(HOG_WINDOW_PX, smallest * HOG_WINDOW_PX / MAX_WINDOW_FACE_PX), max_pixels)
    for box in boxes:
        if box.right > photo.width or box.bottom > photo.height:
            raise ImageError(
                f"box {','.join(map(str, box.to_json().values()))} reaches past the {photo.width}×{photo.height} photo"
            )
    # Each face keeps the box as drawn (its window's rounding would move it by a pixel or two).
    return photo, [replace(describe_box(models, photo.pixels, box, photo.scale, "manual"), box=box) for box in boxes]


def describe_box(
    models: "Models", pixels: np.ndarray, box: Box, scale: tuple[float, float], detector: str, describe: bool = True
) -> Face:
    """The face whose box (dlib's convention, photo pixels) is `box`, in `pixels` (upright RGB, `scale`
    photo pixels per pixel): landmarks by dlib's predictor inside the box, the descriptor and thumbnail
    (unless `describe` is False) from a window around it in which the face measures at most
    MAX_WINDOW_FACE_PX, as a window holds a face HOG confirms."""
    sx, sy = scale
    # Placement.box spans left..right of a dlib rectangle: its right is the box's left + width.
    rect = dlib.rectangle(round(box.left / sx), round(box.top / sy), round(box.right / sx), round(box.bottom / sy))
    height, width = pixels.shape[:2]
    window = window_around(rect, width, height)
    image = window.image(pixels)
    to_photo = window.placement(image, scale, width, height)
    return _described(models, image, window.within(rect, image), to_photo, detector, describe)


def find_frame_faces(
    models: "Models",
    bgr_frame: np.ndarray,
    min_face_px: float = FRAME_MIN_FACE_PX,
    describe: bool = True,
    known: Sequence[Box] = (),
    threshold: float = 0.0,
    sure_score: float = SURE_SCORE,
) -> list[Face]:
    """Every face of `min_face_px` or more in one video frame: a BGR uint8 array, as OpenCV's
    VideoCapture gives it. Boxes and landmarks are in the frame's pixels.

    Nothing a photo needs and a frame does not: no header, EXIF or hash. `describe` False leaves
    descriptor, thumbnail and quality None. `known`: the boxes of faces the caller follows,
    found in the frame before. A face overlapping one of them (IoU over KNOWN_IOU) is that face: it is
    not described again, and where YuNet proposes it HOG does not look again (HOG confirmed it when it
    appeared), so its box is YuNet's, set to dlib's proportions. `threshold` is added to HOG's: below 0
    more faces are found, and more that are none (what a privacy filter prefers). A proposal scoring
    `sure_score` or more is a face although HOG turns it down, as in a photo.
    Not thread-safe: each thread needs its own Models.
    """
    rgb = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2RGB)
    faces = find_proposed_faces(
        models, rgb, (1.0, 1.0), min_face_px, describe, FRAME_PROPOSAL_LONG_SIDE, known, threshold, sure_score
    )
    if faces is not None:
        return faces
    height, width = rgb.shape[:2]
    working = working_scale(min_face_px, width, height)
    size = (max(1, int(width * working)), max(1, int(height * working)))
    pixels = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if working < 1 else cv2.INTER_LINEAR)
    scale = (width / size[0], height / size[1])
    faces = find_faces(models, pixels, 0, scale, min_face_px, describe, known, threshold)
    return faces + find_sure_faces(models, pixels, scale, min_face_px, faces, sure_score, describe, known)


def find_faces(
    models: "Models",
    pixels: np.ndarray,
    upsample: int = 0,
    scale: tuple[float, float] = (1.0, 1.0),
    min_face_px: float = 0,
    describe: bool = True,
    known: Sequence[Box] = (),
    threshold: float = 0.0,
) -> list[Face]:
    """Every face in `pixels` (upright RGB) by HOG's whole scan (`threshold` added to HOG's), described
    and pictured unless it overlaps one of the `known` boxes (see find_frame_faces); boxes and landmarks
    scaled by `scale`.

    All faces of the photo are encoded in one call to the encoder.
    """
    to_photo = Placement(0.0, 0.0, *scale, pixels.shape[1] * scale[0], pixels.shape[0] * scale[1])
    rects = [r for r in models.detector.run(pixels, upsample, threshold)[0] if to_photo.side(r) >= min_face_px]
    shapes = [models.predictor(pixels, r) for r in rects]
    new = [describe and not _is_known(to_photo.box(r), known) for r in rects]
    to_describe = dlib.full_object_detections([shape for shape, n in zip(shapes, new) if n])
    descriptors = iter(models.encoder.compute_face_descriptor(pixels, to_describe) if any(new) else [])
    return [
        _face(pixels, r, shape, next(descriptors) if n else None, to_photo) for r, shape, n in zip(rects, shapes, new)
    ]


def find_proposed_faces(
    models: "Models",
    pixels: np.ndarray,
    scale: tuple[float, float],
    min_face_px: float,
    describe: bool = True,
    min_long_side: int = MIN_LONG_SIDE,
    known: Sequence[Box] = (),
    threshold: float = 0.0,
    sure_score: float = SURE_SCORE,
) -> list[Face] | None:
    """The faces of `min_face_px` or more (photo pixels) in `pixels` (upright RGB, `scale` photo pixels
    per pixel) that HOG confirms (`threshold` added to its own) around YuNet's proposals, and those it
    turns down where YuNet scores `sure_score` or more ("cnn", after HOG's); None when the windows would
    scan as many pixels as the whole scan would (then that is the better search). A proposal of a face
    of the `known` boxes is kept without HOG's look, and no face of them is described (see find_frame_faces).
    """
    height, width = pixels.shape[:2]
    wanted = min_face_px / max(scale)  # in pixels
    whole = Placement(0.0, 0.0, *scale, width * scale[0], height * scale[1])
    # dlib's rectangles are Any (dlib has no stubs).
    found: list[tuple[Any, np.ndarray, Placement, str]] = []
    windows: list[Window] = []  # found: (rect, image, its placement), followed faces first
    for proposal in models.proposer.propose(pixels, wanted, min_long_side):
        rect = dlib_rect(proposal)
        if known and whole.side(rect) >= MIN_WINDOW_SIZE_SHARE * min_face_px and _is_known(whole.box(rect), known):
            found.append((rect, pixels, whole, "hog"))
        elif window := proposal_window(proposal, wanted, width, height):
            windows.append(window)
    whole_scan = width * height * (HOG_WINDOW_PX / wanted) ** 2
    if sum(w.pixels for w in windows) > MAX_WINDOW_SHARE * whole_scan:
        return None
    confirmed: list[tuple[float, Any, np.ndarray, Placement]] = []
    sure: list[tuple[Any, np.ndarray, Placement, str]] = []
    for window in windows:
        image = window.image(pixels)
        to_photo = window.placement(image, scale, width, height)
        candidates = [
            (score, rect)
            for rect, score in zip(*models.detector.run(image, 0, WINDOW_THRESHOLD + threshold)[:2])
            if to_photo.side(rect) >= MIN_WINDOW_SIZE_SHARE * min_face_px and window.holds(rect, image)
        ]
        if candidates:
            score, rect = max(candidates, key=lambda c: c[0])
            confirmed.append((score, rect, image, to_photo))
        elif is_sure(window.proposal[4], sure_score):
            rect = window.within(dlib_rect(window.proposal), image)
            if to_photo.side(rect) >= MIN_PROPOSED_SHARE * min_face_px:
                sure.append((rect, image, to_photo, "cnn"))
    found += [(rect, image, to_photo, "hog") for _, rect, image, to_photo in sorted(confirmed, key=lambda f: -f[0])]
    faces: list[Face] = []
    boxes: list[Box] = []
    for rect, image, to_photo, detector in found + sure:
        box = to_photo.box(rect)
        if all(iou(box, other) < 0.5 for other in boxes):  # two proposals of one face
            boxes.append(box)
            faces.append(_described(models, image, rect, to_photo, detector, describe and not _is_known(box, known)))
    return faces


def find_sure_faces(
    models: "Models",
    pixels: np.ndarray,
    scale: tuple[float, float],
    min_face_px: float,
    found: list[Face],
    sure_score: float = SURE_SCORE,
    describe: bool = True,
    known: Sequence[Box] = (),
) -> list[Face]:
    """The faces YuNet proposes at `sure_score` or more in `pixels` (upright RGB, `scale` photo pixels
    per pixel) that none of the `found` faces is (none has its centre in the proposal): faces HOG's whole
    scan turned down, "cnn". Described unless `describe` is False or the face is one of `known`."""
    height, width = pixels.shape[:2]
    wanted = min_face_px / max(scale)
    whole = Placement(0.0, 0.0, *scale, width * scale[0], height * scale[1])
    faces: list[Face] = []
    for proposal in models.proposer.propose(pixels, wanted):
        if not is_sure(proposal[4], sure_score) or any(_centre_in(f.box, proposal, scale) for f in found + faces):
            continue
        rect = dlib_rect(proposal)
        if whole.side(rect) >= MIN_PROPOSED_SHARE * min_face_px:
            box = whole.box(rect)
            faces.append(describe_box(models, pixels, box, scale, "cnn", describe and not _is_known(box, known)))
    return faces


def is_sure(score: float, sure_score: float) -> bool:
    """Whether YuNet is sure enough of a proposal for it to be a face without HOG: never at `sure_score` 1
    (YuNet's scores saturate at 1)."""
    return sure_score < 1 and score >= sure_score


def _centre_in(box: Box, proposal: Proposal, scale: tuple[float, float]) -> bool:
    """Whether a face's box (photo pixels) has its centre in a proposal (image pixels)."""
    x, y, w, h, _ = proposal
    cx, cy = (box.left + box.width / 2) / scale[0], (box.top + box.height / 2) / scale[1]
    return x <= cx <= x + w and y <= cy <= y + h


def _described(
    models: Models, image: np.ndarray, rect: Any, to_photo: Placement, detector: str, describe: bool = True
) -> Face:
    """The face in `rect` of `image`: landmarks, and unless `describe` is False, descriptor and thumbnail."""
    shape = models.predictor(image, rect)
    descriptor = models.encoder.compute_face_descriptor(image, shape) if describe else None
    return _face(image, rect, shape, descriptor, to_photo, detector)


def _is_known(box: Box, known: Sequence[Box]) -> bool:
    return any(iou(box, other) > KNOWN_IOU for other in known)


def _face(
    pixels: np.ndarray, rect: Any, shape: Any, descriptor: Any, to_photo: Placement, detector: str = "hog"
) -> Face:
    if descriptor is None:
        thumbnail = quality = None
    else:
        thumbnail, quality = face_thumbnail(pixels, shape, to_photo.side(rect))
        descriptor = np.asarray(descriptor, dtype=np.float32)
    points = [to_photo.point(p) for p in shape.parts()]
    return Face(to_photo.box(rect), points, descriptor, thumbnail, quality, detector)
