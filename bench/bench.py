"""facerec next to the reference pipelines, side by side on the same photos, in one run.

    make bench                      # every photo of 1 MP or more in ../shared/data/faces/
    make bench ARGS="--photos DIR"  # or your own folder

1. /detect latency, photo by photo, one request at a time, in --rounds rounds (medians over rounds):
   facerec through its HTTP API (services started here) with each DETECTOR (proposals, the default,
   and hog, HOG's whole scan), the original service's pipeline and the face_recognition library
   (bench/references.py, each in a worker process of its own). Faces found, and facerec's recall of
   the faces of 100 px or more that the references find (the same face: boxes overlapping at IoU >=
   0.5), by photo set for the photos of 8 MP or more and for the group photos, with every face one
   path finds and the other does not.
2. Throughput with every core busy, and with one worker; each worker's peak memory.
   small: photos under 1 MP, in process: recall of the original's faces by size class, and the faces
   under 100 px that facerec now finds on them.
   recall (bench/recall.py): per labelled set, the share of photos of a named person with no face found,
   before and after the faces YuNet is sure of, beside HOG alone and YuNet alone; false faces per 100
   photos without people.
   many: a photo of 100 faces (the LFW photos pasted in a grid), both detectors, in process.
   frames: the video's 640x360 frames in order through find_frame_faces on one core, p50 and p99 ms: faces
   found; every face described; only new faces described (those not overlapping a face of the frame before).
3. dlib itself: encoding time per face and HOG time on the 1080p photo.
4. The store: insert rate over HTTP, and /similar latency at 10 k, 100 k and 1 M faces (real
   descriptors plus jittered copies), its start-up time and memory per face.
5. A detect worker's peak memory on a 36 MP JPEG.
6. `facerec ingest`: a folder of the same photos against part 2's 2-worker throughput, the real clip
   (frames, faces, people, seconds), and its peak memory over the clip repeated 200 times.
7. The stream service on the real clip, looping: output fps, latency, detections a second, CPU and
   memory, at 640x360, at 1080p and with four viewers (bench/stream.py), beside the seed's loop.
8. Calls over WebRTC: 1, 2 and 3 at once at 640x360 and 1280x720, the clip as each caller's camera: fps
   back and the server's latency per frame; and one call's glass-to-glass latency from chromium, its
   camera a canvas that writes the time on each frame (bench/webrtc.py, bench/glass.html).
9. Background filters and broadcast calls (bench/background.py): per frame the segmentation, the
   compositing and the whole filter at 640x360 and 1280x720, the mask against a reference and its
   flicker, a call's fps with each filter, one broadcast call and one broadcast stream with 1, 5 and 10
   WHEP and 3 MJPEG viewers.
   against (bench/against.py, only when asked): the photo pipeline in process against itself at the
   git revision --against, on part 1's photos.
10. Only with --parts scale (bench/scale.py): the store on PostgreSQL with one and two replicas next to
   SQLite at 100 k faces, how soon a write on one replica is searchable on the other, start-up at 1 M.

Prints a table and writes bench/results.json.
"""

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import dlib  # noqa: E402  (after services, which puts the repo on sys.path)
import numpy as np
import references
import requests
import scale
from against import against_bench, print_against
from background import background_bench, print_background
from PIL import Image
from recall import print_recall, recall_bench
from services import DETECT, FACES, REPO, STORE, peak_rss_mb, rss_mb, start_services, stop_services, worker_pids
from stream import print_stream, stream_bench
from webrtc import print_webrtc, webrtc_bench

from facerec.service import blas
from facerec.service.config import DEFAULTS
from facerec.vision.boxes import Box, iou
from facerec.vision.faces import Models, analyse_photo, find_frame_faces
from facerec.vision.images import decode_image

CORES = os.cpu_count()
CLASSES = [("1-2.5 MP (1080p)", 1, 2.5), ("2.5-8 MP", 2.5, 8), (">= 8 MP (12 MP)", 8, 1000)]
STORE_SIZES = [10_000, 100_000, 1_000_000]
WARM_UP = FACES / "face_recognition_test_images/obama.jpg"
DETECTORS = {"facerec": "proposals", "facerec hog": "hog"}


