"""Background filters and broadcast calls (`make bench ARGS="--parts background"`).

1. Per frame, at 640x360 and 1280x720 (the clip, resized), one core: the segmentation (the network and
   the mask's smoothing and scaling), the compositing of each filter given the mask, and the whole
   filter, p50 and p99; beside the reference, the JPEG encoding every frame of a watched stream costs.
2. The mask on every frame of the clip, against a reference: the general (square) network on the frame
   letterboxed into a square (nothing squeezed), where the product runs the landscape network on the
   frame as it is. "kept": of the reference's person pixels, the share the product's mask keeps;
   "leak": of the product's person pixels, the share the reference calls background; "faces": of the
   middle halves of the faces dlib finds, the share the mask keeps. Flicker: the share of pixels a
   frame that change side and change back the next frame, raw and smoothed, and how far the smoothed
   mask strays from the raw one.
3. A call (an aiortc caller in this process sending the clip, 640x360, 30 fps): the frames a second it
   gets back and the service's CPU with each background filter beside none, each measured REPEATS
   times in turn (medians).
4. A broadcast call: the caller, then 1, 5 and 10 WHEP viewers (aiortc, in this process: their H.264
   decoding is on the same two cores), then 3 MJPEG viewers besides: the frames a second each viewer
   gets, and the service's CPU (every process of its tree), per extra viewer.
5. A broadcast stream (the clip from its file, looped): the same viewers; its frames a second out of
   the reader instead of the caller's.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time

import cv2
import numpy as np
import psutil
import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from stream import CLIP, start
from webrtc import Camera, clip_frames, encoded

from facerec.vision.faces import Models
from facerec.vision.segmentation import GENERAL, Segmenter
from stream_service.backdrop import Backdrop, Hologram, blurred_background, composite

SIZES = ((640, 360), (1280, 720))
FILTERS = (None, "background-blur", "background-replace", "hologram")
GREEN = ("colour", (0, 255, 0))
REPEATS = 3


def all_frames():
    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    return frames


def percentiles(times):
    ms = np.array(times) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2)}


def timed(work, frames):
    times = []
    for frame in frames:
        begin = time.perf_counter()
        work(frame)
        times.append(time.perf_counter() - begin)
    return percentiles(times)


def costs(frames):
    """Per size: segmentation, each filter's compositing and each whole filter, in ms a frame."""
    cv2.setNumThreads(1)  # as in the stream's process
    rows = [costs_at([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]) for size in SIZES]
    for row in rows:
        print(row, file=sys.stderr, flush=True)
    return rows


def costs_at(sized):
    height, width = sized[0].shape[:2]
    segmenter = Segmenter()
    masks = [segmenter.mask(f) for f in sized]  # warm, and the masks for the compositing alone
    segmenter.forget()
    row = {"size": f"{width}x{height}", "segmentation": timed(segmenter.mask, sized)}
    green = np.full((height, width, 3), (0, 255, 0), np.uint8)
    hologram = Hologram(np.random.default_rng(0))
    compositing = {
        "background-blur": lambda fm: composite(fm[0], fm[1], blurred_background(fm[0]), None),
        "background-replace": lambda fm: composite(fm[0], fm[1], green.copy(), None),
        "hologram": lambda fm: composite(fm[0], fm[1], green.copy(), hologram),
    }
    row["compositing"] = {kind: timed(work, list(zip(sized, masks))) for kind, work in compositing.items()}
    row["whole"] = {}
    for kind in FILTERS[1:]:
        backdrop = Backdrop(kind, None if kind == "background-blur" else GREEN)
        backdrop.apply(sized[0])
        row["whole"][kind] = timed(backdrop.apply, sized)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 80]
    row["jpeg_reference"] = timed(lambda f: cv2.imencode(".jpg", f, jpeg), sized)
    return row


