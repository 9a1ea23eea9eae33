"""The detection worker processes (detector.py), shared by every stream: one per core by default.

A worker that is free gets the newest frame of the stream that waited longest for one; the frames in
between are never detected, and nothing queues. A worker that dies is replaced, its frame skipped.
"""

import logging
import os
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from . import detector
from .messages import Detect, Forget, FromDetector, Ready, Stop
from .processes import CONTEXT, finish, send
from .stream import Stream

log = logging.getLogger(__name__)


class DetectionWorker:
    """One detection process and the manager's end of its pipe."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn
        self.ready = False
        self.job: tuple[str, int] | None = None  # (stream id, seq) being detected

    @property
    def free(self) -> bool:
        return self.ready and self.job is None and self.process.is_alive()


class DetectorPool:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.workers: list[DetectionWorker] = []
        self.restarts = 0

    def start(self) -> None:
        count = self.config["STREAM_WORKERS"] or len(os.sched_getaffinity(0))
        self.workers = [self._start_worker() for _ in range(count)]

    def _start_worker(self) -> DetectionWorker:
        conn, child = CONTEXT.Pipe()
        process = CONTEXT.Process(
            target=detector.run,
            name="facerec-detect",
            daemon=True,
            args=(child, self.config["MODELS_DIR"], self.config["LANDMARKS"], self.config["STREAM_DETECT_WIDTH"]),
        )
        process.start()
        child.close()
        return DetectionWorker(process, conn)

    def waitables(self) -> dict[Any, DetectionWorker]:
        """Each worker's pipe and sentinel, for multiprocessing.connection.wait."""
        return {obj: w for w in self.workers for obj in (w.conn, w.process.sentinel)}

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process.is_alive() and w.process.pid is not None]

    def received(self, w: DetectionWorker, obj: Any, closed: bool) -> FromDetector | None:
        """What worker `w` said when `obj` (its pipe or its sentinel) was ready: its answer to its job,
        or None (it is ready, or it died and was replaced unless the service is `closed`)."""
        if obj == w.process.sentinel:
            self._restart(w, closed)
            return None
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            self._restart(w, closed)
            return None
        if isinstance(message, Ready):
            w.ready = True
            return None
        w.job = None
        return message

    def _restart(self, w: DetectionWorker, closed: bool) -> None:
        """A worker died (killed, out of memory): its frame is skipped and a new worker takes its place."""
        if w not in self.workers:
            return  # its pipe and its sentinel both said so
        code = w.process.exitcode
        w.process.join(timeout=1)
        w.conn.close()
        if closed:
            return
        log.warning("streams: detection worker %s exited with %s; starting another", w.process.pid, code)
        self.restarts += 1
        self.workers[self.workers.index(w)] = self._start_worker()

    def hand_out(self, streams: Iterable[Stream]) -> None:
        """Each free worker gets the newest frame of the stream that waited longest for one."""
        free = [w for w in self.workers if w.free]
        if not free:
            return
        waiting = sorted((s for s in streams if s.state == "playing" and s.latest > s.given), key=lambda s: s.given_at)
        for w, stream in zip(free, waiting):
            seq = stream.latest
            job = Detect(
                stream.id,
                stream.names["frames"],
                (stream.height or 0, stream.width or 0),
                seq,
                stream.tracks.known_boxes(),
                stream.store,
                bool(stream.filter),  # a privacy filter: find every face that may be one
            )
            if send(w.conn, job):
                w.job = (stream.id, seq)
                stream.given, stream.given_at = seq, time.monotonic()

    def forget(self, ring: str) -> None:
        """A stream's frame ring is gone: every worker lets its mapping go."""
        for w in self.workers:
            send(w.conn, Forget(ring))

    def stop(self, deadline: float) -> None:
        """Stop every worker: told, then terminated at `deadline` (time.monotonic())."""
        for w in self.workers:
            send(w.conn, Stop())
        for w in self.workers:
            finish(w.process, deadline)
        self.workers = []