def photos_of(folder, min_mp=1.0):
    """Every image of `min_mp` megapixels or more under `folder`, with its size in MP."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        try:
            with Image.open(path) as image:
                mp = image.width * image.height / 1e6
        except (OSError, ValueError):
            continue
        if mp >= min_mp:
            found.append((path, mp))
    return found


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def summary(seconds, mps):
    ms = [s * 1000 for s in seconds]
    by_class = {}
    for label, low, high in CLASSES:
        inside = [m for m, mp in zip(ms, mps) if low <= mp < high]
        by_class[label] = statistics.median(inside) if inside else None
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 95), "by_class_ms": by_class}


# ---- 1 and 2: the pipelines on the photos ----------------------------------------------------------


def facerec_pass(photos, workers, clients, detector="proposals"):
    """Latency photo by photo (when clients == 1) or throughput; boxes per photo; workers' peak RSS."""
    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir, DETECT_WORKERS=workers, DETECTOR=detector)
        try:
            session = requests.Session()
            for _ in range(workers * 2):  # each worker's first request loads nothing, but warms caches
                session.post(DETECT + "/detect", data=WARM_UP.read_bytes(), timeout=120).raise_for_status()
            results = [None] * len(photos)
            todo = iter(range(len(photos)))
            lock = threading.Lock()

            def client():
                s = requests.Session()
                while True:
                    with lock:
                        i = next(todo, None)
                    if i is None:
                        return
                    data = photos[i][0].read_bytes()
                    while True:
                        start = time.perf_counter()
                        r = s.post(DETECT + "/detect", data=data, timeout=300)
                        if r.status_code != 503:
                            break
                        time.sleep(0.05)
                    r.raise_for_status()
                    boxes = [tuple(f["box"][k] for k in ("left", "top", "width", "height")) for f in r.json()["faces"]]
                    results[i] = (boxes, time.perf_counter() - start)

            start = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            peak = max(peak_rss_mb(pid) for pid in worker_pids(procs[1]))
        finally:
            stop_services(procs)
    return results, wall, peak


def reference_pass(name, photos, workers):
    """The reference `name` over the photos in `workers` processes: results per photo, wall time, peak RSS."""
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=references.run, initargs=(name, WARM_UP)) as pool:
        start = time.perf_counter()
        out = list(pool.map(references.run, [name] * len(photos), [p for p, _ in photos]))
        wall = time.perf_counter() - start
    return [(boxes, seconds) for boxes, seconds, _ in out], wall, max(peak for _, _, peak in out)


def overlap(a, b):
    """IoU of two (left, top, width, height) tuples, as the reference pipelines' results hold them."""
    return iou(Box(*a), Box(*b))


def recall(ours, theirs_lists, min_px=references.MIN_FACE_PX):
    """(faces of min_px or more that any reference found, how many of those facerec found), over all photos."""
    wanted = found = 0
    for our_boxes, *their_boxes in zip(ours, *theirs_lists):
        union = []
        for box in (b for boxes in their_boxes for b in boxes if min(b[2], b[3]) >= min_px):
            if all(overlap(box, u) < 0.5 for u in union):
                union.append(box)
        wanted += len(union)
        found += sum(any(overlap(u, b) >= 0.5 for b in our_boxes) for u in union)
    return wanted, found


# ---- 3: dlib itself --------------------------------------------------------------------------------


def dlib_speed():
    models = Models()
    photo = decode_image((FACES / "fr_examples/obama/obama-1080p.jpg").read_bytes())
    times = []
    for _ in range(5):
        start = time.perf_counter()
        rects = models.detector(photo.pixels, 0)
        times.append(time.perf_counter() - start)
    group = decode_image((FACES / "dlib_faces/_unlabeled_group/bald_guys.jpg").read_bytes())  # many faces
    rects = models.detector(group.pixels, 1)
    shapes = dlib.full_object_detections([models.predictor(group.pixels, r) for r in rects])
    encode = []
    for _ in range(5):
        start = time.perf_counter()
        models.encoder.compute_face_descriptor(group.pixels, shapes)
        encode.append((time.perf_counter() - start) / len(shapes))
    return {
        "hog_1080p_ms": statistics.median(times) * 1000,
        "encode_ms_per_face": statistics.median(encode) * 1000,
        "faces_in_batch": len(shapes),
        "build": models.build,
    }


# ---- 4: the store ----------------------------------------------------------------------------------


def real_descriptors(folder=FACES):
    """Every face in the photos under `folder` (default: every shared set), as facerec describes it."""
    models = Models()
    return np.array([f.descriptor for p, _ in photos_of(folder, 0) for f in analyse_photo(models, p.read_bytes())[1]])


def jittered(real, count, rng):
    """`count` descriptors: the real ones, then copies with noise (each a distinct point, like new faces)."""
    picks = real[rng.integers(0, len(real), count)]
    out = picks + rng.normal(0, 0.02, picks.shape).astype(np.float32)
    out[: min(len(real), count)] = real[:count]
    return out