def letterboxed_reference(segmenter, frame):
    """The general network's mask of the frame padded (black) into a square, cut back to the frame."""
    height, width = frame.shape[:2]
    side = max(width, height)
    top, left = (side - height) // 2, (side - width) // 2
    square = cv2.copyMakeBorder(frame, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT)
    probabilities = segmenter._session(GENERAL).run(
        None,
        {"input": cv2.cvtColor(cv2.resize(square, (256, 256)), cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255},
    )[0][0, :, :, 0]
    return cv2.resize(probabilities, (side, side))[top : top + height, left : left + width]


def flicker(masks):
    person = [m > 0.5 for m in masks]
    return float(np.mean([np.mean((a == c) & (a != b)) for a, b, c in zip(person, person[1:], person[2:])]))


def quality(frames):
    models = Models()
    product, raw = Segmenter(), Segmenter(steady=1.0)
    kept, leak, faces = [], [], []
    smoothed_masks, raw_masks = [], []
    for frame in frames:
        mask = product.mask(frame)
        smoothed_masks.append(mask)
        raw_masks.append(raw.mask(frame))
        reference = letterboxed_reference(product, frame) > 0.5
        person = mask > 0.5
        if reference.sum():
            kept.append((person & reference).sum() / reference.sum())
        if person.sum():
            leak.append((person & ~reference).sum() / person.sum())
        for r in models.detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 0):
            w, h = r.right() - r.left(), r.bottom() - r.top()
            middle = person[r.top() + h // 4 : r.bottom() - h // 4, max(0, r.left() + w // 4) : r.right() - w // 4]
            if middle.size:
                faces.append(middle.mean())
    stray = np.mean([np.mean((s > 0.5) != (r > 0.5)) for s, r in zip(smoothed_masks, raw_masks)])
    result = {
        "frames": len(frames),
        "kept_median": round(float(np.median(kept)), 3),
        "kept_p10": round(float(np.percentile(kept, 10)), 3),
        "leak_median": round(float(np.median(leak)), 3),
        "leak_p90": round(float(np.percentile(leak, 90)), 3),
        "faces_kept": round(float(np.mean(faces)), 3),
        "faces": len(faces),
        "flicker_raw": round(flicker(raw_masks) * 100, 3),
        "flicker_smoothed": round(flicker(smoothed_masks) * 100, 3),
        "smoothed_vs_raw": round(float(stray) * 100, 3),
    }
    print(result, file=sys.stderr, flush=True)
    return result


async def call(url, packets, body):
    """A caller sending `packets` (the clip at 30 fps): (its peer connection, its call's id, the times
    frames came back)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(Camera(packets))
    times = []

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(count(track, times))

    await pc.setLocalDescription(await pc.createOffer())
    response = await asyncio.to_thread(
        requests.post, f"{url}/webrtc/offer", json={"sdp": pc.localDescription.sdp, **body}, timeout=60
    )
    response.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.json()["sdp"], type="answer"))
    return pc, response.json()["id"], times


async def count(track, times):
    try:
        while True:
            await track.recv()
            times.append(time.monotonic())
    except MediaStreamError:
        pass


def rate(times, begin, seconds):
    return sum(begin <= t < begin + seconds for t in times) / seconds


async def filters_fps(service, packets, seconds):
    """Per background filter, switched live on one call, REPEATS rounds: the frames a second back, and
    the service's CPU (every process of its tree, in cores: the caller's fps stops at the camera's 30,
    its CPU does not)."""
    pc, call_id, times = await call(service.url, packets, {"type": "offer", "background": "#00ff00"})
    await asyncio.sleep(5)
    fps, cpu = {str(kind): [] for kind in FILTERS}, {str(kind): [] for kind in FILTERS}
    for _ in range(REPEATS):
        for kind in FILTERS:
            await asyncio.to_thread(
                requests.patch, f"{service.url}/streams/{call_id}", json={"background_filter": kind}, timeout=10
            )
            await asyncio.sleep(2)
            used, begin = service_cpu(service), time.monotonic()
            await asyncio.sleep(seconds)
            fps[str(kind)].append(rate(times, begin, seconds))
            cpu[str(kind)].append((service_cpu(service) - used) / seconds)
    await pc.close()
    result = {
        "fps": {kind: round(statistics.median(values), 1) for kind, values in fps.items()},
        "cpu": {kind: round(statistics.median(values), 2) for kind, values in cpu.items()},
        "load_average": round(os.getloadavg()[0], 1),
    }
    print(result, file=sys.stderr, flush=True)
    return result


async def whep_viewer(url, call_id):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    times = []

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(count(track, times))

    await pc.setLocalDescription(await pc.createOffer())
    response = await asyncio.to_thread(
        requests.post,
        f"{url}/streams/{call_id}/whep",
        data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
        timeout=60,
    )
    response.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    return pc, times


def mjpeg_viewer(url, call_id, times, stop):
    with requests.get(f"{url}/streams/{call_id}/mjpeg", stream=True, timeout=60) as response:
        for chunk in response.iter_content(65536):
            times.extend([time.monotonic()] * chunk.count(b"--frame\r\n"))
            if stop.is_set():
                return


def service_cpu(service):
    processes = [psutil.Process(service.pid), *psutil.Process(service.pid).children(recursive=True)]
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


async def broadcast(service, packets, seconds):
    pc, call_id, back = await call(service.url, packets, {"type": "offer", "broadcast": True})
    rows = await watched(service, call_id, lambda begin: round(rate(back, begin, seconds), 1), seconds)
    await pc.close()
    return rows


async def broadcast_stream(service, seconds):
    url = service.url
    body = {"source": str(CLIP), "loop": True, "broadcast": True}
    stream_id = (await asyncio.to_thread(requests.post, f"{url}/streams", json=body, timeout=60)).json()["id"]

    def fps(_):  # the reader's frames out a second, over the last 2 s (GET /streams)
        return requests.get(f"{url}/streams/{stream_id}", timeout=10).json()["fps"]

    rows = await watched(service, stream_id, fps, seconds)
    await asyncio.to_thread(requests.delete, f"{url}/streams/{stream_id}", timeout=10)
    return rows


async def watched(service, stream_id, source_fps, seconds):
    """Viewers of a broadcast stream or call, step by step: each one's frames a second, its source's
    (`source_fps(begin)`), the service's CPU."""
    url = service.url
    await asyncio.sleep(5)
    viewers, mjpeg, stop, rows = [], [], threading.Event(), []
    steps = [(0, 0), (1, 0), (5, 0), (10, 0), (10, 3)]
    for whep, jpegs in steps:
        while len(viewers) < whep:
            viewers.append(await whep_viewer(url, stream_id))
        while len(mjpeg) < jpegs:
            times = []
            threading.Thread(target=mjpeg_viewer, args=(url, stream_id, times, stop), daemon=True).start()
            mjpeg.append(times)
        await asyncio.sleep(3)
        cpu, begin = service_cpu(service), time.monotonic()
        await asyncio.sleep(seconds)
        cpu = (service_cpu(service) - cpu) / seconds
        row = {
            "whep": whep,
            "mjpeg": jpegs,
            "source_fps": source_fps(begin),
            "whep_fps": [round(rate(t, begin, seconds), 1) for _, t in viewers],
            "mjpeg_fps": [round(rate(t, begin, seconds), 1) for t in mjpeg],
            "service_cpu": round(cpu, 2),
            "load_average": round(os.getloadavg()[0], 1),
        }
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    stop.set()
    for viewer, _ in viewers:
        await viewer.close()
    return rows


