"""`facerec ingest PATH...`: photos, folders and videos through the detect service, resumable.

The main thread walks the files, hashes each, asks the store what it already holds (a photo by its
SHA-256, a video frame by the video's SHA-256 and the frame's time) and queues the rest; sender
threads post them to the detect service, as many at once as it takes (`InFlightLimit`). Whatever is killed
when, a run started again skips what the store holds and sends the rest: nothing twice, nothing lost.
"""

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
from tqdm import tqdm

from .http import Busy, Refused, ServiceClient, Unreachable
from .video import EXTENSIONS as VIDEO_EXTENSIONS
from .video import VideoError, frames, sampled_count

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"}
# Frames go as JPEG at full size; at 95 the encoding costs the detector nothing it could see.
FRAME_JPEG_QUALITY = 95
# Requests in flight at first; the window widens while the service takes them and narrows on each
# 503 (its workers' queues are full), up to --jobs.
FIRST_WINDOW = 4


@dataclass
class File:
    path: str  # as ingest was given it: what the store keeps as the faces' `source`
    kind: str  # "photo", "video" or "ignored"
    sha256: str | None = None
    expected: int = 1  # photos and frames it stands for in the progress bar (a video's is estimated)
    sent: int = 0  # photos or frames sent and stored
    stored_before: int = 0  # photos or frames the store held before this run
    faces: int = 0
    pending: int = 0  # queued or in flight
    produced: bool = False  # every photo or frame of it queued (or it failed before)
    errors: list[str] = field(default_factory=list)
    outcome: str | None = None  # done, skipped, failed, ignored; None while not finished
    reason: str = ""
    reported: bool = False


def find_files(paths: Iterable[str]) -> list[File]:
    """Every file to ingest, in a stable order: files as named, folders walked (hidden entries skipped).
    In folders only files with a photo or video extension are sent; the rest are listed as ignored."""
    found = []
    for given in paths:
        if os.path.isdir(given):
            for root, dirs, names in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(n for n in names if not n.startswith(".")):
                    found.append(File(os.path.join(root, name), kind_of(name, named=False)))
        else:
            found.append(File(given, kind_of(given, named=True)))
    return found


def kind_of(name: str, named: bool) -> str:
    ext = os.path.splitext(name)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    # A file named on the command line is tried as a photo whatever its name: the service decides.
    return "photo" if named or ext in PHOTO_EXTENSIONS else "ignored"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class InFlightLimit:
    """How many requests may be in flight: one more after a window's worth of answers taken at the
    limit, one fewer on each 503. It settles where every worker of the service has work waiting."""

    def __init__(self, most: int):
        self.most, self.limit = most, min(FIRST_WINDOW, most)
        self.in_flight = self.taken = 0
        self.cond = threading.Condition()

    def acquire(self) -> None:
        with self.cond:
            while self.in_flight >= self.limit:
                self.cond.wait()
            self.in_flight += 1

    def release(self, busy: bool = False) -> None:
        with self.cond:
            at_limit = self.in_flight >= self.limit
            self.in_flight -= 1
            if busy:
                self.limit, self.taken = max(1, self.limit - 1), 0
            elif at_limit:
                self.taken += 1
                if self.taken >= self.limit and self.limit < self.most:
                    self.limit, self.taken = self.limit + 1, 0
            self.cond.notify_all()


