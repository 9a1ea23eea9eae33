"""The streams and the processes behind them, owned by the service's one gunicorn worker.

Per stream a reader process (reader.py); detection worker processes (worker.py) shared by all
streams, one per core by default. Frames and JPEGs travel through shared memory (shared_frames.py);
the pipes carry only small messages. One thread (`_run`) waits on every pipe and process: it publishes
each new JPEG to the viewers, hands a free worker the newest frame of a stream (frames in between are
skipped: nothing queues), follows the faces (tracks.py) and sends the reader what to draw. A second
thread (`_recognise`) asks the store who the faces are, so that a slow store never holds up the video.

Processes are started with "spawn": the gunicorn worker runs threads, and a fork would copy their locks
mid-use. Each child holds the only other end of its pipe, so when the service's worker dies (even by
kill -9) the pipe closes, the child's next message fails and it leaves: none outlives the service.
"""

import collections
import contextlib
import hashlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from multiprocessing.connection import wait

import numpy as np

from facerec.service.clock import utc_now
from facerec.service.store_api import StoreUnavailable, face_body
from facerec.vision.boxes import Box

from . import call, reader, worker
from .shared_frames import JpegSlots, unlink
from .tracks import Tracks

log = logging.getLogger(__name__)

FILTERS = (None, "blur-unknown", "blur-all")
CALL = "webrtc"  # the source of a call
OPEN_WAIT = 15  # seconds POST /streams waits for a source to open (OpenCV gives up on one after 10)
STOP_WAIT = 3  # seconds a process has to stop when asked, before it is terminated
EVENTS_KEPT = 500
LATENCIES_KEPT = 1000


class TooManyStreams(RuntimeError):
    pass


class SourceFailed(RuntimeError):
    pass


class UnknownStream(LookupError):
    def __init__(self, stream_id):
        super().__init__(f"no stream with id {stream_id}")


class Stream:
    """A stream: a source read by a reader process, or a call (`source` "webrtc"): a browser's camera
    received, and answered with the annotated video, by a call process (call.py)."""

    def __init__(self, source, name, loop, filter, store):
        self.id = uuid.uuid4().hex[:12]
        self.source, self.name, self.loop, self.filter, self.store = source, name, loop, filter, store
        self.answer = None  # a call's SDP answer
        self.state, self.message = "starting", None
        self.started_at = utc_now()
        self.width = self.height = self.source_fps = None
        self.names = {
            "frames": f"facerec-{os.getpid()}-{self.id}-frames",
            "jpeg": f"facerec-{os.getpid()}-{self.id}-jpeg",
        }
        self.process = self.conn = self.jpegs = None
        self.latest = -1  # the newest frame read
        self.given = -1  # the newest frame given to a worker
        self.applied = -1  # the newest frame whose faces are followed
        self.given_at = 0.0
        self.jpeg = None  # (seq, bytes, read time) of the newest annotated frame
        self.outputs = collections.deque(maxlen=120)  # output times, for the measured fps
        self.detections = collections.deque(maxlen=120)
        self.latencies = collections.deque(maxlen=LATENCIES_KEPT)  # seconds from read to sent, per frame sent
        self.viewers = 0
        self.watched = False  # the reader was told someone watches
        self.tracks = Tracks()
        self.to_store = []  # (track, face) of new descriptors, for "store": true
        self.events = collections.deque(maxlen=EVENTS_KEPT)
        self.changed = threading.Condition()  # a new JPEG, a new event, or the end

    @property
    def is_call(self):
        return self.source == CALL

    @property
    def running(self):
        return self.state in ("starting", "playing")

    def summary(self, details=False):
        latencies = np.array(self.latencies) * 1000
        out = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "loop": self.loop,
            "filter": self.filter,
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
                    "box": _box(t.box),
                    "person": t.person,
                    "name": t.name,
                    "distance": t.distance,
                    "since": t.since,
                }
                for t in self.tracks.live.values()
            ]
        return out


class Worker:
    def __init__(self, process, conn):
        self.process, self.conn = process, conn
        self.ready = False
        self.job = None  # (stream id, seq) being detected