def background_bench(seconds=10):
    frames = all_frames()
    report = {"costs": costs(frames[90:205]), "quality": quality(frames)}
    packets = encoded(clip_frames(640, 360))
    with tempfile.TemporaryDirectory() as data, start(data) as (_, service):
        report["calls"] = asyncio.run(filters_fps(service, packets, seconds))
        time.sleep(3)
        report["broadcast"] = asyncio.run(broadcast(service, packets, seconds))
        time.sleep(3)
        report["broadcast_stream"] = asyncio.run(broadcast_stream(service, seconds))
    return report


def print_background(report):
    print("\n## Background filters per frame (one core; ms, p50 / p99; the shot of frames 90-205)")
    print(
        "| size | segmentation | compositing blur / replace / hologram | whole blur / replace / hologram | JPEG (reference) |"
    )
    print("|---|---|---|---|---|")
    for r in report["costs"]:

        def pair(p):
            return f"{p['p50']} / {p['p99']}"

        kinds = FILTERS[1:]
        print(
            f"| {r['size']} | {pair(r['segmentation'])} | {'; '.join(pair(r['compositing'][k]) for k in kinds)} | "
            f"{'; '.join(pair(r['whole'][k]) for k in kinds)} | {pair(r['jpeg_reference'])} |"
        )
    q = report["quality"]
    print("\n## The mask against the general network on the letterboxed frame (every frame of the clip)")
    print(
        "| frames | kept median (p10) | leak median (p90) | face middles kept | flicker raw -> smoothed (% px) | smoothed vs raw (% px) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {q['frames']} | {q['kept_median']} ({q['kept_p10']}) | {q['leak_median']} ({q['leak_p90']}) | "
        f"{q['faces_kept']} of {q['faces']} faces | {q['flicker_raw']} -> {q['flicker_smoothed']} | {q['smoothed_vs_raw']} |"
    )
    c = report["calls"]
    print("\n## A call by background filter (640x360 at 30 fps; medians): frames back a second, service CPU (cores)")
    print("| | none | background-blur | background-replace | hologram | load average |")
    print("|---|---|---|---|---|---|")
    for name, figures in (("fps back", c["fps"]), ("service CPU", c["cpu"])):
        print(f"| {name} | {' | '.join(str(figures[str(kind)]) for kind in FILTERS)} | {c['load_average']} |")
    print("\n## One broadcast call, its viewers (640x360)")
    print_viewers(report["broadcast"], "caller fps")
    if "broadcast_stream" in report:
        print("\n## One broadcast stream, the clip from its file, its viewers (640x360)")
        print_viewers(report["broadcast_stream"], "stream fps")


def print_viewers(rows, source):
    print(
        f"| WHEP viewers | MJPEG viewers | {source} | WHEP fps (min / median) | MJPEG fps | service CPU (cores) | load average |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        whep = f"{min(r['whep_fps'])} / {statistics.median(r['whep_fps'])}" if r["whep_fps"] else "-"
        print(
            f"| {r['whep']} | {r['mjpeg']} | {r['source_fps']} | {whep} | {', '.join(map(str, r['mjpeg_fps'])) or '-'} | "
            f"{r['service_cpu']} | {r['load_average']} |"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["broadcast-stream"]:  # this part alone
        with tempfile.TemporaryDirectory() as data, start(data) as (_, service):
            print_viewers(asyncio.run(broadcast_stream(service, 10)), "stream fps")
    else:
        print_background(background_bench())
