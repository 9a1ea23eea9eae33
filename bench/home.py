"""The home-camera integrations, measured (`make bench-home`; not part of make test): docs/home.md's table.

1. recognize on every labelled set, through the DeepStack API of real services (a fresh store per set):
   of each set's people, every other one (sorted by name, with 4 photos or more) is registered with 3 photos;
   their other photos are asked: share right, wrong, unknown. The others' photos are never registered:
   the share named as someone (goal 0). The face asked about is the largest of each photo.
2. Time per request: recognize beside /detect (which stores), on the same photos, interleaved; medians.
3. MQTT: a stream of a Motion JPEG camera served here that shows a face, then nothing, in turns; the delay
   from the first frame with the face to the "appeared" message from mosquitto, beside the same event on
   the service's own SSE stream (both on this process's monotonic clock).
"""

import argparse
import http.server
import json
import os
import socketserver
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import paho.mqtt.client as mqtt  # noqa: E402

from tests.support.mosquitto import Broker  # noqa: E402
from tests.support.services import Service, free_port, running  # noqa: E402

FACES = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "faces"
SETS = ("celeb5", "celeb8", "lfw10", "deepface_tests", "fr_examples")
REGISTERED_PHOTOS = 3
# The shared sets are web photos with small faces: found from 40 px, as the people tests do.
MIN_FACE_PX = 40
RECOGNIZE = "/v1/vision/face/recognize"


def services(data_dir, **settings):
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_MIN_FACE_PX=str(MIN_FACE_PX))
    env.update({f"FACEREC_{k}": str(v) for k, v in settings.items()})
    store = Service("store", env, quiet=True)
    others = [Service(name, dict(env, FACEREC_STORE_URL=store.url), quiet=True) for name in ("detect", "stream")]
    return store, *others


