import io
import os
from pathlib import Path

import pytest
from PIL import Image

from facerec import blas

# Before dlib loads OpenBLAS: the tests' own descriptors are compared with the services' bit for bit, so
# they are computed on the same kernels (facerec/blas.py).
os.environ.update(blas.environment())

from facerec.pgcluster import Cluster, Unavailable  # noqa: E402
from facerec.run import Service, running  # noqa: E402
from facerec.vision.faces import Models  # noqa: E402
from store_service import create_app as create_store_app  # noqa: E402

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


# The engines the store runs on. A module runs its tests on both by overriding `engine`:
#     @pytest.fixture(params=ENGINES)
#     def engine(request): return request.param
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster for the session (facerec/pgcluster.py). Without PostgreSQL's programs
    the tests that need it skip, except under CI=true, where they fail (make test installs them as root)."""
    try:
        cluster = Cluster()
    except Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is needed under CI: {e}")
        pytest.skip(f"PostgreSQL tests skipped: {e}")
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


def service_env(tmp_path_factory, **settings):
    """The environment services start in: this one, the repository on the path, a fresh data folder,
    and FACEREC_<name> for each setting."""
    return dict(
        os.environ,
        PYTHONPATH=str(REPO),
        FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("data")),
        **{f"FACEREC_{name}": str(value) for name, value in settings.items()},
    )


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