class Ingest:
    """One run. `report(file)` is called once per finished file; `progress` is a tqdm bar or None."""

    def __init__(
        self,
        detect: ServiceClient,
        store: ServiceClient,
        fps: float = 1.0,
        jobs: int = 32,
        report: Callable[[File], None] | None = None,
        progress: tqdm | None = None,
    ):
        self.detect, self.store, self.fps = detect, store, fps
        self.report, self.progress = report, progress
        self.window = InFlightLimit(jobs)
        # Read but not yet sent (None: a sender's signal to stop): memory stays bounded.
        self.queue: queue.Queue[tuple[File, bytes, dict[str, Any]] | None] = queue.Queue(maxsize=jobs)
        self.lock = threading.Lock()
        self.seen: dict[str, str] = {}  # sha256 -> path, this run
        self.stopped: str | None = None  # why the run stopped early
        self.busy = 0  # 503s: how often the detect service asked to wait
        self.senders = [threading.Thread(target=self._send_loop, daemon=True) for _ in range(jobs)]

    # -- the main thread: files in, photos and frames queued ---------------------------------------

    def run(self, files: list[File]) -> None:
        for f in files:
            if f.kind == "video":
                try:
                    f.expected = max(1, sampled_count(f.path, self.fps))
                except VideoError:
                    pass  # reported when it is read
        if self.progress is not None:
            self.progress.reset(total=sum(f.expected for f in files if f.kind != "ignored"))
        for sender in self.senders:
            sender.start()
        for f in files:
            if self.stopped:
                break
            try:
                self._produce(f)
            except Unreachable as e:
                self.stopped = str(e)
            except Refused as e:  # the store refused to say what it holds: a wrong key, say
                self.stopped = f"{self.store.url}: {e}"
            except VideoError as e:
                f.errors.append(str(e))
            except OSError as e:
                f.errors.append(f"cannot read it: {e.strerror or e}")
            with self.lock:
                f.produced = True
                self._finish_if_done(f)
        for _ in self.senders:
            self.queue.put(None)
        for sender in self.senders:
            sender.join()

    def _produce(self, f):
        if f.kind == "ignored":
            return
        if f.kind == "photo":
            with open(f.path, "rb") as fh:
                data = fh.read()
            f.sha256 = hashlib.sha256(data).hexdigest()
        else:
            f.sha256 = sha256_of(f.path)
        if f.sha256 in self.seen:
            f.outcome, f.reason = "skipped", f"the same file as {self.seen[f.sha256]}"
            return
        self.seen[f.sha256] = f.path
        stored = {p["time"] for p in self.store.get("/photos", params={"source_sha256": f.sha256})["photos"]}
        # A path that is not UTF-8 (Linux allows any bytes) is kept with U+FFFD where it is not.
        source = f.path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if f.kind == "photo":
            if stored:
                f.stored_before = 1
            else:
                self._queue(f, data, {"source": source})
            return
        decoded = 0
        for t, frame in frames(f.path, self.fps):
            if self.stopped:
                return
            decoded += 1
            if t in stored:
                f.stored_before += 1
                with self.lock:
                    self._advance(1)
                continue
            jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, FRAME_JPEG_QUALITY])[1].tobytes()
            self._queue(f, jpeg, {"source": source, "source_sha256": f.sha256, "time": t})
        if not decoded:
            raise VideoError("no frame of it could be decoded")
        with self.lock:
            self._advance(decoded - f.expected, total=True)  # the estimate was the container's

    def _queue(self, f, data, params):
        with self.lock:
            f.pending += 1
        self.queue.put((f, data, params))

    # -- sender threads ----------------------------------------------------------------------------

    def _send_loop(self):
        while (job := self.queue.get()) is not None:
            f, data, params = job
            faces = error = None
            try:
                if not self.stopped:
                    faces = self._send(data, params)
            except Refused as e:
                if e.status == 401:  # a wrong or missing key: every request would fail alike
                    self.stopped = f"{self.detect.url}: {e}"
                error = f"the frame at {params['time']} s: {e}" if "time" in params else str(e)
            except Unreachable as e:
                self.stopped = str(e)
            except Exception as e:  # an answer not as the API describes: this photo fails, the run goes on
                error = f"{type(e).__name__}: {e}"
            with self.lock:
                f.pending -= 1
                if faces is not None:
                    f.sent += 1
                    f.faces += faces
                elif error:
                    f.errors.append(error)
                if f.kind == "video":
                    self._advance(1)
                self._finish_if_done(f)

    def _send(self, data, params):
        """How many faces the detect service found (and stored) in one photo or frame."""
        started = time.monotonic()
        while True:
            self.window.acquire()
            try:
                answer = self.detect.call(
                    "POST",
                    "/detect",
                    raise_busy=True,
                    params=params,
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
            except Busy as e:
                self.window.release(busy=True)
                with self.lock:
                    self.busy += 1
                self.detect.check_progress(started, str(e))
                time.sleep(e.wait)
                continue
            except BaseException:
                self.window.release()
                raise
            self.window.release()
            return len(answer["faces"])

    # -- finishing files (under self.lock) ---------------------------------------------------------

    def _advance(self, n, total=False):
        if self.progress is None:
            return
        if total:
            self.progress.total += n
            self.progress.refresh()
        else:
            self.progress.update(n)

    def _finish_if_done(self, f):
        if f.reported or not f.produced or f.pending:
            return
        if f.outcome is None:
            if f.kind == "ignored":
                f.outcome, f.reason = "ignored", "not a photo or video"
            elif f.errors:
                more = f" (and {len(f.errors) - 3} more)" if len(f.errors) > 3 else ""
                f.outcome, f.reason = "failed", "; ".join(f.errors[:3]) + more
            elif self.stopped:
                return  # unfinished: the next run does it
            elif f.sent:
                f.outcome = "done"
            else:
                f.outcome, f.reason = "skipped", "stored before"
        f.reported = True
        if f.kind == "photo":
            self._advance(1)
        if self.report:
            self.report(f)


def json_line(f: File) -> str:
    """One file's outcome as a JSON line (`--json`)."""
    line = {"path": f.path, "kind": f.kind, "status": f.outcome, "sha256": f.sha256, "faces": f.faces}
    if f.kind == "video":
        line.update(frames=f.sent, frames_stored_before=f.stored_before)
    if f.reason:
        line["reason"] = f.reason
    return json.dumps(line)


def summary(files: list[File], stopped: str | None = None, busy: int = 0) -> tuple[str, int]:
    """(text for a person, exit status): 0 all done or skipped, 1 some failed, 2 the run stopped."""
    by: dict[str, list[File]] = {}
    for f in files:
        by.setdefault(f.outcome or "unfinished", []).append(f)
    count = {k: len(v) for k, v in by.items()}
    lines = [
        f"{len(files)} files: {count.get('done', 0)} done, {count.get('skipped', 0)} skipped (stored before),"
        f" {count.get('failed', 0)} failed, {count.get('ignored', 0)} ignored (not photos or videos)"
        + (f", {count['unfinished']} unfinished" if "unfinished" in count else ""),
        f"sent {sum(f.sent for f in files if f.kind == 'photo')} photos and"
        f" {sum(f.sent for f in files if f.kind == 'video')} video frames: {sum(f.faces for f in files)} faces found"
        + (f"; the detect service was busy (503) {busy} times, each waited out" if busy else ""),
    ]
    lines += [f"failed: {f.path}: {f.reason}" for f in by.get("failed", [])]
    if stopped:
        lines.append(f"stopped: {stopped}\nRun the same command again to go on where this one stopped.")
    return "\n".join(lines), 2 if stopped else 1 if "failed" in count else 0
