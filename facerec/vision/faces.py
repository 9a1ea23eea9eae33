"""Finding faces in an upright photo and describing each as a 128-D dlib descriptor."""

import logging
import os
from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from .boxes import Box, iou
from .images import (
    HOG_WINDOW_PX,
    MAX_IMAGE_PIXELS,
    Photo,
    at_working_scale,
    cheap_to_scan,
    decode_image,
    working_scale,
)
from .proposals import MIN_LONG_SIDE, Proposer
from .thumbnails import face_thumbnail

log = logging.getLogger(__name__)

MODEL_FILES = {
    5: "shape_predictor_5_face_landmarks.dat",  # CC0
    68: "shape_predictor_68_face_landmarks.dat",  # iBUG 300-W training data: no commercial use
    "encoder": "dlib_face_recognition_resnet_model_v1.dat",  # CC0
}


@dataclass
class Face:
    box: Box  # upright, full-resolution pixels, clamped to the photo
    landmarks: list  # [[x, y], ...] upright, full-resolution pixels
    descriptor: np.ndarray  # 128 float32; None when not described (find_frame_faces)
    thumbnail: bytes  # a small aligned JPEG of the face (thumbnails.py); None when not described
    quality: float  # 0..1, how good a picture of the face it is (thumbnails.py); None when not described


DETECTORS = ("proposals", "hog")
# dlib's box is about 1.075 times as wide as YuNet's, and its centre lies lower by 0.07 of YuNet's width
# (YuNet's box reaches higher up the forehead).
DLIB_PER_PROPOSED_WIDTH = 1.075
DLIB_CENTRE_BELOW = 0.07
# HOG looks for a proposed face in a square window this many times its expected size, around its centre.
WINDOW_FACES = 2.0
# A face larger than this in the window is shrunk to it first: HOG's 80 px window still finds it, for
# a fraction of the cost, and the encoder's 150 px chip still gets about as many pixels as it shows.
MAX_WINDOW_FACE_PX = 110
# A window's image pyramid never lines up with the whole image's, so a face that scores just above
# HOG's threshold 0 there may score just below it in the window: accept slightly less there.
WINDOW_THRESHOLD = -0.1
# dlib measures a face by its pyramid level, in steps of 6/5, and a window's pyramid lines up with the
# whole image's at another phase: the same face may measure one step smaller there. So a window keeps a
# face of 5/6 of MIN_FACE_PX or more.
MIN_WINDOW_SIZE_SHARE = 5 / 6
# A proposal whose face would be less than this share of the smallest face wanted holds no face to keep.
MIN_PROPOSED_SHARE = 0.6
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


class Models:
    """dlib's HOG detector, a landmark predictor, the ResNet encoder and YuNet's proposer, loaded once
    per worker (or per thread: dlib's objects are not shared between threads)."""

    def __init__(self, models_dir=None, landmarks=5):
        if landmarks not in (5, 68):
            raise ValueError(f"LANDMARKS must be 5 or 68, not {landmarks!r}")
        models_dir = models_dir or default_models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(os.path.join(models_dir, MODEL_FILES[landmarks]))
        self.encoder = dlib.face_recognition_model_v1(os.path.join(models_dir, MODEL_FILES["encoder"]))
        self.proposer = Proposer()
        self.build = dlib_build()
        log.info("models loaded from %s (%d-point landmarks); dlib %s", models_dir, landmarks, self.build)