def similar_latency(ids, rng, queries=400):
    session = requests.Session()
    ms = []
    for face in (ids[i] for i in rng.integers(0, len(ids), queries)):
        start = time.perf_counter()
        session.get(f"{STORE}/faces/{face}/similar", timeout=30).raise_for_status()
        ms.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def bulk_insert(path, vectors):
    """Faces written straight into the store's table, as the store would write them (bench set-up only)."""
    db = sqlite3.connect(path)
    rows = (
        (hashlib.sha256(v.tobytes()).hexdigest(), v.tobytes(), "bench", 0, 0, 100, 100, "2026-01-01T00:00:00")
        for v in vectors.astype("<f4")
    )
    with db:
        db.executemany(
            "INSERT OR IGNORE INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width,"
            " box_height, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    ids = [row[0] for row in db.execute("SELECT id FROM faces")]
    db.close()
    return ids


def store_bench(real, seed=0):
    rng = np.random.default_rng(seed)
    vectors = jittered(real, STORE_SIZES[-1], rng)
    out = {}
    with tempfile.TemporaryDirectory() as data_dir:
        path = os.path.join(data_dir, "faces.sqlite3")
        procs = start_services(data_dir, names=("store",))
        try:
            base_rss = rss_mb(worker_pids(procs[0])[0])  # the store's one worker, empty
            # Insert rate over HTTP: one request per photo of 4 faces, each an acknowledged, durable commit.
            session, first = requests.Session(), STORE_SIZES[0]
            start = time.perf_counter()
            for i in range(0, first, 4):
                faces = [
                    {"descriptor": v.tolist(), "box": {"left": 0, "top": 0, "width": 100, "height": 100}}
                    for v in vectors[i : i + 4]
                ]
                session.post(
                    STORE + "/faces", json={"photo_sha256": f"{i:064x}", "faces": faces}, timeout=30
                ).raise_for_status()
            out["insert_faces_per_s"] = first / (time.perf_counter() - start)
        finally:
            stop_services(procs)
        done = first
        for size in STORE_SIZES:
            ids = bulk_insert(path, vectors[done:size]) if size > done else None
            done = size
            start = time.perf_counter()
            procs = start_services(data_dir, names=("store",))
            try:
                started = time.perf_counter() - start
                pid = worker_pids(procs[0])[0]
                ids = ids or [row[0] for row in sqlite3.connect(path).execute("SELECT id FROM faces")]
                out[size] = {
                    "start_s": started,
                    **similar_latency(ids, rng),
                    "rss_mb": rss_mb(pid),
                    "kb_per_face": (rss_mb(pid) - base_rss) * 1024 / size,
                }
                if size > first:  # what each face past the first 10 k costs, fixed costs (BLAS buffers) aside
                    out[size]["marginal_kb_per_face"] = (
                        (out[size]["rss_mb"] - out[first]["rss_mb"]) * 1024 / (size - first)
                    )
            finally:
                stop_services(procs)
    return out


# ---- 5: a 36 MP JPEG -------------------------------------------------------------------------------


def peak_on_36mp():
    src = cv2.imread(str(FACES / "deepface_tests/person_img38/img40.jpg"))
    factor = (36e6 / (src.shape[0] * src.shape[1])) ** 0.5
    big = cv2.resize(src, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)  # 36 MP, same shape
    ok, jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir, DETECT_WORKERS=1)
        try:
            worker = worker_pids(procs[1])[0]
            requests.post(DETECT + "/detect", data=WARM_UP.read_bytes(), timeout=120).raise_for_status()
            before = peak_rss_mb(worker)
            r = requests.post(DETECT + "/detect", data=jpeg.tobytes(), timeout=300)
            r.raise_for_status()
            return {"before_mb": before, "peak_mb": peak_rss_mb(worker), "faces": len(r.json()["faces"])}
        finally:
            stop_services(procs)


# ---- 6: facerec ingest -----------------------------------------------------------------------------

CLIP = FACES.parent / "video" / "short_hamilton_clip.mp4"


def ingest_pass(folder, workers=2):
    """facerec ingest's run over `folder` (in this process, timed from the first file to the last
    answer; the command's start-up, about a second, is not counted), on fresh services."""
    from facerec.cli.http import Service
    from facerec.cli.ingest import Ingest, find_files

    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir, DETECT_WORKERS=workers)
        try:
            session = requests.Session()
            for _ in range(workers * 2):  # as facerec_pass warms its workers
                session.post(DETECT + "/detect", data=WARM_UP.read_bytes(), timeout=120).raise_for_status()
            files = find_files([str(folder)])
            run = Ingest(Service(DETECT), Service(STORE))
            start = time.perf_counter()
            run.run(files)
            wall = time.perf_counter() - start
        finally:
            stop_services(procs)
    assert all(f.outcome == "done" for f in files), [(f.path, f.reason) for f in files if f.outcome != "done"]
    return wall, run.window.limit


def cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "facerec.cli", *args],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )


