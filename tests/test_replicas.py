"""Two store replicas on one PostgreSQL database and two detect replicas, each pair behind a load balancer
(HAProxy where installed, else a small round-robin one: tests/balancer.py): real gunicorn processes, real
HTTP, real photos, real PostgreSQL."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.support.balancer import balancer
from tests.support.faces import BOX, PEOPLE_MIN_FACE_PX, PEOPLE_PHOTOS, descriptors, near, photo
from tests.support.services import REPO, Service, running
from tests.support.waiting import eventually

PHOTOS = [path for paths in PEOPLE_PHOTOS.values() for path in paths[:4]]  # a face of at least 40 px each
SEEN_WITHIN = 5  # seconds: the replicas promise one; this shared test machine gets some slack


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory):
    url = postgres.create_database()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        FACEREC_DATABASE_URL=url,
        FACEREC_DETECT_WORKERS="1",
        FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("data")),
        FACEREC_MIN_FACE_PX=str(PEOPLE_MIN_FACE_PX),
    )
    stores = [Service("store", dict(env)) for _ in range(2)]
    folder = tmp_path_factory.mktemp("balancers")
    with balancer([s.url for s in stores], folder) as store_lb:
        detects = [Service("detect", dict(env, FACEREC_STORE_URL=store_lb.url)) for _ in range(2)]
        with balancer([d.url for d in detects], folder) as detect_lb, running(*stores, *detects):
            yield {"url": url, "stores": stores, "store_lb": store_lb, "detect_lb": detect_lb}


def post_faces(base, *vectors, photo_sha256="f" * 64):
    body = {"photo_sha256": photo_sha256, "faces": [{"descriptor": v.tolist(), "box": BOX} for v in vectors]}
    return requests.post(base + "/faces", json=body, timeout=60)


def searchable(store, face):
    """The face is in this replica's index: /similar knows it (404 for a face it does not hold)."""
    return requests.get(f"{store.url}/faces/{face}/similar?max_distance=0.36", timeout=10)


def assert_everywhere(stores, faces, partners=None):
    """Every face searchable on every replica within SEEN_WITHIN, each with its partner among its matches."""
    partners = partners or {}
    deadline = time.monotonic() + SEEN_WITHIN
    for store in stores:
        for face in faces:
            while (response := searchable(store, face)).status_code != 200:
                assert response.status_code == 404 and time.monotonic() < deadline, f"{face} not on {store.url}"
                time.sleep(0.05)
            if face in partners:
                assert partners[face] in [f["id"] for f in response.json()["faces"]]


def stored_faces(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM faces").fetchone()[0]


def test_concurrent_ingest_through_both_is_searchable_through_either(deployment):
    stores, store_lb, detect_lb = deployment["stores"], deployment["store_lb"], deployment["detect_lb"]
    pairs = [(v, near(v, 0.3, seed=i)) for i, v in enumerate(descriptors(30, seed=11))]

    def detect(path):
        response = requests.post(detect_lb.url + "/detect", data=photo(path), timeout=120)
        assert response.status_code == 200, response.text
        return [f["id"] for f in response.json()["faces"]]

    def store_pair(pair):  # the two faces in two requests: most often to two replicas
        a, b = (post_faces(store_lb.url, v, photo_sha256=f"{k}" * 64) for k, v in enumerate(pair))
        assert a.status_code == b.status_code == 200
        return a.json()["faces"][0]["id"], b.json()["faces"][0]["id"]

    with ThreadPoolExecutor(4) as pool:
        photos = pool.map(detect, PHOTOS)
        stored = pool.map(store_pair, pairs)
        detected = [face for faces in photos for face in faces]
        partners = dict(stored)
    assert len(detected) >= len(PHOTOS)
    assert_everywhere(stores, detected + list(partners), partners)
    counts = [requests.get(s.url + "/health", timeout=5).json()["faces"] for s in stores]
    assert counts == [stored_faces(deployment["url"])] * 2


def test_a_replica_killed_mid_ingest_loses_nothing_acknowledged_and_catches_up(deployment):
    stores, store_lb = deployment["stores"], deployment["store_lb"]
    acknowledged, refused, errors, stop = [], [], [], threading.Event()

    def ingest(seed):
        try:
            for k, v in enumerate(descriptors(2000, seed=seed)):
                if stop.is_set():
                    return
                response = post_faces(store_lb.url, v, photo_sha256=f"{seed:032d}{k:032d}")
                if response.status_code == 200:
                    acknowledged.append(response.json()["faces"][0]["id"])
                else:
                    refused.append(response.status_code)
        except Exception as e:  # handed back to the test below
            errors.append(e)

    def until(n):
        eventually(lambda: len(acknowledged) >= n or errors, f"{n} faces acknowledged", every=0.02)

    writers = [threading.Thread(target=ingest, args=(seed,)) for seed in (21, 22)]
    for w in writers:
        w.start()
    try:
        until(40)
        stores[0].stop(signal.SIGKILL)  # the arbiter and its worker, mid-ingest
        before = len(acknowledged)
        until(before + 40)  # the other replica keeps serving
        stores[0].start()
        until(len(acknowledged) + 40)
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert errors == []
    assert set(refused) <= {502, 503}  # only the requests the killed replica held
    assert_everywhere(stores, acknowledged)
    counts = [requests.get(s.url + "/health", timeout=5).json()["faces"] for s in stores]
    assert counts == [stored_faces(deployment["url"])] * 2
