"""/detect latency next to the original facerec pipeline, on the same photos, in one run.

    make bench-latency            # or: python bench/latency.py --repeat 5

facerec is measured through its HTTP API (services started here, one detect worker, nothing else busy);
the original pipeline runs in this process: full decode, HOG upsample 1, 68-point landmarks, encoding,
faces under 100 px dropped (seed 001, as FINDINGS.md measured it). Medians of --repeat runs.
"""
import argparse
import os
import statistics
import tempfile
import time

import cv2
import dlib
import numpy as np
import requests

from services import DETECT, FACES, start_services, stop_services  # first: puts the repo on sys.path

from detect_service.faces import MODEL_FILES, default_models_dir

PHOTOS = {
    "12 MP": FACES / "deepface_tests/person_img8/img49.jpg",  # 4352×2903
    "1080p": FACES / "fr_examples/obama/obama-1080p.jpg",  # 1920×1080
}


class OriginalPipeline:
    """The original service's detection, as its article and FINDINGS.md describe it."""

    def __init__(self):
        models = default_models_dir()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(os.path.join(models, MODEL_FILES[68]))
        self.encoder = dlib.face_recognition_model_v1(os.path.join(models, MODEL_FILES["encoder"]))

    def __call__(self, data):
        img = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        faces = [r for r in self.detector(img, 1) if r.width() >= 100 and r.height() >= 100]
        return [self.encoder.compute_face_descriptor(img, self.predictor(img, r)) for r in faces]


def median_seconds(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    original = OriginalPipeline()
    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir, DETECT_WORKERS=1)
        try:
            print(f"dlib {dlib.__version__}, BLAS {getattr(dlib, 'DLIB_USE_BLAS', False)}; medians of {args.repeat}")
            print(f"{'photo':8} {'faces':>5} {'original':>10} {'facerec':>10} {'speed-up':>9}")
            for label, path in PHOTOS.items():
                data = path.read_bytes()
                post = lambda: requests.post(DETECT + "/detect", data=data, timeout=120).raise_for_status()
                post()  # warm-up: first request of a worker
                ours = median_seconds(post, args.repeat)
                theirs = median_seconds(lambda: original(data), args.repeat)
                faces = len(requests.post(DETECT + "/detect", data=data, timeout=120).json()["faces"])
                print(f"{label:8} {faces:>5} {theirs * 1000:>8.0f}ms {ours * 1000:>8.0f}ms {theirs / ours:>8.1f}×")
        finally:
            stop_services(procs)


if __name__ == "__main__":
    main()
