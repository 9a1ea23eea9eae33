"""People in a real store service (gunicorn), where its processes can really die."""

import os
import signal
import sqlite3
import threading

import numpy as np
import psutil
import requests

from store_service.store import FaceStore
from tests.support.services import Service, running, service_env
from tests.support.waiting import eventually

FACES = 100_000  # enough that a re-cluster computes for many seconds, even on a fast machine


def store_of_many_faces(folder):
    """A store's database in `folder` with FACES random faces, written directly (seconds, not minutes)."""
    path = os.path.join(folder, "faces.sqlite3")
    FaceStore(path).close()  # the schema
    vectors = (np.random.default_rng(0).normal(size=(FACES, 128)) * 0.05).astype("<f4")
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height, created_at)"
        " VALUES (?, ?, ?, 0, 0, 100, 100, 'test')",
        ((f"{i:064x}", v.tobytes(), f"photo{i}") for i, v in enumerate(vectors)),
    )
    db.commit()
    db.close()


def gone(pid):
    """Whether the process has exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_recluster_dies_with_the_store_worker_that_started_it_and_leaves_no_files(tmp_path_factory):
    env = service_env(tmp_path_factory, PEOPLE_RECLUSTER_AFTER=0)
    temp = tmp_path_factory.mktemp("tmp")
    env["TMPDIR"] = str(temp)  # where a re-cluster would leave a temporary folder
    store_of_many_faces(env["FACEREC_DATA_DIR"])
    with running(Service("store", env, quiet=True)) as (store,):
        (worker,) = store.worker_pids()
        outcome = []
        post = threading.Thread(target=lambda: outcome.append(recluster(store.url)))
        post.start()
        child = recluster_process(worker)
        os.kill(worker, signal.SIGKILL)
        # 10 s: the re-cluster of 100,000 faces alone takes far longer, so it was killed, not finished.
        eventually(lambda: gone(child), "the re-cluster gone with the worker that started it", timeout=10)
        post.join(60)
        assert outcome == ["connection lost"]
    assert list(temp.iterdir()) == []


def recluster(url):
    try:
        requests.post(f"{url}/people/recluster", timeout=600)
        return "answered"
    except requests.ConnectionError:
        return "connection lost"


def recluster_process(worker):
    """The pid of the re-cluster process the worker started, once it runs."""

    def started():
        for child in psutil.Process(worker).children():
            try:
                if "store_service.people.recluster" in child.cmdline():
                    return child.pid
            except psutil.NoSuchProcess:
                pass
        return None

    return eventually(started, "a re-cluster process started", every=0.02)
