"""The stream service on the real clip, looping (`make bench ARGS="--parts stream"`; part of plain `make bench`).

Per scenario (the clip resized to 1080p; four viewers at once; the 640x360 clip with one viewer for
`--minutes`, 10 by default, for memory): the MJPEG frames each viewer gets a second, the latency from a
frame's read to its arrival at the viewer (both on this machine's monotonic clock: X-Frame-Read against
the time the part is received), the frames detection ran on a second, the CPU time each kind of process
(arbiter, web, reader, detection) spent per frame read, their memory (RSS) along the run, and the load
average. Before them, each step of a 1080p frame's CPU, as the service does it and as it did before
(`stages`). Beside them, the reference: the seed's loop, detect and encode every face of every frame in
one process, on the same frames. Run alone: `python bench/stream.py --minutes 10`.
"""

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.services import Service, free_port, running  # noqa: E402

CLIP = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "video" / "short_hamilton_clip.mp4"
# Free ports chosen per run: two benchmarks on one machine never talk to each other's services.
STORE, STREAM = (f"http://127.0.0.1:{free_port()}" for _ in range(2))


def start(data_dir):
    """The store and the stream service, as `make run` starts them, on their own ports."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_STORE_URL=STORE)
    env["FACEREC_STREAM_MEDIA_DIR"] = "/"  # the clip, and the resized copies written in a temporary folder
    return running(
        Service("store", env, bind=STORE[len("http://") :], quiet=True),
        Service("stream", env, bind=STREAM[len("http://") :], quiet=True),
    )


def resized_clip(folder, width, height):
    """The clip written again at width x height (MPEG-4 part 2, what OpenCV can always write)."""
    path = os.path.join(folder, f"clip-{height}p.mp4")
    source = cv2.VideoCapture(str(CLIP))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), source.get(cv2.CAP_PROP_FPS), (width, height))
    while True:
        ok, frame = source.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR))
    writer.release()
    return path


def view(url, seconds, results):
    """One viewer: read the MJPEG for `seconds`; appends (frames, [latency seconds]) to `results`."""
    latencies, frames, seqs, started = [], 0, [], time.monotonic()
    with requests.get(url, stream=True, timeout=30) as response:
        buffer = b""
        for chunk in response.iter_content(65536):
            buffer += chunk
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                headers = dict(
                    line.split(": ", 1) for line in buffer[:head_end].decode().split("\r\n")[1:] if ": " in line
                )
                length = int(headers["Content-Length"])
                if len(buffer) < head_end + 4 + length + 2:
                    break
                latencies.append(time.monotonic() - float(headers["X-Frame-Read"]))
                seqs.append(int(headers["X-Frame-Seq"]))
                frames += 1
                buffer = buffer[head_end + 4 + length + 2 :]
            if time.monotonic() - started > seconds:
                break
    results.append((frames / (time.monotonic() - started), latencies, seqs[-1] - seqs[0] if seqs else 0))


def roles(service):
    """The service's processes by what they do: {"arbiter", "web" (the gunicorn worker that owns the
    streams), "reader", "detection"} -> [psutil.Process]."""
    health = requests.get(f"{STREAM}/health", timeout=10).json()
    readers = [psutil.Process(p) for p in health["readers"]]
    return {
        "arbiter": [psutil.Process(service.pid)],
        "web": [readers[0].parent()],
        "reader": readers,
        "detection": [psutil.Process(p) for p in health["workers"]],
    }


def cpu_seconds(processes):
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mb(processes):
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def scenario(service, source, seconds, viewers, warm_up=5, rss_every=10):
    """One stream of `source` looping, watched by `viewers` for `seconds`. CPU is per frame read, per
    process role (robust to what else runs on the machine, unlike fps and latency); RSS per role every
    `rss_every` seconds."""
    stream = requests.post(STREAM + "/streams", json={"source": source, "loop": True}, timeout=30).json()
    url = f"{STREAM}/streams/{stream['id']}/mjpeg"
    time.sleep(warm_up)  # the workers load their models; the first faces are described
    processes = roles(service)
    cpu_before = {role: cpu_seconds(ps) for role, ps in processes.items()}
    memory = [{role: round(rss_mb(ps)) for role, ps in processes.items()}]
    loads, started = [os.getloadavg()[0]], time.monotonic()
    results, detection = [], []
    threads = [threading.Thread(target=view, args=(url, seconds, results)) for _ in range(viewers)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        detection.append(requests.get(f"{STREAM}/streams/{stream['id']}", timeout=10).json()["detection_fps"])
        loads.append(os.getloadavg()[0])
        if len(detection) % rss_every == 0:
            memory.append({role: round(rss_mb(ps)) for role, ps in processes.items()})
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    cpu = {role: cpu_seconds(ps) - cpu_before[role] for role, ps in processes.items()}
    memory.append({role: round(rss_mb(ps)) for role, ps in processes.items()})
    requests.delete(f"{STREAM}/streams/{stream['id']}", timeout=10)
    frames = max(1, max(read for _, _, read in results))
    latencies = [x * 1000 for _, lat, _ in results for x in lat[10:]]  # the first parts waited for the connection
    return {
        "seconds": round(wall),
        "viewers": viewers,
        "output_fps_each": [round(fps, 1) for fps, _, _ in results],
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "detection_fps_median": statistics.median(detection),
        "cpu_cores": round(sum(cpu.values()) / wall, 2),
        # CPU time each kind of process spends per frame read: what the stream needs of the machine at
        # the source's 30 fps, whatever else runs on it.
        "cpu_ms_per_frame": {role: round(1000 * c / frames, 1) for role, c in cpu.items()},
        "rss_mb": memory,
        "load_average": [round(min(loads), 1), round(statistics.median(loads), 1), round(max(loads), 1)],
    }


def stages(path, count=150, quality=80):
    """CPU per 1080p frame of each step of the reader and of a detection worker, in this process, as the
    service does them and as it did before (FFmpeg's own threads decoding into a new array, a copy into
    the ring, a copy to draw on; detection by HOG's whole scan). Steps are timed on this thread; the
    threads FFmpeg may start are in each loop's total (process CPU), so decoding is what the total has
    beyond the other steps. ms per frame, medians (totals: means)."""
    from facerec.vision.boxes import Box
    from facerec.vision.faces import Models, find_frame_faces
    from stream_service import drawing, reader
    from stream_service.messages import DrawnFace
    from stream_service.shared_frames import FrameRing

    cv2.setNumThreads(1)
    size = cv2.VideoCapture(path)
    height, width = int(size.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(size.get(cv2.CAP_PROP_FRAME_WIDTH))
    ring = FrameRing(f"facerec-bench-{os.getpid()}", (height, width), create=True)
    canvas, models = np.empty((height, width, 3), np.uint8), Models()
    faces = [DrawnFace(1, Box(800, 300, 300, 300), "unknown", "unknown", False)]
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality]
    steps, out = {}, {}

    def timed(name, fn, *args):
        started = time.thread_time()
        result = fn(*args)
        steps.setdefault(name, []).append(time.thread_time() - started)
        return result

    def loop(name, one):
        started = time.process_time()
        for seq in range(count):
            one(seq)
        out[f"{name}: total, all threads"] = round(1000 * (time.process_time() - started) / count, 2)

    old, new = cv2.VideoCapture(path, cv2.CAP_FFMPEG), reader.open_capture(path)  # FFmpeg's choice of threads; one

    def before(seq):
        _, frame = old.read()
        timed("before: copy into the ring", ring.put, seq, frame, 0.0)
        picture = timed("before: draw (on a new copy)", drawing.annotate, frame, faces, 30)
        timed(f"before: JPEG, quality {quality}", cv2.imencode, ".jpg", picture, jpeg)

    def after(seq):
        slot = ring.slot(seq)
        timed("now: decode (one thread, into the ring)", reader.read_into, new, slot)
        ring.written(seq, 0.0)
        timed("now: draw (on the reused canvas)", drawing.annotate, slot, faces, 30, canvas)
        timed(f"now: JPEG, quality {quality}", cv2.imencode, ".jpg", canvas, jpeg)

    again = reader.open_capture(path)

    def detect(seq):
        reader.read_into(again, ring.slot(seq))
        ring.written(seq, 0.0)
        if seq % 5 == 0:
            timed("before: detect (HOG whole scan of a 640 px copy)", _hog_640, models, ring.get(seq)[0])
            small, _ = timed("now: detect: the 640 px copy from the ring", ring.get, seq, 640)
            timed("now: detect: find_frame_faces on it (none described)", find_frame_faces, models, small, 40, False)

    try:
        loop("before: reader", before)
        loop("now: reader", after)
        loop("detection of every 5th frame, and decoding", detect)
    finally:
        ring.close(unlink=True)
    for name, times in steps.items():
        out[name] = round(1000 * statistics.median(times), 2)
    return out


def _hog_640(models, frame):
    """The worker's detection before: the frame shrunk to 640 px, HOG's whole scan (none described)."""
    small = cv2.resize(frame, (640, round(frame.shape[0] * 640 / frame.shape[1])), interpolation=cv2.INTER_AREA)
    return models.detector.run(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), 0, 0.0)


def reference(path, frames=90):
    """The seed's loop: every frame, HOG detection on the whole frame and every face encoded, one
    process. Frames a second."""
    import dlib

    from facerec.vision.faces import Models

    models = Models()
    capture = cv2.VideoCapture(path)
    started, count = time.monotonic(), 0
    while count < frames:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        rects = models.detector(rgb, 0)
        shapes = dlib.full_object_detections([models.predictor(rgb, r) for r in rects])
        if rects:
            models.encoder.compute_face_descriptor(rgb, shapes)
        count += 1
    return round(count / (time.monotonic() - started), 1)


def stream_bench(seconds=45, minutes=10):
    """The scenarios, the stages and the reference; a dict for bench/results.json. The 640x360 stream
    with one viewer runs for `minutes`, its memory sampled every minute."""
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        hd = resized_clip(folder, 1920, 1080)
        report["1920x1080 stages, CPU ms per frame"] = stages(hd)
        with start(folder) as (_, service):
            report["1920x1080, 1 viewer"] = scenario(service, hd, seconds, 1)
            report["640x360, 4 viewers"] = scenario(service, str(CLIP), seconds, 4)
            report["640x360, 1 viewer"] = scenario(service, str(CLIP), 60 * minutes, 1, rss_every=60)
        report["reference fps, every frame detected and encoded, 640x360"] = reference(str(CLIP))
        report["reference fps, every frame detected and encoded, 1920x1080"] = reference(hd)
    return report


def print_stream(report):
    print("\nStream service (the clip looping; output fps per viewer, latency read -> viewer; load: min/median/max)")
    print(f"{'scenario':<22}{'fps out':>16}{'p50 ms':>9}{'p99 ms':>9}{'detect/s':>10}{'CPU cores':>11}{'load':>16}")
    for name, r in report.items():
        if not isinstance(r, dict):
            print(f"{name}: {r}")
        elif "cpu_ms_per_frame" not in r:
            print(f"{name}:")
            for step, ms in r.items():
                print(f"  {step:<54}{ms:>8}")
        else:
            fps = "/".join(str(f) for f in r["output_fps_each"])
            load = "/".join(str(x) for x in r["load_average"])
            print(
                f"{name:<22}{fps:>16}{r['latency_p50_ms']:>9}{r['latency_p99_ms']:>9}{r['detection_fps_median']:>10}"
                f"{r['cpu_cores']:>11}{load:>16}"
            )
            print(f"  CPU ms per frame read: {r['cpu_ms_per_frame']}")
            print(f"  RSS MB (start, samples, end): {r['rss_mb']}")


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=45, help="the 1080p and four-viewer scenarios' length")
    parser.add_argument("--minutes", type=int, default=10, help="the 640x360 one-viewer run, memory every minute")
    args = parser.parse_args()
    result = stream_bench(args.seconds, args.minutes)
    print_stream(result)
    print(json.dumps(result, indent=1))
