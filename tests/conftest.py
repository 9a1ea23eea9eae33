import io
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from PIL import Image

from facerec.vision.faces import Models
from facerec.run import command
from store_service import create_app as create_store_app

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "data" / "faces"
FR_IMAGES = FACES / "face_recognition_test_images"


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


@pytest.fixture(scope="session")
def models():
    return Models()


@pytest.fixture
def store_app(tmp_path):
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    yield app
    app.extensions["face_store"].close()


@pytest.fixture
def store_client(store_app):
    return store_app.test_client()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One service as a real gunicorn process tree, started exactly as `make run` starts it."""

    def __init__(self, name, env):
        self.name, self.env = name, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env[f"FACEREC_{name.upper()}_BIND"] = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self, wait=True):
        self.proc = subprocess.Popen(command(self.name), cwd=REPO, env=self.env, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}"
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # still starting, or a busy machine
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready within {timeout} s")

    def stop(self, sig=signal.SIGTERM):
        """Signal the whole process group (arbiter and workers) and wait for it."""
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=40)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """Both services as real gunicorn processes on free ports, over a temporary data directory."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("data")),
               FACEREC_DETECT_WORKERS="2")
    store = Service("store", env)
    detect = Service("detect", env)
    # Each finds the other; the store's people page posts photos to the detect service, which allows it.
    env.update(FACEREC_STORE_URL=store.url, FACEREC_DETECT_URL=detect.url, FACEREC_CORS_ORIGINS=store.url)
    with running(store, detect):
        yield store, detect


@contextmanager
def running(*services):
    """The services started in turn, and all stopped after, even one that never became ready (or it
    would outlive the test run)."""
    try:
        for service in services:
            service.start()
        yield
    finally:
        for service in reversed(services):
            if service.proc is not None and service.proc.poll() is None:
                service.stop()


# End to end: both services as real gunicorn processes, each with its own key.
@pytest.fixture(scope="module")
def keyed_services(tmp_path_factory):
    base = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DETECT_WORKERS="1",
                FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    key_file = tmp_path_factory.mktemp("keys") / "detect-keys"
    key_file.write_text("detect-key\n")
    store = Service("store", dict(base, FACEREC_API_KEYS='["store-key"]'))
    detect = Service("detect", dict(base, FACEREC_API_KEY_FILE=str(key_file), FACEREC_STORE_URL=store.url,
                                    FACEREC_STORE_API_KEY="store-key", FACEREC_CORS_ORIGINS=store.url))
    store.env["FACEREC_DETECT_URL"] = detect.url
    with running(store, detect):
        yield store, detect


# People tests: a few labelled photos per person, described once per session (a few seconds of dlib).
# These web photos are small: their faces are found with MIN_FACE_PX 40 (docs/detection.md).
PEOPLE_MIN_FACE_PX = 40
PEOPLE_PHOTOS = {
    "ben": [f"celeb5/Ben_Afflek/{n}.jpg" for n in (1, 2, 4, 5, 6, 8)],
    "elton": [f"celeb5/Elton_John/{n}.jpg" for n in (2, 3, 4, 6, 8, 15)],
    "madonna": [f"celeb5/Madonna/{n}.jpg" for n in (1, 2, 3, 4, 5, 6)],
}


@pytest.fixture(scope="session")
def people_faces(models):
    """{person: [(photo path, descriptor of the photo's largest face)]}."""
    from facerec.vision.faces import analyse_photo

    described = {}
    for person, paths in PEOPLE_PHOTOS.items():
        described[person] = []
        for path in paths:
            _, faces = analyse_photo(models, photo(path), PEOPLE_MIN_FACE_PX)
            largest = max(faces, key=lambda f: f.box["width"] * f.box["height"])
            described[person].append((path, largest.descriptor))
    return described
