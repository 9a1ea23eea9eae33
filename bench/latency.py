"""/detect latency next to the original facerec pipeline, on the same photos, in one run.

    make bench-latency            # or: python bench/latency.py --repeat 5

facerec is measured through its HTTP API (services started here, one detect worker, nothing else busy);
the original pipeline runs in this process: full decode, HOG upsample 1, 68-point landmarks, encoding,
faces under 100 px dropped (seed 001, as FINDINGS.md measured it). Medians of --repeat runs.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import dlib
import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from detect_service.faces import MODEL_FILES, default_models_dir  # noqa: E402
from facerec.run import command  # noqa: E402

FACES = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "faces"
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


def start_services(data_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_DETECT_WORKERS="1",
               FACEREC_STORE_BIND="127.0.0.1:5201", FACEREC_DETECT_BIND="127.0.0.1:5200",
               FACEREC_STORE_URL="http://127.0.0.1:5201")
    procs = [subprocess.Popen(command(n), cwd=REPO, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
             for n in ("store", "detect")]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get("http://127.0.0.1:5200/health", timeout=2).ok:
                return procs
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise SystemExit("facerec did not start")


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
        procs = start_services(data_dir)
        try:
            print(f"dlib {dlib.__version__}, BLAS {getattr(dlib, 'DLIB_USE_BLAS', False)}; medians of {args.repeat}")
            print(f"{'photo':8} {'faces':>5} {'original':>10} {'facerec':>10} {'speed-up':>9}")
            for label, path in PHOTOS.items():
                data = path.read_bytes()
                post = lambda: requests.post("http://127.0.0.1:5200/detect", data=data, timeout=120).raise_for_status()
                post()  # warm-up: first request of a worker
                ours = median_seconds(post, args.repeat)
                theirs = median_seconds(lambda: original(data), args.repeat)
                faces = len(requests.post("http://127.0.0.1:5200/detect", data=data, timeout=120).json()["faces"])
                print(f"{label:8} {faces:>5} {theirs * 1000:>8.0f}ms {ours * 1000:>8.0f}ms {theirs / ours:>8.1f}×")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
