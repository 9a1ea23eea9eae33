"""Nothing acknowledged is ever lost: kill -9 under load, backup and restore, on real processes and files."""

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from store_service.store import FaceStore
from tests.support.faces import FACES
from tests.support.services import REPO

# 218 small real photos (about 130 faces of 100 px or more): enough load to kill things in the middle of.
LOAD = sorted((FACES / "lfw10").glob("*/*.jpg")) + sorted((FACES / "celeb5").glob("*/*.jp*g"))
CLIENTS = 4
KILLS = 3


def run_load(detect, photos, deadline):
    """Post each photo until it is acknowledged. Returns the face IDs the 200s carried, the photos never
    acknowledged, and every answer other than a 200 or the store-is-down 503 (none is allowed)."""
    acked, unacked, unexpected = set(), [], []
    for path in photos:
        while time.monotonic() < deadline:
            try:
                response = requests.post(detect.url + "/detect", data=path.read_bytes(), timeout=30)
            except requests.RequestException:  # a detect worker died under this request
                time.sleep(0.1)
                continue
            if response.status_code == 200:
                acked.update(f["id"] for f in response.json()["faces"])
                break
            if response.status_code != 503:  # 503: the store is down, the only failure allowed
                unexpected.append((path.name, response.status_code, response.text))
            time.sleep(0.1)
        else:
            unacked.append(path.name)
    return acked, unacked, unexpected


def under_load(detect, chaos):
    """Run CLIENTS concurrent clients over LOAD while `chaos()` runs; the IDs they were given. Each
    client's outcome comes back to this thread, so a failure in a client fails the test."""
    deadline = time.monotonic() + 180
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(run_load, detect, LOAD[i::CLIENTS], deadline) for i in range(CLIENTS)]
        chaos()
        outcomes = [client.result() for client in clients]
    acked = set().union(*(a for a, _, _ in outcomes))
    assert [u for _, u, _ in outcomes] == [[]] * CLIENTS, "photos never acknowledged"
    assert [x for _, _, x in outcomes] == [[]] * CLIENTS, "answers other than 200 or the store-down 503"
    return acked


@pytest.fixture
def rng():
    """The chaos tests' randomness, seeded and printed: FACEREC_CHAOS_SEED=<seed> replays a failure."""
    seed = int(os.environ.get("FACEREC_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed: FACEREC_CHAOS_SEED={seed}")
    return random.Random(seed)


def database(services):
    store, _ = services
    return sqlite3.connect(os.path.join(store.env["FACEREC_DATA_DIR"], "faces.sqlite3"))


def assert_nothing_lost(services, acked):
    store, detect = services
    db = database(services)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(db.execute("SELECT id, descriptor FROM faces"))
    # Every acknowledged face is there, with the descriptor its ID was derived from.
    assert acked <= rows.keys()
    assert all(hashlib.sha256(rows[face]).hexdigest() == face for face in acked)
    # The in-memory index agrees with SQLite row for row.
    assert requests.get(store.url + "/health", timeout=5).json()["faces"] == len(rows)
    for face in rows:
        assert requests.get(f"{store.url}/faces/{face}/similar?max_distance=0", timeout=5).status_code == 200
    # No photo is half stored: each photo's rows are exactly the faces a fresh detection gives.
    by_photo = {}
    for face, photo in db.execute("SELECT id, photo_sha256 FROM faces"):
        by_photo.setdefault(photo, set()).add(face)
    for path in LOAD:
        data = path.read_bytes()
        stored = by_photo.get(hashlib.sha256(data).hexdigest(), set())
        if stored:
            fresh = requests.post(detect.url + "/detect", data=data, timeout=30).json()["faces"]
            assert stored == {f["id"] for f in fresh}, path


def test_store_killed_under_load_loses_nothing(services, rng):
    store, detect = services

    def kill_the_store_now_and_then():
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.5))
            store.stop(signal.SIGKILL)
            time.sleep(rng.uniform(0, 1))
            store.start()

    acked = under_load(detect, kill_the_store_now_and_then)
    assert len(acked) > 50
    assert_nothing_lost(services, acked)


def test_detect_workers_killed_under_load_leave_no_partial_rows(services, rng):
    _, detect = services

    def kill_detect_workers_now_and_then():
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.5))
            for pid in detect.worker_pids():
                os.kill(pid, signal.SIGKILL)  # gunicorn's arbiter starts new ones

    acked = under_load(detect, kill_detect_workers_now_and_then)
    assert len(acked) > 50
    assert_nothing_lost(services, acked)


def test_a_backup_taken_while_running_restores_the_live_data(services, tmp_path):
    store, _ = services
    live = os.path.join(store.env["FACEREC_DATA_DIR"], "faces.sqlite3")
    backup = str(tmp_path / "backup.sqlite3")
    subprocess.run([sys.executable, "-m", "store_service.storage.backup", live, backup], cwd=REPO, check=True)
    restored = str(tmp_path / "restored" / "faces.sqlite3")
    os.makedirs(os.path.dirname(restored))
    subprocess.run(
        [sys.executable, "-m", "store_service.storage.backup", "--restore", backup, restored], cwd=REPO, check=True
    )
    query = "SELECT * FROM faces ORDER BY id"
    expected = database(services).execute(query).fetchall()
    assert expected and sqlite3.connect(restored).execute(query).fetchall() == expected
    # A store opened on the restored file serves the same faces.
    copy = FaceStore(restored)
    assert len(copy) == len(expected)
    copy.close()


def test_restore_refuses_while_the_store_runs(services, tmp_path):
    store, _ = services
    live = os.path.join(store.env["FACEREC_DATA_DIR"], "faces.sqlite3")
    backup = str(tmp_path / "backup.sqlite3")
    subprocess.run([sys.executable, "-m", "store_service.storage.backup", live, backup], cwd=REPO, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "store_service.storage.backup", "--restore", backup, live],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "another store process" in result.stderr


@pytest.fixture(scope="module", autouse=True)
def data_for_backups(services):
    """The backup tests need faces in the store even when run alone."""
    _, detect = services
    requests.post(
        detect.url + "/detect", data=(FACES / "face_recognition_test_images/obama.jpg").read_bytes(), timeout=60
    )
