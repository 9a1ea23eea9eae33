"""The fixtures every test module may ask for; the tools they use live in tests/support/."""

import os

import pytest

from facerec.service import blas

# Before dlib loads OpenBLAS: the tests' own descriptors are compared with the services' bit for bit, so
# they are computed on the same kernels (facerec/service/blas.py).
os.environ.update(blas.environment())

from facerec.vision.faces import Models  # noqa: E402
from store_service import create_app as create_store_app  # noqa: E402
from tests.support.browser import chromium  # noqa: E402
from tests.support.faces import PEOPLE_MIN_FACE_PX, PEOPLE_PHOTOS, photo  # noqa: E402
from tests.support.needed import needed
from tests.support.pgcluster import Cluster, Unavailable  # noqa: E402
from tests.support.services import Service, running, service_env  # noqa: E402
from tests.support.streams import CAMERA_SHOT, read_clip, write_y4m  # noqa: E402


@pytest.fixture(scope="session")
def models():
    return Models()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster for the session (tests/support/pgcluster.py). Without PostgreSQL's programs
    the tests that need it skip, except under CI=true, where they fail (make test installs them as root)."""
    try:
        cluster = Cluster()
    except Unavailable as e:
        needed(f"PostgreSQL's programs are missing: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture
def engine():
    return "sqlite"


@pytest.fixture
def database_url(engine, request):
    """A fresh PostgreSQL database's URL for engine "postgresql", else None (SQLite in DATA_DIR)."""
    return request.getfixturevalue("postgres").create_database() if engine == "postgresql" else None


@pytest.fixture
def store_app(tmp_path, database_url):
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path), "DATABASE_URL": database_url})
    yield app
    app.extensions["face_store"].close()


@pytest.fixture
def store_client(store_app):
    return store_app.test_client()


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """Both services as real gunicorn processes on free ports, over a temporary data directory."""
    env = service_env(tmp_path_factory, DETECT_WORKERS=2)
    store = Service("store", env)
    detect = Service("detect", env)
    # Each finds the other; the store's people page posts photos to the detect service, which allows it.
    env.update(FACEREC_STORE_URL=store.url, FACEREC_DETECT_URL=detect.url, FACEREC_CORS_ORIGINS=store.url)
    with running(store, detect):
        yield store, detect


# End to end: both services as real gunicorn processes, each with its own key.
@pytest.fixture(scope="module")
def keyed_services(tmp_path_factory):
    base = service_env(tmp_path_factory, DETECT_WORKERS=1)
    key_file = tmp_path_factory.mktemp("keys") / "detect-keys"
    key_file.write_text("detect-key\n")
    store = Service("store", dict(base, FACEREC_API_KEYS='["store-key"]'))
    detect = Service(
        "detect",
        dict(
            base,
            FACEREC_API_KEY_FILE=str(key_file),
            FACEREC_STORE_URL=store.url,
            FACEREC_STORE_API_KEY="store-key",
            FACEREC_CORS_ORIGINS=store.url,
        ),
    )
    store.env["FACEREC_DETECT_URL"] = detect.url
    with running(store, detect):
        yield store, detect


@pytest.fixture(scope="session")
def people_faces(models):
    """{person: [(photo path, descriptor of the photo's largest face)]}."""
    from facerec.vision.faces import analyse_photo

    described = {}
    for person, paths in PEOPLE_PHOTOS.items():
        described[person] = []
        for path in paths:
            _, faces = analyse_photo(models, photo(path), PEOPLE_MIN_FACE_PX)
            largest = max(faces, key=lambda f: f.box.width * f.box.height)
            described[person].append((path, largest.descriptor))
    return described


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium, one a module (tests/support/browser.py)."""
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def clip_frames():
    """Every frame of the clip, in order (BGR)."""
    return read_clip()


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory):
    """(the clip's frames of CAMERA_SHOT, a .y4m of them for chromium's fake camera)."""
    frames = read_clip(*CAMERA_SHOT)
    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    write_y4m(frames, path)
    return frames, path


@pytest.fixture(scope="module")
def camera_browser(camera_clip):
    """Chromium whose camera plays the clip, allowed without asking."""
    fake_camera = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    with chromium(*fake_camera, f"--use-file-for-fake-video-capture={camera_clip[1]}") as browser:
        yield browser


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The store and the stream service (two detection workers), as `make run` starts them."""
    # Two seconds for detection to cover a blurred stream's frames, for a busy machine.
    # Every file may play: these tests play the shared clip and files they write (test_stream_sources.py
    # checks STREAM_MEDIA_DIR itself).
    env = service_env(tmp_path_factory, STREAM_WORKERS=2, STREAM_PRIVACY_WAIT=2, STREAM_MEDIA_DIR="/")
    store = Service("store", env)
    stream = Service("stream", env)
    env["FACEREC_STORE_URL"] = store.url
    with running(store, stream):
        yield store, stream
