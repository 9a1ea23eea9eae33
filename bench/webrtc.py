"""Calls: the clip as a camera over WebRTC, its annotated video back (`make bench ARGS="--parts webrtc"`;
part of plain `make bench`).

Each caller is an aiortc client in this process (no browser needed): it plays the clip, looping, at
30 fps as its camera, offers it to POST /webrtc/offer and counts the frames that come back. Per
scenario (1, 2 and 3 calls at once, at 640x360 and at 1280x720, the clip resized): the video frames each
caller gets back a second, and the server's latency per frame, from the frame's arrival (decoded) to
the annotated frame leaving (encoded and sent), as the service measures it (GET /streams, p50 and p99
of the call's last 1000 frames). The callers run on the same two cores as the service: they send the
clip encoded once beforehand (a browser encodes on its own machine), but they decode the video that
comes back, load a browser would put on its own machine too.

Glass to glass, first: one call from Debian's chromium (headless) whose camera is a canvas that writes
the time of its drawing on each frame in big black and white blocks (bench/glass.html, a benchmark page,
not the product's); the page reads the time back from each frame of the video that comes back as it is
presented, and subtracts it from now: capture, the browser's encoding, the network, the service, the
browser's decoding and presentation, all in. No face in it: the service sends it back as it came, with
its fps written in a corner the blocks keep clear of. Then a broadcast call at 640x360 that the same
page also watches over WHEP (the H.264 every viewer gets), read the same way on the same clock: the
caller's latency and a viewer's, side by side.
"""

import asyncio
import fractions
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from stream import CLIP, start

SIZES = ((640, 360), (1280, 720))
CALLS = (1, 2, 3)


def clip_frames(width, height, seconds=4):
    """A few seconds of the clip where the performer is on screen (from 4 s), at width x height."""
    capture = cv2.VideoCapture(str(CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 120)
    frames = []
    while len(frames) < 30 * seconds:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(
            cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) if frame.shape[1] != width else frame
        )
    return frames


def encoded(frames):
    """The frames in VP8, as a camera's browser would send them (a key frame every half second: the
    browser would answer the service's requests for one after a lost packet; these callers cannot);
    encoded once, so that the callers' own encoding is not load on the cores the service is measured on."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.bit_rate, codec.gop_size = int(0.15 * 30 * codec.width * codec.height), 15
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets = []
    for i, frame in enumerate(frames):
        video = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
        video.pts = i
        packets += [bytes(p) for p in codec.encode(video)]
    return packets


class Camera(VideoStreamTrack):
    """The clip, looping, at 30 fps, encoded."""

    def __init__(self, packets):
        super().__init__()
        self.packets = packets
        self.count = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        packet = av.Packet(self.packets[self.count % len(self.packets)])
        self.count += 1
        packet.pts, packet.time_base = pts, time_base
        return packet


async def caller(url, packets, seconds, warm_up, results, key=None):
    """One call for warm_up + seconds: the frames back a second over the last `seconds`, and the call's id."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(Camera(packets))
    times = []

    @pc.on("track")
    def on_track(track):
        async def count():
            try:
                while True:
                    await track.recv()
                    times.append(time.monotonic())
            except MediaStreamError:
                pass

        asyncio.get_running_loop().create_task(count())

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"X-API-Key": key} if key else {}
    response = await asyncio.to_thread(
        requests.post,
        f"{url}/webrtc/offer",
        timeout=60,
        headers=headers,
        json={"sdp": pc.localDescription.sdp, "type": "offer", "name": "bench"},
    )
    response.raise_for_status()
    answer = response.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    await asyncio.sleep(warm_up)
    begin = time.monotonic()
    await asyncio.sleep(seconds)
    state = await asyncio.to_thread(
        lambda: requests.get(f"{url}/streams/{answer['id']}", timeout=10, headers=headers).json()
    )
    await pc.close()
    results.append(
        {
            "fps": sum(t >= begin for t in times) / seconds,
            "latency_ms": state["latency_ms"],
            "detection_fps": state["detection_fps"],
            "size": (state["width"], state["height"]),
        }
    )


async def scenario(url, packets, calls, seconds, warm_up):
    results = []
    await asyncio.gather(*(caller(url, packets, seconds, warm_up, results) for _ in range(calls)))
    return {
        "calls": calls,
        "fps": [round(r["fps"], 1) for r in results],
        "latency_p50_ms": round(statistics.median(r["latency_ms"]["p50"] for r in results if r["latency_ms"]), 1),
        "latency_p99_ms": max(r["latency_ms"]["p99"] for r in results if r["latency_ms"]),
        "detection_fps": [r["detection_fps"] for r in results],
        "received_sizes": [r["size"] for r in results],
    }


