"""Finding faces in an upright photo and describing each as a 128-D dlib descriptor."""
import logging
import os
from dataclasses import dataclass

import dlib
import numpy as np

from .images import decode_image
from .thumbnails import face_thumbnail

log = logging.getLogger(__name__)

MODEL_FILES = {
    5: "shape_predictor_5_face_landmarks.dat",  # CC0
    68: "shape_predictor_68_face_landmarks.dat",  # iBUG 300-W training data: no commercial use
    "encoder": "dlib_face_recognition_resnet_model_v1.dat",  # CC0
}


@dataclass
class Face:
    box: dict  # upright, full-resolution pixels, clamped to the photo
    landmarks: list  # [[x, y], ...] upright, full-resolution pixels
    descriptor: np.ndarray  # 128 float32
    thumbnail: bytes  # a small aligned JPEG of the face (thumbnails.py)
    quality: float  # 0..1, how good a picture of the face it is (thumbnails.py)


class Models:
    """dlib's HOG detector, a landmark predictor and the ResNet encoder, loaded once per worker."""

    def __init__(self, models_dir=None, landmarks=5):
        if landmarks not in (5, 68):
            raise ValueError(f"LANDMARKS must be 5 or 68, not {landmarks!r}")
        models_dir = models_dir or default_models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(os.path.join(models_dir, MODEL_FILES[landmarks]))
        self.encoder = dlib.face_recognition_model_v1(os.path.join(models_dir, MODEL_FILES["encoder"]))
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


def find_faces(models, pixels, upsample=0, scale=(1.0, 1.0), min_face_px=0):
    """Every face in `pixels` (upright RGB), described and pictured; boxes and landmarks scaled by `scale`.

    All faces of the photo are encoded in one call to the encoder.
    """
    rects = [r for r in models.detector(pixels, upsample) if _side(r, scale) >= min_face_px]
    shapes = dlib.full_object_detections([models.predictor(pixels, r) for r in rects])
    descriptors = models.encoder.compute_face_descriptor(pixels, shapes) if rects else []
    return [_face(pixels, rect, shape, descriptor, scale) for rect, shape, descriptor in zip(rects, shapes, descriptors)]


def _face(pixels, rect, shape, descriptor, scale):
    sx, sy = scale
    thumbnail, quality = face_thumbnail(pixels, shape, _side(rect, scale))
    return Face(
        box=_clamped_box(rect, pixels.shape[1], pixels.shape[0], scale),
        landmarks=[[round(p.x * sx), round(p.y * sy)] for p in shape.parts()],
        descriptor=np.asarray(descriptor, dtype=np.float32),
        thumbnail=thumbnail,
        quality=quality,
    )


def _side(rect, scale):
    return max(rect.width() * scale[0], rect.height() * scale[1])


def _clamped_box(rect, width, height, scale):
    # dlib's rectangles may reach past the edges for a face cut by them; clamp as face_recognition does.
    left, top = max(rect.left(), 0), max(rect.top(), 0)
    right, bottom = min(rect.right(), width), min(rect.bottom(), height)
    sx, sy = scale
    return {
        "left": round(left * sx),
        "top": round(top * sy),
        "width": round((right - left) * sx),
        "height": round((bottom - top) * sy),
    }


def analyse_photo(models, data, min_face_px=100, max_pixels=64_000_000):
    """decode → detect → align → encode: the whole pipeline for one uploaded photo.

    Returns (Photo, [Face]) with boxes and landmarks in the upright photo's full-resolution pixels.
    """
    photo = decode_image(data, min_face_px, max_pixels)
    return photo, find_faces(models, photo.pixels, 0, photo.scale, min_face_px)