def clip_pass():
    """The real clip through `facerec ingest` (faces from 40 px, as in the clip's audience): frames, faces,
    people after ingest and after a re-cluster, and each person's frames."""
    with tempfile.TemporaryDirectory() as data_dir:
        procs = start_services(data_dir, DETECT_WORKERS=2, MIN_FACE_PX=40)
        try:
            start = time.perf_counter()
            run = cli("ingest", str(CLIP), "--json", "--detect", DETECT, "--store", STORE)
            line = json.loads(run.communicate()[0].splitlines()[-1])
            wall = time.perf_counter() - start
            people = requests.get(STORE + "/people", timeout=30).json()
            reclustered = requests.post(STORE + "/people/recluster", timeout=300).json()
            times = [
                sorted(f["time"] for f in requests.get(f"{STORE}/people/{p['id']}", timeout=30).json()["faces"])
                for p in requests.get(STORE + "/people", timeout=30).json()["people"]
            ]
            export_dir = Path(__file__).parent / ".cache" / "clip-export"
            shutil.rmtree(export_dir, ignore_errors=True)
            cli("export", str(export_dir), "--store", STORE).wait()
        finally:
            stop_services(procs)
    return {
        "frames": line["frames"],
        "faces": line["faces"],
        "wall_s": wall,
        "people_after_ingest": people["total"],
        "people_after_recluster": reclustered["people"],
        "unknown_after_recluster": reclustered["unknown"],
        "times_by_person": times,
        "export": str(export_dir),
    }


def long_video(path, copies):
    """The clip `copies` times over, as one MPEG-4 file."""
    capture = cv2.VideoCapture(str(CLIP))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for _ in range(copies):
        for frame in frames:
            writer.write(frame)
    writer.release()


def long_video_pass(copies, limit_s=600):
    """facerec ingest over the clip `copies` times over: its RSS every second, peak, frames, wall."""
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        long_video(video, copies)
        procs = start_services(tmp, DETECT_WORKERS=2)
        try:
            start = time.perf_counter()
            run = cli("ingest", str(video), "--json", "--detect", DETECT, "--store", STORE)
            samples = []
            while run.poll() is None and time.perf_counter() - start < limit_s:
                samples.append(rss_mb(run.pid))
                time.sleep(1)
            peak = peak_rss_mb(run.pid) if run.poll() is None else None
            if run.poll() is None:
                run.kill()
            out = run.communicate()[0]
            wall = time.perf_counter() - start
        finally:
            stop_services(procs)
    line = json.loads(out.splitlines()[-1]) if out.strip() else {}
    tenth = samples[max(1, len(samples) // 10)] if samples else None
    return {
        "copies": copies,
        "video_s": copies * 9.2,
        "frames": line.get("frames"),
        "wall_s": wall,
        "finished": bool(line),
        "rss_at_10pct_mb": tenth,
        "rss_last_mb": samples[-1] if samples else None,
        "rss_max_sampled_mb": max(samples) if samples else None,
        "peak_mb": peak,
    }


def ingest_bench(photos, report, rounds=3, copies=200):
    """Part 6 into `report`: per round, part 2's 2-worker pass and an ingest of the same photos, side by side."""
    # Distinct photos, the warm-up photo left out: ingest rightly sends a photo the store holds only once.
    distinct = {hashlib.sha256(WARM_UP.read_bytes()).hexdigest(): None}
    for path, mp in photos:
        distinct.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), (path, mp))
    photos = [p for p in distinct.values() if p]
    out = {"photos": len(photos), "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, (path, _) in enumerate(photos):
            os.symlink(path.resolve(), folder / f"{i:03d}-{path.name}")
        for _ in range(rounds):
            _, wall, _ = facerec_pass(photos, 2, 4)
            ingest_wall, window = ingest_pass(folder)
            out["rounds"].append(
                {
                    "clients_photos_per_s": len(photos) / wall,
                    "ingest_photos_per_s": len(photos) / ingest_wall,
                    "ratio": wall / ingest_wall,
                    "window": window,
                }
            )
            print(f"ingest round: {out['rounds'][-1]}", flush=True)
    out["ratio_median"] = statistics.median(r["ratio"] for r in out["rounds"])
    out["clip"] = clip_pass()
    print(f"clip: {out['clip']}", flush=True)
    out["long_video"] = long_video_pass(copies)
    report["ingest"] = out


# ---- the run ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(FACES), help="a folder of photos (default: the shared sets)")
    parser.add_argument("--min-mp", type=float, default=1.0)
    parser.add_argument(
        "--stride",
        type=int,
        default=1,
        help="every Nth photo under 8 MP (those of 8 MP or more and group photos all), to keep a run short",
    )
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds; medians over them")
    parser.add_argument(
        "--references",
        default=",".join(references.PIPELINES),
        help="the reference pipelines to run beside facerec (original is needed for recall)",
    )
    parser.add_argument(
        "--parts",
        default="photos,small,recall,many,frames,dlib,store,ingest,stream,webrtc,background",
        help="which of photos, against, small, recall, many, frames, dlib, store, ingest, stream, webrtc, background,"
        " scale to run",
    )
    parser.add_argument("--against", default="HEAD~1", help="the git revision the against part compares with")
    parser.add_argument("--stream-minutes", type=int, default=10, help="the stream part's 640x360 memory run")
    parser.add_argument("--copies", type=int, default=200, help="the long video of part 6: the clip this many times")
    parser.add_argument("--scale-start-size", type=int, default=1_000_000, help="faces for scale's start-up time")
    args = parser.parse_args()
    parts = args.parts.split(",")
    out = Path(__file__).parent / "results.json"
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {CORES} cores, Python {platform.python_version()}"
    }
    if "photos" in parts:
        photos = selected(args)
        print(f"{len(photos)} photos of {args.min_mp} MP or more; {CORES} cores", flush=True)
        photo_bench(photos, report, args.rounds, args.references.split(","))
        loaded(report, "photos")
        out.write_text(json.dumps(report, indent=2))
    if "against" in parts:
        report["against"] = against_bench(selected(args), args.against, args.rounds)
        loaded(report, "against")
        out.write_text(json.dumps(report, indent=2))
    if "small" in parts:
        report["small"] = small_photos(args.photos, 4 * args.stride)
        loaded(report, "small")
        out.write_text(json.dumps(report, indent=2))
    if "recall" in parts:
        report["no_face"] = recall_bench(Path(args.photos))  # "recall" is the photos part's
        loaded(report, "recall")
        out.write_text(json.dumps(report, indent=2))
    if "many" in parts:
        report["many"] = many_faces(args.rounds)
        loaded(report, "many")
    if "frames" in parts:
        report["frames"] = on_one_core(frames)
        loaded(report, "frames")
    if "dlib" in parts:
        report["dlib"] = dlib_speed()
        report["detect_36mp"] = peak_on_36mp()
    real = real_descriptors() if "store" in parts else real_descriptors(FACES / "celeb8") if "scale" in parts else None
    if "store" in parts:
        report["store"] = store_bench(real)
    if "ingest" in parts:
        ingest_bench(photos_of(args.photos, args.min_mp), report, copies=args.copies)
        out.write_text(json.dumps(report, indent=2))
    if "stream" in parts:
        report["stream"] = stream_bench(minutes=args.stream_minutes)
    if "webrtc" in parts:
        report["webrtc"] = webrtc_bench()
    if "background" in parts:
        report["background"] = background_bench()
    if "scale" in parts:
        size = max(args.scale_start_size, scale.SIZE + scale.PROPAGATIONS)
        report["scale"] = scale.scale_bench(jittered(real, size, np.random.default_rng(1)), args.scale_start_size)
    print_table(report)
    out.write_text(json.dumps(report, indent=2))


