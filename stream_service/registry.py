"""What the stream service's threads share: the streams, the detection workers, the processes being
stopped, all under one lock; and what each thread may do to a stream: draw its faces, end it.

The manager (manager.py, what the HTTP edge calls), the pipe loop (loop.py) and recognition
(recognition.py) each hold the registry, never each other.
"""

import os
import threading
from typing import Any

from .messages import Draw, Stop
from .pool import DetectorPool
from .processes import Stopping, send
from .stream import Stream


class Registry:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.streams: dict[str, Stream] = {}
        self.pool = DetectorPool(config)
        self.stopping = Stopping()  # readers and calls told to stop
        self.closed = threading.Event()
        # Recognition waits on it: new descriptors, or the end.
        self.to_recognise = threading.Condition(self.lock)
        self.wake_r, self.wake_w = os.pipe()  # wakes the pipe loop: a stream came or went, or the end
        self._wake_open = True

    def wake(self) -> None:
        """Wake the pipe loop (it stops reading once the service is closed: nothing more is written)."""
        with self.lock:
            if self._wake_open and not self.closed.is_set():
                os.write(self.wake_w, b"x")

    def draw(self, stream: Stream) -> None:
        """Send the reader the faces to draw, as followed now."""
        if stream.conn is not None:
            send(stream.conn, Draw(stream.tracks.overlay(stream.filter), stream.applied))

    def end(self, stream: Stream, state: str, message: str | None) -> None:
        """The stream no longer plays (or is forgotten): its reader is stopped (or gone) and its shared
        memory let go."""
        if stream.running:
            stream.left(stream.tracks.cut())
            self._release(stream)
        stream.set_state(state, message)

    def _release(self, stream: Stream) -> None:
        if stream.conn is not None:
            send(stream.conn, Stop())
            stream.conn.close()
            stream.conn = None
        if stream.jpegs is not None:
            stream.jpegs.close()
            stream.jpegs = None
        if stream.process is not None:
            self.stopping.add(stream.process, list(stream.names.values()))
        self.pool.forget(stream.names["frames"])

    def close_wake(self) -> None:
        with self.lock:
            self._wake_open = False
            os.close(self.wake_r)
            os.close(self.wake_w)
