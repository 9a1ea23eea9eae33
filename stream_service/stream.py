"""One stream as the service knows it: its source and settings, its state, the faces it follows, its
newest JPEG, its events, and the rates and latencies `GET /streams` reports.

Plain state, changed under the registry's lock by the pipe loop and recognition; `changed` wakes the
viewers and event clients (views.py) when a JPEG, an event or the end comes.
"""

import collections
import os
import threading
import time
import uuid
from collections.abc import Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from facerec.service.clock import utc_now

from .messages import FoundFace
from .shared_frames import JpegSlots
from .tracks import Track, Tracks

FILTERS = (None, "blur-unknown", "blur-all")
CALL = "webrtc"  # the source of a call
EVENTS_KEPT = 500
LATENCIES_KEPT = 1000


class Stream:
    """A stream: a source read by a reader process, or a call (`source` "webrtc"): a browser's camera
    received, and answered with the annotated video, by a call process (call.py)."""

    def __init__(
        self,
        source: str,
        name: str,
        loop: bool,
        filter: str | None,
        store: bool,
        backdrop: tuple[str | None, str | None, Any] | None = None,
        broadcast: bool = False,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.source, self.name, self.loop, self.filter, self.store = source, name, loop, filter, store
        # The background filter, its background as asked ("#rrggbb", a picture's name) and as the process
        # gets it (backgrounds.py: resolve).
        self.background_filter: str | None
        self.background: str | None
        self.backdrop: Any
        self.background_filter, self.background, self.backdrop = backdrop or (None, None, None)
        self.broadcast = broadcast  # others may watch a call (broadcast.py): MJPEG and WHEP
        self.whep: dict[str, Any] = {}  # WHEP viewer id -> its SDP answer (None until answered, or why not)
        # A broadcast's publication over WHIP (whip.py): {"id", "url", "state", "error"}, or None.
        self.publication: dict[str, Any] | None = None
        self.answer: str | None = None  # a call's SDP answer
        self.state = "starting"
        self.message: str | None = None
        self.started_at = utc_now()
        self.width: int | None = None
        self.height: int | None = None
        self.source_fps: float | None = None
        self.names = {
            "frames": f"facerec-{os.getpid()}-{self.id}-frames",
            "jpeg": f"facerec-{os.getpid()}-{self.id}-jpeg",
        }
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.jpegs: JpegSlots | None = None
        self.latest = -1  # the newest frame read
        self.given = -1  # the newest frame given to a worker
        self.applied = -1  # the newest frame whose faces are followed
        self.given_at = 0.0
        self.jpeg: tuple[int, bytes, float] | None = None  # (seq, bytes, read time) of the newest annotated frame
        self.outputs: collections.deque[float] = collections.deque(maxlen=120)  # output times, for the fps
        self.detections: collections.deque[float] = collections.deque(maxlen=120)
        # Seconds from read to sent, per frame sent.
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCIES_KEPT)
        self.viewers = 0
        self.watched = False  # the reader was told someone watches
        self.tracks = Tracks()
        self.to_store: list[tuple[Track, FoundFace]] = []  # (track, face) of new descriptors, for "store"
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self.changed = threading.Condition()  # a new JPEG, a new event, or the end

    @property
    def is_call(self) -> bool:
        return self.source == CALL

    @property
    def running(self) -> bool:
        return self.state in ("starting", "playing")

    def summary(self, details: bool = False) -> dict[str, Any]:
        latencies = np.array(self.latencies) * 1000
        out = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "loop": self.loop,
            "filter": self.filter,
            "background_filter": self.background_filter,
            "background": self.background,
            "broadcast": self.broadcast,
            "store": self.store,
            "state": self.state,
            "message": self.message,
            "started_at": self.started_at,
            "width": self.width,
            "height": self.height,
            "source_fps": self.source_fps,
            "fps": _rate(self.outputs),
            "detection_fps": _rate(self.detections),
            "viewers": self.viewers,
            "whep_viewers": len(self.whep),
            "publication": {k: v for k, v in self.publication.items() if k != "id"} if self.publication else None,
            "latency_ms": {
                "p50": round(float(np.percentile(latencies, 50)), 1),
                "p99": round(float(np.percentile(latencies, 99)), 1),
            }
            if len(latencies)
            else None,
        }
        if details:
            out["faces"] = [
                {
                    "track": t.id,
                    "box": t.box.to_json(),
                    "person": t.person,
                    "name": t.name,
                    "distance": t.distance,
                    "since": t.since,
                }
                for t in self.tracks.live.values()
            ]
        return out

    def publish(self, seq: int, jpeg: bytes, read_at: float) -> None:
        """The newest annotated frame, for every viewer."""
        with self.changed:
            self.jpeg = (seq, jpeg, read_at)
            self.changed.notify_all()

    def answer_viewer(self, viewer: str, answer: str | tuple[str, str | None]) -> None:
        """A WHEP viewer's SDP answer, or ("refused", why)."""
        with self.changed:
            if viewer in self.whep:
                self.whep[viewer] = answer
                self.changed.notify_all()

    def published(self, publication: str, state: str, error: str | None) -> None:
        """The call says how publication `publication` goes (unless it is no longer the stream's)."""
        with self.changed:
            if self.publication is not None and self.publication["id"] == publication:
                self.publication.update(state=state, error=error)
                self.changed.notify_all()

    def set_answer(self, sdp: str) -> None:
        with self.changed:
            self.answer = sdp
            self.changed.notify_all()

    def announce(self, kind: str, track: Track) -> None:
        """A face's event: "appeared", "changed" or "left"."""
        self._add_event(
            {
                "type": kind,
                "time": utc_now(),
                "track": track.id,
                "person": track.person,
                "name": track.name,
                "since": track.since,
            }
        )

    def left(self, tracks: Iterable[Track]) -> None:
        """These faces are gone: a "left" event for each that was announced."""
        for t in tracks:
            if t.announced:
                self.announce("left", t)

    def set_state(self, state: str, message: str | None) -> None:
        with self.changed:
            self.state, self.message = state, message
            self._add_event({"type": "state", "time": utc_now(), "state": state, "message": message})

    def _add_event(self, event: dict[str, Any]) -> None:
        with self.changed:
            last = self.events[-1]["id"] if self.events else 0
            self.events.append({"id": last + 1, **event})
            self.changed.notify_all()


def _rate(times: Iterable[float]) -> float:
    """Events a second over the last two seconds of `times` (time.monotonic() values)."""
    now = time.monotonic()
    recent = [t for t in times if t > now - 2]
    return round(len(recent) / 2, 1)