def selected(args):
    """Part 1's photos: every --stride-th under 8 MP, and all those of 8 MP or more and group photos."""
    return [
        (p, mp)
        for i, (p, mp) in enumerate(photos_of(args.photos, args.min_mp))
        if i % args.stride == 0 or mp >= 8 or "_unlabeled_group" in p.parts
    ]


def loaded(report, part):
    """The machine's load average (1, 5, 15 minutes) as `part` ends: what the other work on it was."""
    report.setdefault("load_average", {})[part] = [round(x, 1) for x in os.getloadavg()]


def photo_bench(photos, report, rounds, pipelines):
    """Parts 1 and 2 into `report`, beside the reference `pipelines`."""
    mps = [mp for _, mp in photos]
    report["photos"] = len(photos)
    runs = []  # a round: {pipeline: (per photo (boxes, seconds), peak MB of its worker)}
    for done in range(rounds):
        run = {name: facerec_pass(photos, 1, 1, detector)[::2] for name, detector in DETECTORS.items()}
        run.update({name: reference_pass(name, photos, 1)[::2] for name in pipelines})
        runs.append(run)
        print(f"latency round {done + 1} of {rounds} done", flush=True)
    report["latency"] = {}
    for name in runs[0]:
        rounds_ = [summary([s for _, s in run[name][0]], mps) for run in runs]
        report["latency"][name] = {
            "median_ms": statistics.median(r["median_ms"] for r in rounds_),
            "p95_ms": statistics.median(r["p95_ms"] for r in rounds_),
            "by_class_ms": {label: _median([r["by_class_ms"][label] for r in rounds_]) for label, _, _ in CLASSES},
            "rounds": rounds_,
            "faces": sum(len(b) for b, _ in runs[0][name][0]),
            "peak_worker_mb": max(run[name][1] for run in runs),
        }
    # Each ratio is taken within its round (side by side), then the median over rounds.
    report["speedup"] = {}
    for ours, theirs in (
        ("facerec", "original"),
        ("facerec hog", "original"),
        ("facerec", "facerec hog"),
        ("facerec", "face_recognition"),
    ):
        if theirs not in report["latency"]:
            continue
        ratios = {}
        for label, _, _ in [("all", 0, 0), *CLASSES]:
            key = "median_ms" if label == "all" else None
            per_round = []
            for r_ours, r_theirs in zip(report["latency"][ours]["rounds"], report["latency"][theirs]["rounds"]):
                a = r_ours[key] if key else r_ours["by_class_ms"][label]
                b = r_theirs[key] if key else r_theirs["by_class_ms"][label]
                if a and b:
                    per_round.append(b / a)
            if per_round:
                ratios[label] = {"median": statistics.median(per_round), "rounds": per_round}
        report["speedup"][f"{ours} vs {theirs}"] = ratios
    boxes = {name: [b for b, _ in results] for name, (results, _) in runs[0].items()}
    report["recall"] = recall_report(photos, boxes)
    print("latency done", flush=True)
    report["throughput"] = {}
    for workers in sorted({1, CORES}):
        _, wall, peak = facerec_pass(photos, workers, 2 * workers)
        report["throughput"][f"facerec, {workers} worker(s)"] = {
            "photos_per_s": len(photos) / wall,
            "peak_worker_mb": peak,
        }
    for name in pipelines:
        _, wall, peak = reference_pass(name, photos, CORES)
        report["throughput"][f"{name}, {CORES} processes"] = {
            "photos_per_s": len(photos) / wall,
            "peak_worker_mb": peak,
        }
    print("throughput done", flush=True)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def photo_name(path):
    """A photo's path within the shared sets (or as given, for a photo from elsewhere)."""
    try:
        return str(Path(path).relative_to(FACES))
    except ValueError:
        return str(path)