class Streams:
    def __init__(self, config, store):
        self.config, self.store = config, store
        self.context = multiprocessing.get_context("spawn")
        self.lock = threading.RLock()
        self.streams = {}
        self.workers = []
        self.restarts = 0
        self.closed = threading.Event()
        self._stopping = []  # (process, names, deadline) of readers told to stop
        self._wake_r, self._wake_w = os.pipe()
        self._recognition = threading.Condition(self.lock)
        self._threads = []
        self._identified_at = 0.0
        self._closing = threading.Lock()

    # -- the HTTP edge's calls ------------------------------------------------------------------------

    def start(self, source, name, loop=False, filter=None, store=False):
        """Open a source and play it; returns the stream once it plays (or after OPEN_WAIT seconds)."""
        problem = reader.source_problem(source)
        if problem:
            raise SourceFailed(problem)
        stream = Stream(source, name, loop, filter, store)
        self._launch(
            stream,
            reader.run,
            (
                source,
                loop and reader.is_file(source),
                filter,
                self.config["STREAM_PRIVACY_WAIT"],
                stream.names,
                self.config["STREAM_JPEG_QUALITY"],
            ),
        )
        return self._started(stream, lambda: stream.state != "starting")

    def call(self, offer, name, filter=None, store=False):
        """Answer a browser's WebRTC offer (SDP): returns the call, a stream whose `answer` is set, once
        its process has answered (its state turns "playing" with the first frame)."""
        stream = Stream(CALL, name, False, filter, store)
        self._launch(stream, call.run, (offer, filter, self.config["STREAM_PRIVACY_WAIT"], stream.names))
        self._started(stream, lambda: stream.answer is not None or stream.state != "starting")
        if stream.answer is None:
            with contextlib.suppress(UnknownStream):  # it may have ended meanwhile
                self.stop(stream.id)
            raise SourceFailed(f"the call was not answered within {OPEN_WAIT} s")
        return stream

    def _launch(self, stream, target, args):
        """Start a stream's process (a reader, or a call's), which speaks to the manager over a pipe."""
        with self.lock:
            if self.closed.is_set():
                raise SourceFailed("the service is stopping")
            if sum(s.running for s in self.streams.values()) >= self.config["STREAM_MAX_STREAMS"]:
                raise TooManyStreams(
                    f"{self.config['STREAM_MAX_STREAMS']} streams are running (STREAM_MAX_STREAMS): stop one first"
                )
            self._start_threads()
            stream.conn, child = self.context.Pipe()
            stream.process = self.context.Process(
                target=target, name=f"facerec-stream-{stream.id}", daemon=True, args=(child, *args)
            )
            stream.process.start()
            child.close()
            self.streams[stream.id] = stream
            self._wake()

    def _started(self, stream, ready):
        with stream.changed:
            stream.changed.wait_for(ready, timeout=OPEN_WAIT)
        if stream.state in ("failed", "ended"):
            with self.lock:
                self.streams.pop(stream.id, None)
            raise SourceFailed(stream.message)
        return stream

    def get(self, stream_id):
        stream = self.streams.get(stream_id)
        if stream is None:
            raise UnknownStream(stream_id)
        return stream

    def list(self):
        with self.lock:
            return list(self.streams.values())

    def summary(self, stream, details=False):
        with self.lock:  # its faces and rates change under the managing thread
            return stream.summary(details)

    def set_filter(self, stream_id, filter):
        """Switch a stream's privacy filter while it plays: the next frames out are drawn with it."""
        with self.lock:
            stream = self.get(stream_id)
            stream.filter = filter
            if stream.running:
                _send(stream.conn, ("filter", filter))
                self._draw(stream)
            return stream

    def stop(self, stream_id):
        """Stop a stream and forget it; its viewers' connections end."""
        with self.lock:
            stream = self.get(stream_id)
            del self.streams[stream_id]
            self._end(stream, "stopped", None)
            self._wake()

    def health(self):
        with self.lock:
            return {
                "workers": [w.process.pid for w in self.workers if w.process.is_alive()],
                "worker_restarts": self.restarts,
                "readers": [s.process.pid for s in self.streams.values() if s.process.is_alive()],
            }

    def watch(self, stream, viewers):
        """A viewer came (`viewers` 1) or went (-1). The reader draws and encodes the video only while
        someone watches; a newcomer never gets a picture from before."""
        with self.lock:
            stream.viewers += viewers
            watched = stream.viewers > 0
            if watched != stream.watched and stream.running and stream.conn is not None:
                _send(stream.conn, ("watched", watched))
            stream.watched = watched
            if not watched:
                stream.jpeg = None

    def next_jpeg(self, stream, after):
        """(seq, JPEG, read time) of the first frame newer than `after`, however long a live source keeps
        it coming; None once the stream has ended."""
        with stream.changed:
            stream.changed.wait_for(
                lambda: not stream.running or self.closed.is_set() or (stream.jpeg and stream.jpeg[0] > after)
            )
            return stream.jpeg if stream.running and not self.closed.is_set() else None

    def next_events(self, stream, after, timeout=15):
        """The events with an id above `after` ([] after `timeout` seconds); None once the stream is gone."""
        with stream.changed:
            stream.changed.wait_for(
                lambda: (
                    stream.state == "stopped"
                    or self.closed.is_set()
                    or (stream.events and stream.events[-1]["id"] > after)
                ),
                timeout,
            )
            if stream.state == "stopped" or self.closed.is_set():
                return None
            return [e for e in stream.events if e["id"] > after]

    def shutting_down(self):
        """The service is stopping (SIGTERM): every MJPEG and event response ends now, so that the
        server need not wait for them."""
        self.closed.set()
        for stream in self.list():
            with stream.changed:
                stream.changed.notify_all()

    def close(self):
        """Stop every stream and process and wait for them: nothing is left running or in shared memory.
        Idempotent; a second caller waits for the first."""
        with self._closing:
            if self._threads is None:
                return
            with self.lock:
                self.closed.set()
                for stream in self.streams.values():
                    self._end(stream, "stopped", None)
                self._recognition.notify_all()
                os.write(self._wake_w, b"x")
            self._close_processes()

    def _close_processes(self):
        for thread in self._threads:
            thread.join(timeout=5)
        for w in self.workers:
            _send(w.conn, ("stop",))
        deadline = time.monotonic() + STOP_WAIT
        for process, names in [(w.process, ()) for w in self.workers] + [(p, n) for p, n, _ in self._stopping]:
            _finish(process, deadline)
            for name in names:
                unlink(name)
        self.workers, self._stopping, self._threads = [], [], None
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the managing thread --------------------------------------------------------------------------

    def _start_threads(self):
        if self._threads:
            return  # started with the first stream: a service nobody streams from holds no processes
        count = self.config["STREAM_WORKERS"] or len(os.sched_getaffinity(0))
        self.workers = [self._start_worker() for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._run, name="streams", daemon=True),
            threading.Thread(target=self._recognise, name="recognition", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _start_worker(self):
        conn, child = self.context.Pipe()
        process = self.context.Process(
            target=worker.run,
            name="facerec-detect",
            daemon=True,
            args=(child, self.config["MODELS_DIR"], self.config["LANDMARKS"], self.config["STREAM_DETECT_WIDTH"]),
        )
        process.start()
        child.close()
        return Worker(process, conn)

    def _wake(self):
        if not self.closed.is_set():
            os.write(self._wake_w, b"x")

    def _run(self):
        while not self.closed.is_set():
            with self.lock:
                waiting = {self._wake_r: None}
                for s in self.streams.values():
                    if s.process is not None and s.conn is not None:
                        waiting[s.conn] = s
                        waiting[s.process.sentinel] = s
                for w in self.workers:
                    waiting[w.conn] = w
                    waiting[w.process.sentinel] = w
                for process, _, _ in self._stopping:
                    waiting[process.sentinel] = None
            ready = wait(list(waiting), timeout=0.5)
            with self.lock:
                if self.closed.is_set():
                    return
                for obj in ready:
                    if obj == self._wake_r:
                        os.read(self._wake_r, 4096)
                        continue
                    owner = waiting[obj]
                    try:
                        if isinstance(owner, Stream):
                            self._from_reader(owner, obj)
                        elif isinstance(owner, Worker):
                            self._from_worker(owner, obj)
                    except Exception:  # one bad message must not stop every stream
                        log.exception("streams: handling a message failed")
                self._reap()
                self._dispatch()

    def _from_reader(self, stream, obj):
        """A reader's message, or its end: what it said last (in the pipe still) comes first."""
        try:
            while stream.conn is not None and stream.conn.poll():
                self._reader_said(stream, stream.conn.recv())
        except (EOFError, OSError):
            pass
        if stream.running and not stream.process.is_alive():
            stream.process.join()
            self._end(
                stream,
                "failed",
                f"the {'call' if stream.is_call else 'reader'} stopped unexpectedly (exit code {stream.process.exitcode})",
            )
            if stream.is_call:
                self.streams.pop(stream.id, None)

    def _reader_said(self, stream, message):
        kind = message[0]
        if kind == "frame":
            _, seq, cut, shown = message
            stream.latest = seq
            if cut:  # the reader stops drawing the old shot's faces itself
                self._left(stream, stream.tracks.cut())
                stream.applied = max(stream.applied, seq - 1)
            if shown:
                stream.outputs.append(time.monotonic())
            got = stream.jpegs.get(shown[0]) if shown and shown[2] and stream.jpegs else None
            if got is not None:
                with stream.changed:
                    stream.jpeg = (shown[0], got[0], got[1])
                    stream.changed.notify_all()
        elif kind == "opened":
            _, stream.width, stream.height, stream.source_fps = message
            stream.jpegs = JpegSlots(stream.names["jpeg"], stream.width * stream.height * 3 + 65536)
            self._set_state(stream, "playing", None)
        elif kind in ("ended", "failed"):
            self._end(stream, kind, message[1])
            if stream.is_call:  # a call that is over is forgotten: there is nothing to see again
                self.streams.pop(stream.id, None)
        elif kind == "answer":
            with stream.changed:
                stream.answer = message[1]
                stream.changed.notify_all()
        elif kind == "ring":  # a call's frames, from now on in a new ring (the first, or a new size)
            _, stream.width, stream.height, name = message
            for w in self.workers:
                _send(w.conn, ("forget", stream.names["frames"]))
            stream.names["frames"] = name
            if stream.state == "starting":
                self._set_state(stream, "playing", None)
        elif kind == "sent":  # a call's frame went back to the caller
            stream.outputs.append(time.monotonic())
            stream.latencies.append(message[1])

    def _from_worker(self, w, obj):
        if obj == w.process.sentinel:
            self._restart(w)
            return
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            self._restart(w)
            return
        if message[0] == "ready":
            w.ready = True
            return
        w.job = None
        stream = self.streams.get(message[1])
        if message[0] != "faces" or stream is None or not stream.running:
            return
        _, _, seq, faces = message
        stream.detections.append(time.monotonic())
        if seq <= stream.applied:  # a newer frame's faces came first
            return
        stream.applied = seq
        described, ended = stream.tracks.update(faces)
        self._left(stream, ended)
        if described:
            if stream.store:
                stream.to_store += described
            self._recognition.notify_all()
        self._draw(stream)

    def _restart(self, w):
        """A worker died (killed, out of memory): its frame is skipped and a new worker takes its place."""
        if w not in self.workers:
            return  # its pipe and its sentinel both said so
        code = w.process.exitcode
        w.process.join(timeout=1)
        w.conn.close()
        if self.closed.is_set():
            return
        log.warning("streams: detection worker %s exited with %s; starting another", w.process.pid, code)
        self.restarts += 1
        self.workers[self.workers.index(w)] = self._start_worker()

    def _dispatch(self):
        """Each free worker gets the newest frame of the stream that waited longest for one."""
        free = [w for w in self.workers if w.ready and w.job is None and w.process.is_alive()]
        if not free:
            return
        waiting = sorted(
            (s for s in self.streams.values() if s.state == "playing" and s.latest > s.given), key=lambda s: s.given_at
        )
        for w, stream in zip(free, waiting):
            seq = stream.latest
            job = (
                "detect",
                stream.id,
                stream.names["frames"],
                (stream.height, stream.width),
                seq,
                stream.tracks.known_boxes(),
                stream.store,
                bool(stream.filter),  # a privacy filter: find every face that may be one
            )
            if _send(w.conn, job):
                w.job = (stream.id, seq)
                stream.given, stream.given_at = seq, time.monotonic()

    def _draw(self, stream):
        _send(stream.conn, ("faces", stream.tracks.overlay(stream.filter), stream.applied))

    def _left(self, stream, tracks):
        for t in tracks:
            if t.announced:
                self._event(stream, "left", t)

    def _event(self, stream, kind, track):
        with stream.changed:
            last = stream.events[-1]["id"] if stream.events else 0
            stream.events.append(
                {
                    "id": last + 1,
                    "type": kind,
                    "time": utc_now(),
                    "track": track.id,
                    "person": track.person,
                    "name": track.name,
                    "since": track.since,
                }
            )
            stream.changed.notify_all()

    def _set_state(self, stream, state, message):
        with stream.changed:
            stream.state, stream.message = state, message
            last = stream.events[-1]["id"] if stream.events else 0
            stream.events.append(
                {"id": last + 1, "type": "state", "time": utc_now(), "state": state, "message": message}
            )
            stream.changed.notify_all()

    def _end(self, stream, state, message):
        """The stream no longer plays (or is forgotten): its reader is stopped (or gone) and its shared
        memory let go."""
        if stream.running:
            self._left(stream, stream.tracks.cut())
            self._release(stream)
        self._set_state(stream, state, message)

    def _release(self, stream):
        if stream.conn is not None:
            _send(stream.conn, ("stop",))
            stream.conn.close()
            stream.conn = None
        if stream.jpegs is not None:
            stream.jpegs.close()
            stream.jpegs = None
        self._stopping.append((stream.process, list(stream.names.values()), time.monotonic() + STOP_WAIT))
        for w in self.workers:
            _send(w.conn, ("forget", stream.names["frames"]))

    def _reap(self):
        """Readers told to stop: joined when they have, terminated when they are late; then their shared
        memory is unlinked (a reader killed with -9 leaves it behind)."""
        still = []
        for process, names, deadline in self._stopping:
            if process.is_alive() and time.monotonic() < deadline:
                still.append((process, names, deadline))
                continue
            _finish(process, time.monotonic())
            for name in names:
                unlink(name)
        self._stopping = still

    # -- recognition ----------------------------------------------------------------------------------

    def _recognise(self):
        """Ask the store who each followed face is: at once for a new face, then every
        STREAM_IDENTIFY_EVERY seconds (a name given meanwhile shows then). With "store": true, each new
        descriptor is stored first."""
        every = self.config["STREAM_IDENTIFY_EVERY"]
        while not self.closed.is_set():
            with self.lock:
                self._recognition.wait_for(lambda: self.closed.is_set() or self._due(every), timeout=every)
                work = []
                for stream in self.streams.values():
                    tracks = [t for t in stream.tracks.live.values() if t.descriptors]
                    pending, stream.to_store = stream.to_store, []
                    if tracks or pending:
                        work.append((stream, tracks, [t.mean() for t in tracks], pending))
                self._identified_at = time.monotonic()
            for stream, tracks, means, pending in work:
                try:
                    for track, face in pending:
                        frame_id = f"{stream.id}:{track.id}:{len(track.descriptors)}:{time.time()}"
                        body = face_body(
                            face["descriptor"], Box.from_corners(*face["box"]), face["thumbnail"], face["quality"]
                        )
                        self.store.add_faces(hashlib.sha256(frame_id.encode()).hexdigest(), [body])
                    answers = self.store.identify(means) if means else []
                except StoreUnavailable as e:
                    log.warning("streams: %s", e)
                    answers = [{"person": None, "name": None, "distance": None}] * len(tracks)
                with self.lock:
                    self._recognised(stream, tracks, answers)

    def _due(self, every):
        if time.monotonic() - self._identified_at >= every:
            return True
        return any(
            s.to_store or any(t.descriptors and not t.announced for t in s.tracks.live.values())
            for s in self.streams.values()
        )

    def _recognised(self, stream, tracks, answers):
        changed = False
        for track, answer in zip(tracks, answers):
            if stream.tracks.live.get(track.id) is not track:
                continue  # it left meanwhile
            before = (track.person, track.name)
            track.person, track.name, track.distance = answer["person"], answer["name"], answer["distance"]
            if not track.announced:
                track.announced = True
                self._event(stream, "appeared", track)
                changed = True
            elif (track.person, track.name) != before:
                self._event(stream, "changed", track)
                changed = True
        if changed and stream.running:
            self._draw(stream)


def _send(conn, message):
    try:
        conn.send(message)
        return True
    except (OSError, ValueError):  # the other end is gone: its sentinel tells the loop
        return False


def _finish(process, deadline):
    """Wait for a process until `deadline`, then terminate it, then kill it."""
    process.join(timeout=max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        process.terminate()
        process.join(timeout=1)
    if process.is_alive():
        process.kill()
        process.join()


def _rate(times):
    """Events a second over the last two seconds of `times` (time.monotonic() values)."""
    now = time.monotonic()
    recent = [t for t in times if t > now - 2]
    return round(len(recent) / 2, 1)


def _box(box):
    left, top, right, bottom = box
    return {"left": left, "top": top, "width": right - left, "height": bottom - top}
