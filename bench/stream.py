"""The stream service on the real clip, looping (`make bench ARGS="--parts stream"`; part of plain `make bench`).

Per scenario (the 640x360 clip with one viewer, for memory over a longer run; the clip resized to 1080p;
four viewers at once): the MJPEG frames each viewer gets a second, the latency from a frame's read to
its arrival at the viewer (both on this machine's monotonic clock: X-Frame-Read against the time the
part is received), the frames detection ran on a second, the CPU the service's processes used, and
their memory at the start and the end. Beside it, the reference: the seed's loop, detect and encode
every face of every frame in one process, on the same frames.
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
from facerec.run import Service, free_port, running  # noqa: E402

CLIP = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "video" / "short_hamilton_clip.mp4"
# Free ports chosen per run: two benchmarks on one machine never talk to each other's services.
STORE, STREAM = (f"http://127.0.0.1:{free_port()}" for _ in range(2))


def start(data_dir):
    """The store and the stream service, as `make run` starts them, on their own ports."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_STORE_URL=STORE)
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


def tree(pid):
    """The service's processes: the arbiter, its worker, and the worker's readers and detection workers."""
    root = psutil.Process(pid)
    return [root] + root.children(recursive=True)


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


def scenario(service, source, seconds, viewers, warm_up=5):
    stream = requests.post(STREAM + "/streams", json={"source": source, "loop": True}, timeout=30).json()
    url = f"{STREAM}/streams/{stream['id']}/mjpeg"
    time.sleep(warm_up)  # the workers load their models; the first faces are described
    processes = tree(service.pid)
    (reader,) = [psutil.Process(p) for p in requests.get(f"{STREAM}/health", timeout=10).json()["readers"]]
    cpu_before, rss_before, started = cpu_seconds(processes), rss_mb(processes), time.monotonic()
    reader_before = cpu_seconds([reader])
    results, detection, memory = [], [], [rss_before]
    threads = [threading.Thread(target=view, args=(url, seconds, results)) for _ in range(viewers)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        detection.append(requests.get(f"{STREAM}/streams/{stream['id']}", timeout=10).json()["detection_fps"])
        if len(detection) % 10 == 0:
            memory.append(rss_mb(tree(service.pid)))
    for t in threads:
        t.join()
    processes = tree(service.pid)
    wall = time.monotonic() - started
    cpu = (cpu_seconds(processes) - cpu_before) / wall
    reader_cpu = cpu_seconds([reader]) - reader_before
    requests.delete(f"{STREAM}/streams/{stream['id']}", timeout=10)
    latencies = [x * 1000 for _, lat, _ in results for x in lat[10:]]  # the first parts waited for the connection
    return {
        "seconds": round(wall),
        "viewers": viewers,
        "output_fps_each": [round(fps, 1) for fps, _, _ in results],
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "detection_fps_median": statistics.median(detection),
        "cpu_cores": round(cpu, 2),
        "cpu_share_of_machine": round(cpu / os.cpu_count(), 2),
        "rss_mb_samples": [round(m) for m in memory],
        # CPU time the reader spends on a frame (read, decode, draw, encode): what the output needs of a
        # core at the source's 30 fps, whatever else runs on the machine.
        "reader_cpu_ms_per_frame": round(1000 * reader_cpu / max(1, max(frames for _, _, frames in results)), 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


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


def stream_bench(seconds=120, short=45):
    """The three scenarios and the reference; a dict for bench/results.json."""
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        hd = resized_clip(folder, 1920, 1080)
        with start(folder) as (_, service):
            report["640x360, 1 viewer"] = scenario(service, str(CLIP), seconds, 1)
            report["1920x1080, 1 viewer"] = scenario(service, hd, short, 1)
            report["640x360, 4 viewers"] = scenario(service, str(CLIP), short, 4)
        report["reference fps, every frame detected and encoded, 640x360"] = reference(str(CLIP))
        report["reference fps, every frame detected and encoded, 1920x1080"] = reference(hd)
    return report


def print_stream(report):
    print("\nStream service (the clip looping; output fps per viewer, latency read -> viewer)")
    print(
        f"{'scenario':<22}{'fps out':>14}{'p50 ms':>9}{'p99 ms':>9}{'detect/s':>10}{'CPU cores':>11}"
        f"{'reader ms/frame':>17}{'RSS MB (every 10 s)':>24}{'load':>6}"
    )
    for name, r in report.items():
        if not isinstance(r, dict):
            print(f"{name}: {r}")
            continue
        fps = "/".join(str(f) for f in r["output_fps_each"])
        rss = f"{r['rss_mb_samples'][0]} .. {r['rss_mb_samples'][-1]}"
        print(
            f"{name:<22}{fps:>14}{r['latency_p50_ms']:>9}{r['latency_p99_ms']:>9}{r['detection_fps_median']:>10}"
            f"{r['cpu_cores']:>11}{r['reader_cpu_ms_per_frame']:>17}{rss:>24}{r['load_average']:>6}"
        )


if __name__ == "__main__":
    import json

    result = stream_bench(*(int(a) for a in sys.argv[1:3]))
    print_stream(result)
    print(json.dumps(result, indent=1))