def photo_set(path):
    """The shared set a photo belongs to (its top folder), or the folder of a photo from elsewhere."""
    return Path(photo_name(path)).parts[0] if photo_name(path) != str(path) else Path(path).parent.name


def recall_report(photos, boxes):
    """Recall of the original's faces of 100 px or more, per detector: overall, per set on the photos of
    8 MP or more, on the group photos; and each face found by one detector and not the other."""
    out = {}
    groups = {"all": [True] * len(photos)}
    for name in sorted({photo_set(p) for p, mp in photos if mp >= 8}):
        groups[f">= 8 MP, {name}"] = [mp >= 8 and photo_set(p) == name for p, mp in photos]
    groups["group photos"] = ["_unlabeled_group" in Path(p).parts for p, _ in photos]
    for label, keep in groups.items():
        out[label] = {}
        for name in DETECTORS:
            ours = [b for b, k in zip(boxes[name], keep) if k]
            wanted, found = recall(ours, [[b for b, k in zip(boxes["original"], keep) if k]])
            out[label][name] = {"reference_faces": wanted, "found": found, "recall": found / wanted if wanted else None}
    out["differences"] = differences(photos, boxes)
    return out


def differences(photos, boxes, min_px=references.MIN_FACE_PX):
    """Every face that one detector finds and the other (or the original) does not, by photo."""

    def unmatched(mine, others):
        return [b for b in mine if min(b[2], b[3]) >= min_px and all(overlap(b, o) < 0.5 for o in others)]

    out = []
    for i, (path, mp) in enumerate(photos):
        row = {
            "photo": photo_name(path),
            "mp": round(mp, 1),
            "original_not_found": unmatched(boxes["original"][i], boxes["facerec"][i]),
            "only_proposals": unmatched(boxes["facerec"][i], boxes["facerec hog"][i]),
            "only_hog": unmatched(boxes["facerec hog"][i], boxes["facerec"][i]),
        }
        if row["original_not_found"] or row["only_proposals"] or row["only_hog"]:
            out.append(row)
    return out


# ---- small photos, many faces, video frames ----------------------------------------------------------

SMALL_CLASSES = [("< 0.35 MP (LFW, celeb)", 0, 0.35), ("0.35-1 MP", 0.35, 1.0)]


def small_photos(folder, stride=4):
    """Photos under 1 MP (every `stride`-th, to keep the run short), in process, with the service's
    settings: recall of the original's faces of 100 px or more with each detector, and all the faces
    each finds (the small ones included)."""
    models = Models()
    photos = photos_of(folder, 0)
    photos = [(p, mp) for p, mp in photos if mp < 1][::stride]
    rows = []
    for path, mp in photos:
        data = path.read_bytes()
        row = {"mp": mp, "original": references.original(data)}
        for name, detector in DETECTORS.items():
            _, faces = analyse_photo(
                models, data, DEFAULTS["MIN_FACE_PX"], DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["SMALL_FACE_PX"], detector
            )
            row[name] = [(f.box.left, f.box.top, f.box.width, f.box.height) for f in faces]
        rows.append(row)
    out = {"photos": len(rows), "stride": stride}
    for label, low, high in SMALL_CLASSES:
        inside = [r for r in rows if low <= r["mp"] < high]
        out[label] = {"photos": len(inside)}
        for name in DETECTORS:
            wanted, found = recall([r[name] for r in inside], [[r["original"] for r in inside]])
            out[label][name] = {
                "reference_faces": wanted,
                "found": found,
                "recall": found / wanted if wanted else None,
                "faces": sum(len(r[name]) for r in inside),
                "under_100px": sum(min(b[2], b[3]) < 100 for r in inside for b in r[name]),
            }
        out[label]["original_faces"] = sum(len(r["original"]) for r in inside)
    return out