def default_models_dir():
    """The model folder of the face-recognition-models package, found by path: its helper functions
    import pkg_resources, which newer setuptools no longer ships."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise RuntimeError("no models: set FACEREC_MODELS_DIR or install face-recognition-models")
    return os.path.join(os.path.dirname(spec.origin), "models")


def dlib_build():
    blas = "with BLAS" if getattr(dlib, "DLIB_USE_BLAS", False) else "without BLAS (slow encoding)"
    return f"{dlib.__version__} {blas}"


def analyse_photo(
    models: "Models",
    data: bytes,
    min_face_px: float = 100,
    max_pixels: int = MAX_IMAGE_PIXELS,
    small_face_px: float | None = None,
    detector: str = "proposals",
) -> tuple[Photo, list[Face]]:
    """decode → detect → align → encode: the whole pipeline for one uploaded photo.

    `detector` "proposals": HOG confirms YuNet's proposals in small windows; the whole scan where that
    costs little (a small photo, see images.face_floor) or no less (many faces). "hog": the whole scan.
    Returns (Photo, [Face]) with boxes and landmarks in the upright photo's full-resolution pixels.
    """
    photo = decode_image(data, min_face_px, max_pixels, small_face_px, exact=False)
    if detector == "proposals" and not cheap_to_scan(photo):
        faces = find_proposed_faces(models, photo.pixels, photo.scale, photo.min_face_px)
        if faces is not None:
            return photo, faces
    photo = at_working_scale(photo)
    return photo, find_faces(models, photo.pixels, 0, photo.scale, photo.min_face_px)


def find_frame_faces(
    models: "Models",
    bgr_frame: np.ndarray,
    min_face_px: float = FRAME_MIN_FACE_PX,
    describe: bool = True,
    known: list[Box] = (),
    threshold: float = 0.0,
) -> list[Face]:
    """Every face of `min_face_px` or more in one video frame: a BGR uint8 array, as OpenCV's
    VideoCapture gives it. Boxes and landmarks are in the frame's pixels.

    Nothing a photo needs and a frame does not: no header, EXIF or hash. `describe` False leaves
    descriptor, thumbnail and quality None. `known`: the boxes of faces the caller follows,
    found in the frame before. A face overlapping one of them (IoU over KNOWN_IOU) is that face: it is
    not described again, and where YuNet proposes it HOG does not look again (HOG confirmed it when it
    appeared), so its box is YuNet's, set to dlib's proportions. `threshold` is added to HOG's: below 0
    more faces are found, and more that are none (what a privacy filter prefers).
    Not thread-safe: each thread needs its own Models.
    """
    rgb = cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2RGB)
    faces = find_proposed_faces(
        models, rgb, (1.0, 1.0), min_face_px, describe, FRAME_PROPOSAL_LONG_SIDE, known, threshold
    )
    if faces is not None:
        return faces
    height, width = rgb.shape[:2]
    scale = working_scale(min_face_px, width, height)
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    pixels = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return find_faces(models, pixels, 0, (width / size[0], height / size[1]), min_face_px, describe, known, threshold)


def find_faces(
    models: "Models",
    pixels: np.ndarray,
    upsample: int = 0,
    scale: tuple[float, float] = (1.0, 1.0),
    min_face_px: float = 0,
    describe: bool = True,
    known: list[Box] = (),
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
    models, pixels, scale, min_face_px, describe=True, min_long_side=MIN_LONG_SIDE, known=(), threshold=0.0
):
    """The faces of `min_face_px` or more (photo pixels) in `pixels` (upright RGB, `scale` photo pixels
    per pixel) that HOG confirms (`threshold` added to its own) around YuNet's proposals; None when the
    windows would scan as many pixels as the whole scan would (then that is the better search). A proposal of a face of the `known`
    boxes is kept without HOG's look, and no face of them is described (see find_frame_faces).
    """
    height, width = pixels.shape[:2]
    wanted = min_face_px / max(scale)  # in pixels
    whole = Placement(0.0, 0.0, *scale, width * scale[0], height * scale[1])
    found, windows = [], []  # found: (rect, image, its placement), followed faces first
    for proposal in models.proposer.propose(pixels, wanted, min_long_side):
        rect = _dlib_rect(proposal)
        if known and whole.side(rect) >= MIN_WINDOW_SIZE_SHARE * min_face_px and _is_known(whole.box(rect), known):
            found.append((rect, pixels, whole))
        elif window := _window(proposal, wanted, width, height):
            windows.append(window)
    whole_scan = width * height * (HOG_WINDOW_PX / wanted) ** 2
    if sum(w.pixels for w in windows) > MAX_WINDOW_SHARE * whole_scan:
        return None
    confirmed = []
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
    found += [(rect, image, to_photo) for _, rect, image, to_photo in sorted(confirmed, key=lambda f: -f[0])]
    faces, boxes = [], []
    for rect, image, to_photo in found:
        box = to_photo.box(rect)
        if all(iou(box, other) < 0.5 for other in boxes):  # two proposals of one face
            boxes.append(box)
            shape = models.predictor(image, rect)
            new = describe and not _is_known(box, known)
            descriptor = models.encoder.compute_face_descriptor(image, shape) if new else None
            faces.append(_face(image, rect, shape, descriptor, to_photo))
    return faces


def _dlib_rect(proposal):
    """Where dlib's detector would put its box around a face YuNet proposes (image pixels)."""
    x, y, w, h, _ = proposal
    side = DLIB_PER_PROPOSED_WIDTH * w
    left, top = x + (w - side) / 2, y + h / 2 + DLIB_CENTRE_BELOW * w - side / 2
    return dlib.rectangle(round(left), round(top), round(left + side) - 1, round(top + side) - 1)


