"""The two pipelines facerec is measured against, each as a function of a photo's bytes that returns
the face boxes it keeps, as (left, top, width, height) in the upright photo's pixels.

They run in worker processes of their own (bench.py), so each loads its models once per process.
"""

import io
import os

import cv2
import dlib
import numpy as np
from services import REPO  # noqa: F401  (puts the repo on sys.path)

from facerec.vision.faces import MODEL_FILES, default_models_dir
from facerec.vision.images import _TO_UPRIGHT, read_header

MIN_FACE_PX = 100  # the original service dropped smaller faces
_models = {}


def original(data):
    """The original facerec service (seed 001): full decode (OpenCV applies EXIF
    orientation), HOG upsample 1, 68-point landmarks, encoding, faces under 100 px dropped."""
    if "original" not in _models:
        models = default_models_dir()
        _models["original"] = (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(os.path.join(models, MODEL_FILES[68])),
            dlib.face_recognition_model_v1(os.path.join(models, MODEL_FILES["encoder"])),
        )
    detector, predictor, encoder = _models["original"]
    img = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    faces = [r for r in detector(img, 1) if r.width() >= MIN_FACE_PX and r.height() >= MIN_FACE_PX]
    for r in faces:
        encoder.compute_face_descriptor(img, predictor(img, r))
    return [(r.left(), r.top(), r.width(), r.height()) for r in faces]


def face_recognition_library(data):
    """`face_recognition` with its defaults: load_image_file (Pillow, EXIF ignored), face_locations
    (HOG, upsample 1), face_encodings (5-point model, one jitter). Boxes are turned upright here so
    that they compare with the others'."""
    import face_recognition

    img = face_recognition.load_image_file(io.BytesIO(data))
    locations = face_recognition.face_locations(img)
    face_recognition.face_encodings(img, locations)
    _, width, height, orientation = read_header(data, 10**9)
    return [
        _upright((left, top, right - left, bottom - top), orientation, width, height)
        for top, right, bottom, left in locations
    ]


def _upright(box, orientation, width, height):
    left, top, w, h = box
    xs, ys = zip(*(_TO_UPRIGHT[orientation](x, y, width, height) for x in (left, left + w) for y in (top, top + h)))
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


PIPELINES = {"original": original, "face_recognition": face_recognition_library}


def run(name, path):
    """(boxes, seconds, the worker's peak RSS in MB so far) for one photo: what a worker process returns."""
    import time

    from services import peak_rss_mb

    data = open(path, "rb").read()
    start = time.perf_counter()
    boxes = PIPELINES[name](data)
    return boxes, time.perf_counter() - start, peak_rss_mb(os.getpid())
