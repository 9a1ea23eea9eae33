"""Sustained mixed load at saturation on loopback, with bad uploads in the mix.

    make load                      # 10 minutes, 8 clients
    python bench/load.py --seconds 60 --clients 8

Each client loops: POST /detect and PUT /api/detect with real photos, /faces/<id>/similar and jAlbum's
/api/search for faces seen so far, and bad uploads (text, a truncated JPEG). Reports throughput, p50/p99 per
kind, unexpected answers (anything but the right 2xx/4xx, or a 503 with Retry-After), and each
process's RSS after a warm-up (a tenth of the run, at most 60 s) and at the end. Writes bench/load.json.
"""

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests
from services import DETECT, FACES, STORE, rss_mb, start_services, stop_services, worker_pids

PHOTOS = sorted((FACES / "lfw10").glob("*/*.jpg")) + sorted((FACES / "fr_examples").glob("*/*.jp*g"))


def rss_by_pid(procs):
    """RSS of every process of both services (arbiters and workers), by pid."""
    return {pid: rss_mb(pid) for proc in procs for pid in [proc.pid, *worker_pids(proc)]}


def one_request(rng, seen):
    """(kind, expected statuses, response) of one randomly chosen request."""
    roll = rng.random()
    if roll < 0.45 or not seen:
        data = rng.choice(PHOTOS).read_bytes()
        if rng.random() < 0.5:
            return "detect", {200}, requests.post(DETECT + "/detect", data=data, timeout=60)
        return "api/detect", {200}, requests.put(DETECT + "/api/detect", data=data, timeout=60)
    if roll < 0.85:
        face = rng.choice(seen)
        if rng.random() < 0.5:
            return "similar", {200}, requests.get(f"{STORE}/faces/{face}/similar", timeout=60)
        return "api/search", {200}, requests.put(f"{STORE}/api/search?facetoken={face}&max-distance=0.36", timeout=60)
    bad = rng.choice([b"not a photo at all", rng.choice(PHOTOS).read_bytes()[:3000]])
    return "bad upload", {415, 422}, requests.post(DETECT + "/detect", data=bad, timeout=60)


def client(seed, deadline, seen, results):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            kind, expected, response = one_request(rng, seen)
        except requests.RequestException as e:
            results["errors"].append(type(e).__name__)
            continue
        elapsed = time.perf_counter() - start
        if response.status_code == 503 and "Retry-After" in response.headers:
            results["busy"].append(elapsed)
        elif response.status_code in expected:
            results[kind].append(elapsed)
            if kind == "detect":
                seen.extend(f["id"] for f in response.json()["faces"])
        else:
            results["errors"].append(f"{kind}: {response.status_code}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir)
        try:
            results, seen = defaultdict(list), []
            deadline = time.monotonic() + args.seconds
            threads = [threading.Thread(target=client, args=(i, deadline, seen, results)) for i in range(args.clients)]
            for t in threads:
                t.start()
            # "Start" RSS once the workers are warm (models touched, buffers and arenas grown): growth
            # after that is what a leak looks like.
            time.sleep(min(60, args.seconds / 10))
            rss_start = rss_by_pid(procs)
            for t in threads:
                t.join()
            rss_end = rss_by_pid(procs)
        finally:
            stop_services(procs)
    report = {
        "seconds": args.seconds,
        "clients": args.clients,
        "requests_per_s": sum(len(v) for k, v in results.items() if k != "errors") / args.seconds,
        "kinds": {
            kind: {"count": len(t), "p50_ms": 1000 * statistics.median(t), "p99_ms": 1000 * percentile(t, 0.99)}
            for kind, t in sorted(results.items())
            if kind != "errors" and t
        },
        "unexpected": len(results["errors"]),
        "unexpected_examples": sorted(set(results["errors"]))[:10],
        "rss_mb": {pid: [round(rss_start[pid], 1), round(rss_end.get(pid, 0), 1)] for pid in rss_start},
    }
    print(
        f"{args.clients} clients, {args.seconds:.0f} s: {report['requests_per_s']:.1f} requests/s, "
        f"{report['unexpected']} unexpected {report['unexpected_examples']}"
    )
    print(f"{'kind':12} {'count':>6} {'p50':>8} {'p99':>8}")
    for kind, k in report["kinds"].items():
        print(f"{kind:12} {k['count']:>6} {k['p50_ms']:>6.0f}ms {k['p99_ms']:>6.0f}ms")
    print("RSS MB (start → end):", ", ".join(f"{pid}: {a} → {b}" for pid, (a, b) in report["rss_mb"].items()))
    (Path(__file__).parent / "load.json").write_text(json.dumps(report, indent=2))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()