def _is_known(box, known):
    return any(iou(box, other) > KNOWN_IOU for other in known)


@dataclass
class Window:
    """The square around a proposed face where HOG looks for it, in the image's pixels, and how much it
    is zoomed for HOG (window pixels per image pixel)."""

    left: int
    top: int
    right: int
    bottom: int
    zoom: float
    proposal: tuple  # (left, top, width, height, score), image pixels

    @property
    def pixels(self):
        return (self.right - self.left) * (self.bottom - self.top) * self.zoom**2

    def image(self, pixels):
        crop = pixels[self.top : self.bottom, self.left : self.right]
        if self.zoom == 1:
            return np.ascontiguousarray(crop)
        size = (max(1, round(crop.shape[1] * self.zoom)), max(1, round(crop.shape[0] * self.zoom)))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if self.zoom < 1 else cv2.INTER_LINEAR)

    def placement(self, image, scale, width, height):
        sx = (self.right - self.left) / image.shape[1]
        sy = (self.bottom - self.top) / image.shape[0]
        return Placement(
            self.left * scale[0], self.top * scale[1], sx * scale[0], sy * scale[1], width * scale[0], height * scale[1]
        )

    def holds(self, rect, image):
        """Whether a detection is the proposed face: its centre lies inside the proposal's box."""
        x, y, w, h, _ = self.proposal
        zx = image.shape[1] / (self.right - self.left)
        zy = image.shape[0] / (self.bottom - self.top)
        cx, cy = self.left + rect.center().x / zx, self.top + rect.center().y / zy
        return x <= cx <= x + w and y <= cy <= y + h


def _window(proposal, wanted, width, height):
    """The window for one proposal (image pixels); None when it cannot hold a face of `wanted` pixels."""
    x, y, w, h, _ = proposal
    expected = DLIB_PER_PROPOSED_WIDTH * w
    if expected < MIN_PROPOSED_SHARE * wanted:
        return None
    zoom = min(HOG_WINDOW_PX / wanted, MAX_WINDOW_FACE_PX / expected)
    # YuNet may see a face smaller than dlib does: the window holds at least the smallest face wanted.
    half = WINDOW_FACES * max(expected, wanted) / 2
    cx, cy = x + w / 2, y + h / 2
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

    def side(self, rect):
        """A detection's size in photo pixels."""
        return max(rect.width() * self.sx, rect.height() * self.sy)

    def box(self, rect):
        # dlib's rectangles may reach past the edges for a face cut by them; clamp as face_recognition does.
        left = max(self.left + rect.left() * self.sx, 0)
        top = max(self.top + rect.top() * self.sy, 0)
        right = min(self.left + rect.right() * self.sx, self.width)
        bottom = min(self.top + rect.bottom() * self.sy, self.height)
        return Box(round(left), round(top), round(right - left), round(bottom - top))

    def point(self, p):
        return [round(self.left + p.x * self.sx), round(self.top + p.y * self.sy)]


def _face(pixels, rect, shape, descriptor, to_photo):
    if descriptor is None:
        thumbnail = quality = None
    else:
        thumbnail, quality = face_thumbnail(pixels, shape, to_photo.side(rect))
        descriptor = np.asarray(descriptor, dtype=np.float32)
    return Face(to_photo.box(rect), [to_photo.point(p) for p in shape.parts()], descriptor, thumbnail, quality)
