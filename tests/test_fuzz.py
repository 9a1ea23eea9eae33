"""Fuzzing with hypothesis: the decode path and the store's request parsing.

`make test` runs the brief profile (a few seconds); `make fuzz` runs the long one
(FACEREC_FUZZ_PROFILE=long). Found examples are not saved: every run starts afresh.
"""

import os
from urllib.parse import quote, urlencode

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facerec.vision.images import ImageError, decode_image
from store_service import create_app as create_store_app
from tests.support.corpus import good_formats

settings.register_profile(
    "brief", max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("FACEREC_FUZZ_PROFILE", "brief"))

# A mutated header may claim any size up to the limit; a small limit keeps each example cheap while
# the same code paths run.
FUZZ_MAX_PIXELS = 2_000_000
SEEDS = [
    "jpeg",
    "jpeg-cmyk",
    "jpeg-progressive",
    "png",
    "png-16bit",
    "png-palette",
    "webp",
    "webp-animated",
    "tiff",
    "tiff-lzw",
    "bmp",
    "gif-animated",
    "heic",
]
MAGIC = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"II*\0",
    b"MM\0*",
    b"BM",
    b"GIF89a",
    b"\0\0\0\x18ftypheic",
]


def check_decode(data):
    """decode_image may refuse (ImageError and its subclasses) or give 8-bit H×W×3 C-contiguous pixels."""
    try:
        photo = decode_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageError:
        return
    pixels = photo.pixels
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.flags.c_contiguous
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0


@st.composite
def mutated_photos(draw):
    """A real photo's bytes with a few bytes overwritten, a run inserted or deleted, or the end cut off."""
    data = bytearray(good_formats()[draw(st.sampled_from(SEEDS))][0])
    for _ in range(draw(st.integers(0, 6))):
        # Headers hold the interesting structure: aim half the edits at the first 512 bytes.
        end = draw(st.sampled_from([min(512, len(data)), len(data)]))
        at = draw(st.integers(0, end - 1))
        kind = draw(st.sampled_from(["byte", "insert", "delete"]))
        if kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@given(mutated_photos())
def test_decoding_a_mutated_photo_refuses_or_gives_rgb(data):
    check_decode(data)


@given(
    st.one_of(st.binary(max_size=2048), st.builds(lambda m, b: m + b, st.sampled_from(MAGIC), st.binary(max_size=2048)))
)
def test_decoding_random_bytes_refuses_or_gives_rgb(data):
    check_decode(data)


@pytest.fixture(scope="module")
def store_client(tmp_path_factory):
    """One store for the whole module (hypothesis runs each test many times), holding one face."""
    app = create_store_app({"TESTING": True, "DATA_DIR": str(tmp_path_factory.mktemp("fuzz-store"))})
    client = app.test_client()
    face = {"descriptor": np.linspace(-0.2, 0.2, 128).tolist(), "box": {"left": 1, "top": 2, "width": 3, "height": 4}}
    client.known_face = client.post("/faces", json={"photo_sha256": "0" * 64, "faces": [face]}).json["faces"][0]["id"]
    yield client
    app.extensions["face_store"].close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
numbers = st.one_of(st.integers(), st.floats(), st.integers(-(10**30), 10**30), st.text(max_size=5), st.none())
boxes = st.one_of(json_values, st.fixed_dictionaries({k: numbers for k in ("left", "top", "width", "height")}))
descriptors = st.one_of(
    json_values,
    st.lists(st.floats(-1, 1, width=32), min_size=128, max_size=128),
    st.lists(numbers, min_size=127, max_size=129),
)
faces = st.fixed_dictionaries({}, optional={"descriptor": descriptors, "box": boxes, "extra": json_values})
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"faces": st.lists(faces, max_size=3)}, optional={"photo_sha256": json_values}),
)
query_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["0", "4", "0.36", "nan", "inf", "-0", "1e400", "100", "101", "0x10", "1_0", " 7 ", "", "１"]),
)
queries = st.dictionaries(st.sampled_from(["max_distance", "max-distance", "limit", "facetoken"]), query_values)
KNOWN = None  # stands for the stored face's ID, so that queries reach the search too
face_ids = st.one_of(st.just(KNOWN), st.text(min_size=1, max_size=70))


def no_server_error(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    # Every error is JSON. (A 308 may come first: Werkzeug merges the slashes of "/faces//similar".)
    assert response.status_code < 400 or response.is_json


def refused_stores_nothing(store_client, send):
    """`send()`'s answer is no server error, and when it refuses (4xx), no face was stored."""
    before = store_client.get("/health").json["faces"]
    response = send()
    no_server_error(response)
    if response.status_code >= 400:
        assert store_client.get("/health").json["faces"] == before, response.get_data(as_text=True)


@given(bodies, queries)
def test_storing_any_json_never_fails_the_server(store_client, body, query):
    refused_stores_nothing(store_client, lambda: store_client.post("/faces?" + urlencode(query), json=body))


@given(st.binary(max_size=300))
def test_storing_any_bytes_never_fails_the_server(store_client, body):
    refused_stores_nothing(
        store_client, lambda: store_client.post("/faces", data=body, content_type="application/json")
    )


@given(face_ids, queries, st.booleans())
def test_any_similarity_query_never_fails_the_server(store_client, face, query, token_is_known):
    face = store_client.known_face if face is KNOWN else face
    no_server_error(store_client.get(f"/faces/{quote(face, safe='')}/similar?" + urlencode(query)))
    if token_is_known:
        query = dict(query, facetoken=store_client.known_face)
    no_server_error(store_client.put("/api/search?" + urlencode(query)))


@given(st.text(alphabet=st.sampled_from("max_distance-limit=facetoken&%0123456789.eEnaif+ \x00\u00e9"), max_size=40))
def test_any_raw_query_string_never_fails_the_server(store_client, raw):
    # Raw, so that broken percent-escapes, repeated keys and empty values reach the parser as sent.
    query = quote(raw, safe="=&%+")
    no_server_error(store_client.get(f"/faces/{store_client.known_face}/similar?{query}"))
    no_server_error(store_client.put(f"/api/search?facetoken={store_client.known_face}&{query}"))
    no_server_error(store_client.post(f"/faces?{query}", json={"faces": []}))


@given(st.text(min_size=1, max_size=70))
def test_any_unknown_face_is_a_404_not_a_failure(store_client, face):
    if face == store_client.known_face:
        return
    path = quote(face, safe="")
    for response in (
        store_client.get(f"/faces/{path}"),
        store_client.delete(f"/faces/{path}"),
        store_client.delete(f"/api/delete?facetoken={path}"),
    ):
        no_server_error(response)
    assert store_client.get("/health").json["faces"] >= 1  # the known face is still there
