"""The pipe loop: one thread waits on every pipe and process of the streams, and acts on what they say.

It publishes each new JPEG to the viewers, follows the faces each detection finds (tracks.py) and sends
the reader what to draw, notices a reader, call or worker that died, reaps the processes told to stop,
and hands each free detection worker the newest frame of a stream (pool.py).
"""

import logging
import os
import time
from multiprocessing.connection import wait
from typing import Any

from .broadcast import JPEG_SLOT_BYTES
from .messages import (
    Answer,
    Ended,
    Failed,
    Found,
    FrameOut,
    FrameRead,
    FromReader,
    JpegOut,
    NewRing,
    Opened,
    Published,
    Sent,
    ViewerAnswer,
    ViewerLeft,
)
from .pool import DetectionWorker
from .registry import Registry
from .shared_frames import JpegSlots
from .stream import Stream

log = logging.getLogger(__name__)


class PipeLoop:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def run(self) -> None:
        """The thread: until the service closes."""
        registry = self.registry
        while not registry.closed.is_set():
            with registry.lock:
                waiting = self._waitables()
            ready = wait(list(waiting), timeout=0.5)
            with registry.lock:
                if registry.closed.is_set():
                    return
                for obj in ready:
                    self._heard(waiting[obj], obj)
                registry.stopping.reap()
                registry.pool.hand_out(registry.streams.values())

    def _waitables(self) -> dict[Any, Stream | DetectionWorker | None]:
        registry = self.registry
        waiting: dict[Any, Stream | DetectionWorker | None] = {registry.wake_r: None}
        for s in registry.streams.values():
            if s.process is not None and s.conn is not None:
                waiting[s.conn] = s
                waiting[s.process.sentinel] = s
        waiting.update(registry.pool.waitables())
        for sentinel in registry.stopping.sentinels():
            waiting[sentinel] = None
        return waiting

    def _heard(self, owner: Stream | DetectionWorker | None, obj: Any) -> None:
        if obj == self.registry.wake_r:
            os.read(self.registry.wake_r, 4096)
            return
        try:
            if isinstance(owner, Stream):
                self._from_reader(owner)
            elif isinstance(owner, DetectionWorker):
                message = self.registry.pool.received(owner, obj, self.registry.closed.is_set())
                if isinstance(message, Found):
                    self._found(message)
        except Exception:  # one bad message must not stop every stream
            log.exception("streams: handling a message failed")

    def _from_reader(self, stream: Stream) -> None:
        """A reader's messages, or its end: what it said last (in the pipe still) comes first."""
        try:
            while stream.conn is not None and stream.conn.poll():
                self._reader_said(stream, stream.conn.recv())
        except (EOFError, OSError):
            pass
        process = stream.process
        if stream.running and process is not None and not process.is_alive():
            process.join()
            what = "call" if stream.is_call else "reader"
            self.registry.end(stream, "failed", f"the {what} stopped unexpectedly (exit code {process.exitcode})")
            if stream.is_call:
                self.registry.streams.pop(stream.id, None)

    def _reader_said(self, stream: Stream, message: FromReader) -> None:
        match message:
            case FrameRead(seq, cut, out):
                self._frame_read(stream, seq, cut, out)
            case Opened(width, height, fps):
                stream.width, stream.height, stream.source_fps = width, height, fps
                stream.jpegs = JpegSlots(stream.names["jpeg"], width * height * 3 + 65536)
                stream.set_state("playing", None)
            case Ended(text) | Failed(text):
                self.registry.end(stream, "ended" if isinstance(message, Ended) else "failed", text)
                if stream.is_call:  # a call that is over is forgotten: there is nothing to see again
                    self.registry.streams.pop(stream.id, None)
            case Answer(sdp):
                stream.set_answer(sdp)
            case NewRing(width, height, name):  # a call's frames, from now on in a new ring
                stream.width, stream.height = width, height
                if stream.broadcast and stream.jpegs is None:  # made by the call's process before it answered
                    stream.jpegs = JpegSlots(stream.names["jpeg"], JPEG_SLOT_BYTES)
                self.registry.pool.forget(stream.names["frames"])
                stream.names["frames"] = name
                if stream.state == "starting":
                    stream.set_state("playing", None)
            case Sent(latency):  # a call's frame went back to the caller
                stream.outputs.append(time.monotonic())
                stream.latencies.append(latency)
            case JpegOut(seq):  # a broadcast call's frame, for its MJPEG viewers
                got = stream.jpegs.get(seq) if stream.jpegs else None
                if got is not None:
                    stream.publish(seq, *got)
            case ViewerAnswer(viewer, sdp, error):
                stream.answer_viewer(viewer, sdp if sdp else ("refused", error))
            case ViewerLeft(viewer):
                stream.whep.pop(viewer, None)
            case Published(publication, state, error):
                stream.published(publication, state, error)

    def _frame_read(self, stream: Stream, seq: int, cut: bool, out: FrameOut | None) -> None:
        stream.latest = seq
        if cut:  # the reader stops drawing the old shot's faces itself
            stream.left(stream.tracks.cut())
            stream.applied = max(stream.applied, seq - 1)
        if out is None:
            return
        stream.outputs.append(time.monotonic())
        got = stream.jpegs.get(out.seq) if out.encoded and stream.jpegs else None
        if got is not None:
            stream.publish(out.seq, *got)

    def _found(self, found: Found) -> None:
        """A detection's faces: followed (tracks.py), and drawn; new descriptors go to recognition."""
        stream = self.registry.streams.get(found.stream)
        if stream is None or not stream.running:
            return
        stream.detections.append(time.monotonic())
        if found.seq <= stream.applied:  # a newer frame's faces came first
            return
        stream.applied = found.seq
        described, ended = stream.tracks.update(found.faces)
        stream.left(ended)
        if described:
            if stream.store:
                stream.to_store += described
            self.registry.to_recognise.notify_all()
        self.registry.draw(stream)