def mosaic_of_faces():
    """The 100 LFW photos (250x250, a face of about 110 px each) pasted in a 10 x 10 grid: a 6.25 MP
    JPEG of 100 faces."""
    tiles = [cv2.imread(str(p)) for p in sorted((FACES / "lfw10").rglob("*.jpg"))][:100]
    rows = [np.hstack(tiles[i : i + 10]) for i in range(0, len(tiles), 10)]
    return cv2.imencode(".jpg", np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def many_faces(rounds):
    """A photo of 100 faces through both detectors, in process, in turn, `rounds` times: wall and CPU time."""
    models, data = Models(), mosaic_of_faces()
    seconds, cpu, found = {name: [] for name in DETECTORS}, {name: [] for name in DETECTORS}, {}
    for _ in range(rounds):
        for name, detector in DETECTORS.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            _, faces = analyse_photo(
                models, data, DEFAULTS["MIN_FACE_PX"], DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["SMALL_FACE_PX"], detector
            )
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            found[name] = len(faces)
    return {
        name: {
            "median_ms": statistics.median(seconds[name]) * 1000,
            "cpu_median_ms": statistics.median(cpu[name]) * 1000,
            "faces": found[name],
        }
        for name in DETECTORS
    }


def on_one_core(fn):
    """fn() in a fresh process with one BLAS and OpenMP thread (read when the libraries load) and one OpenCV
    thread (onnxruntime's is one already, facerec/vision/proposals.py)."""
    saved = dict(os.environ)
    os.environ.update(blas.environment())
    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn).result()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def frames():
    """Every frame of the shared video (640x360) in order through find_frame_faces on one core: faces
    found alone; every face also described in every frame; and, as a stream does it, only the new faces
    described, a face being new unless it overlaps (IoU over faces.KNOWN_IOU) a face found in the frame
    before, which is followed without HOG's look."""
    cv2.setNumThreads(1)
    models, video, frames_ = Models(), cv2.VideoCapture(str(CLIP)), []
    while (frame := video.read()[1]) is not None:
        frames_.append(frame)
    out = {"frames": len(frames_), "size": f"{frames_[0].shape[1]}x{frames_[0].shape[0]}"}
    for label, describe, follow in (
        ("find", False, False),
        ("find and describe every face", True, False),
        ("find and describe new faces", True, True),
    ):
        ms, cpu_ms, faces, described, known = [], [], 0, 0, []
        for frame in frames_:
            start, cpu = time.perf_counter(), time.thread_time()
            found = find_frame_faces(models, frame, describe=describe, known=known if follow else ())
            ms.append((time.perf_counter() - start) * 1000)
            cpu_ms.append((time.thread_time() - cpu) * 1000)
            faces += len(found)
            described += sum(f.descriptor is not None for f in found)
            known = [f.box for f in found]
        # CPU time as well: on a machine others share, it is what the frame costs, waiting for a core aside.
        out[label] = {
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "cpu_p50_ms": percentile(cpu_ms, 50),
            "cpu_p99_ms": percentile(cpu_ms, 99),
            "faces_per_frame": faces / len(frames_),
            "described": described,
        }
    return out


def print_table(report):
    print(f"\n{report['machine']}")
    if "latency" in report:
        print_photos(report)
    if "against" in report:
        print_against(report["against"])
    if "no_face" in report:
        print_recall(report["no_face"])
    if "small" in report:
        print(
            f"\nphotos under 1 MP (every {report['small']['stride']}th, {report['small']['photos']} photos), recall of the"
            " original's faces >= 100 px; all faces found, under 100 px:"
        )
        for label, _, _ in SMALL_CLASSES:
            v = report["small"][label]
            print(
                f"  {label}, {v['photos']} photos, the original finds {v['original_faces']}: "
                + "; ".join(
                    f"{name} {v[name]['found']}/{v[name]['reference_faces']}, {v[name]['faces']} faces, {v[name]['under_100px']}"
                    " under 100 px"
                    for name in DETECTORS
                )
            )
    if "many" in report:
        print(
            "\na photo of 100 faces (6.25 MP): "
            + "; ".join(
                f"{name} {v['median_ms']:.0f} ms (CPU {v['cpu_median_ms']:.0f} ms), {v['faces']} faces"
                for name, v in report["many"].items()
            )
        )
    if "frames" in report:
        f = report["frames"]
        print(f"\n{f['frames']} video frames of {f['size']} in order, one core:")
        for label, v in f.items():
            if isinstance(v, dict):
                print(
                    f"  {label:30} p50 {v['p50_ms']:5.1f} ms, p99 {v['p99_ms']:5.1f} ms; CPU p50 {v['cpu_p50_ms']:5.1f} ms,"
                    f" p99 {v['cpu_p99_ms']:5.1f} ms; {v['faces_per_frame']:.2f} faces a frame, {v['described']} described"
                )
    if "dlib" in report:
        d, m = report["dlib"], report["detect_36mp"]
        print(
            f"\ndlib {d['build']}: encoding {d['encode_ms_per_face']:.1f} ms/face (batch of {d['faces_in_batch']}),"
            f" HOG on the 1080p photo {d['hog_1080p_ms']:.0f} ms"
        )
        print(
            f"36 MP JPEG: detect worker peak {m['peak_mb']:.0f} MB (before it {m['before_mb']:.0f} MB), {m['faces']} faces"
        )
    if "ingest" in report:
        print_ingest(report["ingest"])
    if "store" in report:
        s = report["store"]
        print(f"\nstore: {s['insert_faces_per_s']:.0f} faces/s inserted over HTTP (4 a request, durable commits)")
        for size in STORE_SIZES:
            v = s[size]
            print(
                f"  {size:>9,} faces: /similar p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms;"
                f" start-up {v['start_s']:.1f} s; {v['kb_per_face']:.2f} KB/face above the empty store"
                + (
                    f", {v['marginal_kb_per_face']:.2f} KB for each face past 10 k"
                    if "marginal_kb_per_face" in v
                    else ""
                )
            )
    if "stream" in report:
        print_stream(report["stream"])
    if "webrtc" in report:
        print_webrtc(report["webrtc"])
    if "background" in report:
        print_background(report["background"])
    if "scale" in report:
        scale.print_scale(report["scale"])
    if "load_average" in report:
        print(
            "\nload average (1, 5, 15 min) as each part ended: "
            + "; ".join(f"{k} {v}" for k, v in report["load_average"].items())
        )