def left(url, timeout=60):
    """Wait until the service lists no call: the calls hung up have left (they count as streams)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [s for s in requests.get(f"{url}/streams", timeout=10).json()["streams"] if s["source"] == "webrtc"]:
            return
        time.sleep(0.5)
    raise RuntimeError(f"calls still listed {timeout} s after they hung up")


CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/install-chromium.sh, which make bench runs)
GLASS_PAGE = Path(__file__).with_name("glass.html")


def glass_to_glass(url, width, height, seconds, warm_up, broadcast=False):
    """One call from chromium whose camera is bench/glass.html's canvas (its frames carry the time they
    were drawn): p50 and p99 of the time from drawing a frame to the page presenting it back, over
    `seconds` after `warm_up`, with the frames read a second and the service's own share. `broadcast`:
    the call is a broadcast and the page watches it over WHEP too; the viewer's figures beside."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(GLASS_PAGE.as_uri())
            offer = page.evaluate("([w, h]) => glass.offer(w, h)", [width, height])
            body = {"sdp": offer, "type": "offer", "name": "glass", "broadcast": broadcast}
            response = requests.post(f"{url}/webrtc/offer", json=body, timeout=60)
            response.raise_for_status()
            answer = response.json()
            page.evaluate("(sdp) => glass.answer(sdp)", answer["sdp"])
            if broadcast:
                watched = requests.post(
                    f"{url}/streams/{answer['id']}/whep",
                    data=page.evaluate("glass.watch()"),
                    headers={"Content-Type": "application/sdp"},
                    timeout=60,
                )
                watched.raise_for_status()
                page.evaluate("(sdp) => glass.watching(sdp)", watched.text)
            time.sleep(warm_up)
            page.evaluate("glass.take()")
            time.sleep(seconds)
            taken = page.evaluate("glass.take()")
            server = requests.get(f"{url}/streams/{answer['id']}", timeout=10).json()["latency_ms"]
        finally:
            browser.close()
    result = {
        "size": f"{width}x{height}",
        "broadcast": broadcast,
        **read_back(taken["back"], seconds),
        "server_p50_ms": server["p50"],
        "server_p99_ms": server["p99"],
        "load_average": round(os.getloadavg()[0], 1),
    }
    if broadcast:
        result["viewer"] = read_back(taken["viewer"], seconds)
    return result


def read_back(taken, seconds):
    """One video's figures from what glass.take() gave for it."""
    latencies = sorted(taken["latencies"])
    if not latencies:
        raise RuntimeError(f"no frame came back readable: {taken['invalid']} unreadable")
    return {
        "received": f"{taken['width']}x{taken['height']}",
        "frames_read": len(latencies),
        "unreadable": taken["invalid"],
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "fps": round(len(latencies) / seconds, 1),
    }


def webrtc_bench(seconds=10, warm_up=5):
    with tempfile.TemporaryDirectory() as data, start(data) as (_, service):
        report = {"glass": [], "calls": []}
        # Each size, then a broadcast call at 640x360 that the page watches over WHEP too.
        for width, height, broadcast in (*((w, h, False) for w, h in SIZES), (*SIZES[0], True)):
            result = glass_to_glass(service.url, width, height, seconds, warm_up, broadcast)
            print(result, file=sys.stderr, flush=True)
            report["glass"].append(result)
            left(service.url)
        for width, height in SIZES:
            packets = encoded(clip_frames(width, height))
            for calls in CALLS:
                result = asyncio.run(scenario(service.url, packets, calls, seconds, warm_up))
                result["size"], result["load_average"] = f"{width}x{height}", round(os.getloadavg()[0], 1)
                report["calls"].append(result)
                print(result, file=sys.stderr, flush=True)
                left(service.url)
        return report


def print_webrtc(report):
    print("\n## Glass-to-glass latency (chromium; a canvas writing its time as the camera, read back)")
    print(
        "| call | size asked | size back | fps back | glass to glass p50 ms | p99 ms | service's p50 / p99 ms "
        "| WHEP viewer: fps, p50 / p99 ms | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["glass"]:
        v = r.get("viewer")
        viewer = f"{v['fps']}, {v['p50_ms']} / {v['p99_ms']}" if v else "-"
        print(
            f"| {'broadcast' if r['broadcast'] else 'plain'} | {r['size']} | {r['received']} | {r['fps']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['server_p50_ms']} / {r['server_p99_ms']} | {viewer} | "
            f"{r['load_average']} |"
        )
    print("\n## Calls over WebRTC (the clip as each caller's camera, 30 fps; server latency: received -> sent)")
    print("| size | calls | fps back, each call | latency p50 ms | p99 ms | detections/s, each call | load average |")
    print("|---|---|---|---|---|---|---|")
    for r in report["calls"]:
        print(
            f"| {r['size']} | {r['calls']} | {', '.join(map(str, r['fps']))} | {r['latency_p50_ms']} | "
            f"{r['latency_p99_ms']} | {', '.join(map(str, r['detection_fps']))} | {r['load_average']} |"
        )


if __name__ == "__main__":
    print_webrtc(webrtc_bench())
