"""Scale-out (make bench ARGS="--parts scale"): the store on SQLite, and on PostgreSQL with one and two
replicas, side by side in one run on the same descriptors.

- insert rate over HTTP (4 faces a request, two clients; with two replicas one client each);
- /similar p50 and p99 at 100 k faces (two clients, as above);
- with two replicas: how long after a write on one it is searchable on the other (p50, p99);
- start-up of a store of 1 M faces (--scale-start-size), SQLite and PostgreSQL.

PostgreSQL runs as a private cluster with fsync on (tests/support/pgcluster.py), on this same machine.
"""

import hashlib
import os
import sqlite3
import tempfile
import threading
import time

import numpy as np
import psycopg
import requests
from services import REPO

from tests.support.pgcluster import Cluster
from tests.support.services import Service

SIZE = 100_000
INSERTS = 4_000  # faces inserted over HTTP in each configuration
QUERIES = 300  # /similar requests per client
PROPAGATIONS = 200
BOX = {"left": 0, "top": 0, "width": 100, "height": 100}
COLUMNS = "id, descriptor, photo_sha256, box_left, box_top, box_width, box_height, created_at"


def scale_bench(vectors, start_size):
    """{configuration: figures}, and start-up times at `start_size` faces."""
    cluster = Cluster(durable=True)
    try:
        out = {
            "sqlite": configuration(vectors, None, 1),
            "postgresql, 1 replica": configuration(vectors, cluster.create_database(), 1),
            "postgresql, 2 replicas": configuration(vectors, cluster.create_database(), 2),
        }
        print("scale-out at 100 k done", flush=True)
        out["start_size"] = start_size
        out["start_s"] = {
            "sqlite": start_up(vectors[:start_size], None),
            "postgresql": start_up(vectors[:start_size], cluster.create_database()),
        }
    finally:
        cluster.stop()
    return out


def configuration(vectors, url, replicas):
    with tempfile.TemporaryDirectory() as data_dir:
        stores = [store_service(data_dir, url) for _ in range(replicas)]
        try:
            inserted = concurrently(
                stores, lambda store, k: insert(store, vectors[k * INSERTS // 2 : (k + 1) * INSERTS // 2])
            )
            out = {"insert_faces_per_s": INSERTS / max(seconds for seconds in inserted)}
        finally:
            stop(stores)
        bulk_insert(data_dir, url, vectors[INSERTS:SIZE])
        start = time.perf_counter()
        stores = [store_service(data_dir, url) for _ in range(replicas)]
        try:
            out["start_100k_s"] = (time.perf_counter() - start) / replicas
            ids = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors[:SIZE].astype("<f4")]
            ms = concurrently(stores, lambda store, k: similar(store, ids, np.random.default_rng(k)))
            ms = [m for client in ms for m in client]
            out.update(similar_p50_ms=float(np.percentile(ms, 50)), similar_p99_ms=float(np.percentile(ms, 99)))
            if replicas == 2:
                seen = propagation(stores, vectors[SIZE : SIZE + PROPAGATIONS])
                out.update(seen_p50_ms=float(np.percentile(seen, 50)), seen_p99_ms=float(np.percentile(seen, 99)))
        finally:
            stop(stores)
    return out


def store_service(data_dir, url, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_PEOPLE_RECLUSTER_AFTER="0")
    if url:
        env["FACEREC_DATABASE_URL"] = url
    return Service("store", env, quiet=True).start(timeout=timeout)


def stop(stores):
    for store in stores:
        store.stop()


def concurrently(stores, work):
    """work(store, k) for clients k = 0 and 1 at once, client k on replica k % replicas; their results."""
    results = [None, None]

    def client(k):
        results[k] = work(stores[k % len(stores)], k)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in results, "a benchmark client failed"
    return results


def insert(store, vectors):
    session, start = requests.Session(), time.perf_counter()
    for i in range(0, len(vectors), 4):
        faces = [{"descriptor": v.tolist(), "box": BOX} for v in vectors[i : i + 4]]
        photo = hashlib.sha256(vectors[i].tobytes()).hexdigest()
        session.post(store.url + "/faces", json={"photo_sha256": photo, "faces": faces}, timeout=60).raise_for_status()
    return time.perf_counter() - start


def similar(store, ids, rng):
    session, ms = requests.Session(), []
    for face in (ids[i] for i in rng.integers(0, len(ids), QUERIES)):
        start = time.perf_counter()
        session.get(f"{store.url}/faces/{face}/similar", timeout=30).raise_for_status()
        ms.append((time.perf_counter() - start) * 1000)
    return ms


def propagation(stores, vectors):
    """ms from a write's answer on one replica until the other's /similar knows the face."""
    writer, reader, seen = requests.Session(), requests.Session(), []
    for v in vectors:
        body = {
            "photo_sha256": hashlib.sha256(v.tobytes()).hexdigest(),
            "faces": [{"descriptor": v.tolist(), "box": BOX}],
        }
        face = writer.post(stores[0].url + "/faces", json=body, timeout=30).json()["faces"][0]["id"]
        start = time.perf_counter()
        while reader.get(f"{stores[1].url}/faces/{face}/similar", timeout=30).status_code == 404:
            time.sleep(0.001)
        seen.append((time.perf_counter() - start) * 1000)
    return seen


def bulk_insert(data_dir, url, vectors):
    """Faces written straight into the table, as the store writes them (set-up only, no store running)."""
    rows = (
        (hashlib.sha256(v.tobytes()).hexdigest(), v.tobytes(), "bench", 0, 0, 100, 100, "2026-01-01T00:00:00")
        for v in vectors.astype("<f4")
    )
    if url is None:
        with sqlite3.connect(os.path.join(data_dir, "faces.sqlite3")) as db:
            db.executemany(f"INSERT OR IGNORE INTO faces ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY faces ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def start_up(vectors, url):
    """Seconds until a store of these faces answers /health, started on a database made by the store."""
    with tempfile.TemporaryDirectory() as data_dir:
        stop([store_service(data_dir, url)])  # the schema
        bulk_insert(data_dir, url, vectors)
        start = time.perf_counter()
        store = store_service(data_dir, url)
        seconds = time.perf_counter() - start
        stop([store])
    return seconds


def print_scale(s):
    print(f"\nscale-out at {SIZE:,} faces (two clients; with 2 replicas one on each):")
    print(f"  {'':24} {'insert faces/s':>15} {'/similar p50':>13} {'p99':>8} {'start-up':>9}")
    for name in ("sqlite", "postgresql, 1 replica", "postgresql, 2 replicas"):
        c = s[name]
        print(
            f"  {name:24} {c['insert_faces_per_s']:15.0f} {c['similar_p50_ms']:10.1f} ms {c['similar_p99_ms']:5.1f} ms"
            f" {c['start_100k_s']:7.1f} s"
        )
    c = s["postgresql, 2 replicas"]
    print(
        f"  a write on one replica searchable on the other after p50 {c['seen_p50_ms']:.1f} ms, p99 {c['seen_p99_ms']:.1f} ms"
    )
    print(
        f"  start-up with {s['start_size']:,} faces: SQLite {s['start_s']['sqlite']:.1f} s,"
        f" PostgreSQL {s['start_s']['postgresql']:.1f} s"
    )