def print_ingest(i):
    print(f"\nfacerec ingest, a folder of {i['photos']} photos, beside part 2's 4 clients on 2 workers (photos/s):")
    for r in i["rounds"]:
        print(
            f"  clients {r['clients_photos_per_s']:5.2f}   ingest {r['ingest_photos_per_s']:5.2f}   ratio {r['ratio']:.2f}"
            f"   (window {r['window']})"
        )
    print(f"  median ratio {i['ratio_median']:.2f}")
    c = i["clip"]
    print(
        f"the clip ({CLIP.name}, faces from 40 px): {c['frames']} frames, {c['faces']} faces, {c['wall_s']:.1f} s;"
        f" people {c['people_after_ingest']} after ingest, {c['people_after_recluster']} after a re-cluster"
        f" ({c['unknown_after_recluster']} faces unknown); each person's frames (s): {c['times_by_person']}"
    )
    v = i["long_video"]
    print(
        f"a {v['video_s'] / 60:.0f}-minute video (the clip {v['copies']} times): {v['frames']} frames in {v['wall_s']:.0f} s"
        f"{'' if v['finished'] else ' (stopped at the time limit)'}; facerec ingest's RSS {v['rss_at_10pct_mb']:.0f} MB"
        f" at 10 %, {v['rss_last_mb']:.0f} MB at the end, at most {v['rss_max_sampled_mb']:.0f} MB"
    )


def print_photos(report):
    lat = report["latency"]
    print(f"{report['photos']} photos\n")
    head = ["", *lat]
    rows = [
        ("median ms / photo", *(f"{v['median_ms']:.0f}" for v in lat.values())),
        ("p95 ms / photo", *(f"{v['p95_ms']:.0f}" for v in lat.values())),
    ]
    for label, _, _ in CLASSES:
        rows.append(
            (
                f"median ms, {label}",
                *(f"{v['by_class_ms'][label]:.0f}" if v["by_class_ms"][label] else "-" for v in lat.values()),
            )
        )
    rows.append(("faces found", *(str(v["faces"]) for v in lat.values())))
    rows.append(("peak MB / worker", *(f"{v['peak_worker_mb']:.0f}" for v in lat.values())))
    width = max(len(r[0]) for r in rows)
    print(f"{head[0]:{width}} " + " ".join(f"{h:>17}" for h in head[1:]))
    for row in rows:
        print(f"{row[0]:{width}} " + " ".join(f"{c:>17}" for c in row[1:]))
    print("\nspeed-up, ratio of the medians within each round, then the median over rounds (each round's):")
    for pair, ratios in report["speedup"].items():
        print(
            f"  {pair}: "
            + "; ".join(
                f"{label} {r['median']:.1f}x ({', '.join(f'{x:.1f}' for x in r['rounds'])})"
                for label, r in ratios.items()
            )
        )
    print("\nrecall of the original's faces >= 100 px (IoU >= 0.5):")
    for label, by_detector in report["recall"].items():
        if label != "differences":
            print(
                f"  {label}: "
                + "; ".join(f"{name} {v['found']}/{v['reference_faces']}" for name, v in by_detector.items())
            )
    for row in report["recall"]["differences"]:
        print(
            f"  {row['photo']} ({row['mp']} MP): original's not found {row['original_not_found']},"
            f" only proposals {row['only_proposals']}, only hog {row['only_hog']}"
        )
    print("\nthroughput, photos/s:")
    for name, t in report["throughput"].items():
        print(f"  {name:32} {t['photos_per_s']:6.2f}   peak {t['peak_worker_mb']:.0f} MB/worker")


if __name__ == "__main__":
    main()