def people_of(name):
    """{identity: [photo paths, sorted]} of a set; files other than images, and the folders of unlabelled
    group photos (_unlabeled_group), left out."""
    folder = FACES / name
    return {
        p.name: sorted(f for f in p.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for p in sorted(folder.iterdir())
        if p.is_dir() and not p.name.startswith("_")
    }


def largest(predictions):
    return max(predictions, key=lambda p: (p["x_max"] - p["x_min"]) * (p["y_max"] - p["y_min"]), default=None)


def register(url, identity, paths):
    """Registers up to REGISTERED_PHOTOS photos (one at a time, as Double Take trains); the rest to ask."""
    done, rest = 0, []
    for path in paths:
        if done < REGISTERED_PHOTOS:
            answer = requests.post(
                url + "/v1/vision/face/register",
                files={"image": path.read_bytes()},
                data={"userid": identity},
                timeout=120,
            )
            done += answer.status_code == 200
        else:
            rest.append(path)
    return rest


def recognize_set(name):
    people = people_of(name)
    enough = [p for p, photos in people.items() if len(photos) > REGISTERED_PHOTOS]
    registered = set(enough[::2])
    counts = {"right": 0, "wrong": 0, "unknown": 0, "no face": 0, "strangers": 0, "strangers named": 0}
    with tempfile.TemporaryDirectory() as data:
        store, detect, _ = services(data)
        with running(store, detect):
            asked = {p: register(detect.url, p, photos) for p, photos in people.items() if p in registered}
            for identity, photos in people.items():
                for path in asked.get(identity, photos):
                    answer = requests.post(detect.url + RECOGNIZE, files={"image": path.read_bytes()}, timeout=120)
                    face = largest(answer.json().get("predictions", [])) if answer.ok else None
                    if identity in registered:
                        outcome = (
                            "no face"
                            if face is None
                            else (
                                "unknown"
                                if face["userid"] == "unknown"
                                else "right"
                                if face["userid"] == identity
                                else "wrong"
                            )
                        )
                        counts[outcome] += 1
                    else:
                        counts["strangers"] += 1
                        counts["strangers named"] += face is not None and face["userid"] != "unknown"
    counts["people registered"] = len(registered)
    return counts


def time_requests(photos, rounds):
    """Median ms of recognize and of /detect on the same photos, interleaved, after a warm-up."""
    times = {"recognize": [], "detect": []}
    with tempfile.TemporaryDirectory() as data:
        store, detect, _ = services(data, DETECT_WORKERS=1)
        with running(store, detect):
            register(detect.url, "someone", photos[:REGISTERED_PHOTOS])
            for r in range(rounds + 1):
                for path in photos:
                    body = path.read_bytes()
                    for route, kwargs in (("recognize", {"files": {"image": body}}), ("detect", {"data": body})):
                        url = detect.url + (RECOGNIZE if route == "recognize" else "/detect")
                        started = time.perf_counter()
                        assert requests.post(url, timeout=120, **kwargs).ok
                        if r:  # round 0 warms up
                            times[route].append(time.perf_counter() - started)
    return {route: 1000 * statistics.median(t) for route, t in times.items()}


class Camera(http.server.BaseHTTPRequestHandler):
    """A Motion JPEG camera at 15 fps whose picture is a face for SHOWN seconds, then empty, in turns, on
    one clock for every connection (FFmpeg may open it more than once); `Camera.shown_at` maps each
    showing to the time its first frame was sent."""

    FPS, SHOWN = 15, 3.0
    face = blank = b""
    epoch = time.monotonic()
    shown_at = {}

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            while True:
                turn = int((time.monotonic() - Camera.epoch) // self.SHOWN)
                jpeg = self.face if turn % 2 else self.blank
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
                self.wfile.write(jpeg + b"\r\n")
                self.wfile.flush()
                if turn % 2:
                    Camera.shown_at.setdefault(turn, time.monotonic())
                time.sleep(1 / self.FPS)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def camera_frames():
    """A gray 640x360 frame, and the same with a face photo in its middle."""
    blank = np.full((360, 640, 3), 128, np.uint8)
    face = blank.copy()
    photo = cv2.imread(str(FACES / "celeb5" / "Ben_Afflek" / "1.jpg"))
    scale = 300 / max(photo.shape[:2])
    photo = cv2.resize(photo, None, fx=scale, fy=scale)
    top, left = (360 - photo.shape[0]) // 2, (640 - photo.shape[1]) // 2
    face[top : top + photo.shape[0], left : left + photo.shape[1]] = photo
    return (cv2.imencode(".jpg", f)[1].tobytes() for f in (face, blank))


def mqtt_delays(cycles):
    """The delays (ms) from the first frame with a face to its "appeared" message, on MQTT and on SSE."""
    Camera.face, Camera.blank = camera_frames()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), Camera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    broker = Broker()
    arrivals = {"mqtt": [], "sse": []}
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_connect = lambda c, *_: c.subscribe("facerec/streams/+/events", qos=1)
    subscriber.on_message = lambda c, u, m: (
        json.loads(m.payload)["type"] == "appeared" and arrivals["mqtt"].append(time.monotonic())
    )
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.loop_start()
    try:
        with tempfile.TemporaryDirectory() as data:
            store, _, stream = services(data, MQTT_URL=broker.url, STREAM_WORKERS=1)
            with running(store, stream):
                source = f"http://127.0.0.1:{server.server_address[1]}/"
                started = requests.post(stream.url + "/streams", json={"source": source, "name": "bench"}, timeout=60)
                threading.Thread(
                    target=read_sse, args=(stream.url, started.json()["id"], arrivals), daemon=True
                ).start()
                time.sleep(2 * Camera.SHOWN * cycles + Camera.SHOWN)
                requests.delete(f"{stream.url}/streams/{started.json()['id']}", timeout=30)
    finally:
        subscriber.loop_stop()
        broker.close()
        server.shutdown()
    shown = [Camera.shown_at[turn] for turn in sorted(Camera.shown_at)]
    return {way: delays(shown, times) for way, times in arrivals.items()}


def read_sse(url, stream_id, arrivals):
    with requests.get(f"{url}/streams/{stream_id}/events", stream=True, timeout=600) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line == "event: appeared":
                arrivals["sse"].append(time.monotonic())


def delays(shown, arrived):
    """Per showing of the face, ms from it to the first arrival before the next showing."""
    out = []
    for k, at in enumerate(shown):
        until = shown[k + 1] if k + 1 < len(shown) else float("inf")
        first = next((t for t in arrived if at <= t < until), None)
        if first is not None:
            out.append(1000 * (first - at))
    return out


def percentiles(values):
    if not values:
        return "none arrived"
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(values)} showings)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timing-photos", type=int, default=15, help="celeb8 photos timed, each route")
    parser.add_argument("--cycles", type=int, default=20, help="showings of the face to the MQTT camera")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    print(
        "| set | people registered | asked | right | wrong | unknown | no face | strangers' photos | named as someone |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        c = recognize_set(name)
        asked = c["right"] + c["wrong"] + c["unknown"] + c["no face"]
        share = lambda n, of: f"{n} ({100 * n / of:.1f} %)" if of else "-"  # noqa: E731
        print(
            f"| {name} | {c['people registered']} | {asked} | {share(c['right'], asked)} | {share(c['wrong'], asked)}"
            f" | {share(c['unknown'], asked)} | {c['no face']} | {c['strangers']}"
            f" | {share(c['strangers named'], c['strangers'])} |",
            flush=True,
        )
    photos = [p for ps in people_of("celeb8").values() for p in ps][::50][: args.timing_photos]
    t = time_requests(photos, args.rounds)
    print(
        f"recognize {t['recognize']:.0f} ms, /detect {t['detect']:.0f} ms per photo (median, {len(photos)} "
        f"celeb8 photos x {args.rounds} rounds): {t['recognize'] / t['detect']:.2f}x"
    )
    d = mqtt_delays(args.cycles)
    print(f"frame to MQTT message: {percentiles(d['mqtt'])}; to the SSE event: {percentiles(d['sse'])}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
