"""The streams as the HTTP edge sees them: start one (a source, or a browser's call), list, watch,
switch its filter, stop it; and the service's own start and end.

Per stream a reader process (reader.py) or a call process (call.py); detection worker processes
(pool.py, detector.py) shared by all streams, one per core by default, started with the first stream.
Frames and JPEGs travel through shared memory (shared_frames.py); the pipes carry only small messages
(messages.py). Two threads do the work: the pipe loop (loop.py) follows the faces and feeds the workers
and the viewers; recognition (recognition.py) asks the store who the faces are. All three share the
registry (registry.py) and its one lock.
"""

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import call, reader
from .loop import PipeLoop
from .messages import AddViewer, DropViewer, Publish, SetBackground, SetFilter, Unpublish, Watched
from .processes import CONTEXT, STOP_WAIT, send
from .recognition import Recognition, Store
from .registry import Registry
from .stream import CALL, Stream

OPEN_WAIT = 15  # seconds POST /streams waits for a source to open (OpenCV gives up on one after 10)


class TooManyStreams(RuntimeError):
    pass


class SourceFailed(RuntimeError):
    pass


class UnknownStream(LookupError):
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream with id {stream_id}")


class NotBroadcast(RuntimeError):
    pass


class UnknownViewer(LookupError):
    pass


class PublishFailed(RuntimeError):
    pass


class NotPublished(LookupError):
    pass


# A stream's background filter as start, call and change take it: (kind, background as asked, as the
# stream's process gets it: backgrounds.py's resolve).
Backdrop = tuple[str | None, str | None, Any]


class Manager:
    def __init__(self, config: Any, store: Store) -> None:
        self.config = config
        self.registry = Registry(config)
        self.recognition = Recognition(self.registry, store)
        self.closed = self.registry.closed
        self._threads: list[threading.Thread] | None = []
        self._closing = threading.Lock()

    # -- starting -------------------------------------------------------------------------------------

    def start(
        self,
        source: str,
        name: str,
        loop: bool = False,
        filter: str | None = None,
        store: bool = False,
        backdrop: Backdrop | None = None,
        broadcast: bool = False,
    ) -> Stream:
        """Open a source and play it; returns the stream once it plays (or after OPEN_WAIT seconds). With
        `broadcast`, it is watched over WHEP too (whep)."""
        problem = reader.source_problem(source)
        if problem:
            raise SourceFailed(problem)
        stream = Stream(source, name, loop, filter, store, backdrop, broadcast)
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
                (stream.background_filter, stream.backdrop),
                broadcast,
            ),
        )
        return self._started(stream, lambda: stream.state != "starting")

    def call(
        self,
        offer: str,
        name: str,
        filter: str | None = None,
        store: bool = False,
        backdrop: Backdrop | None = None,
        broadcast: bool = False,
    ) -> Stream:
        """Answer a browser's WebRTC offer (SDP): returns the call, a stream whose `answer` is set, once
        its process has answered (its state turns "playing" with the first frame). With `broadcast`,
        others may watch it (whep, watch)."""
        stream = Stream(CALL, name, False, filter, store, backdrop, broadcast)
        args = (
            offer,
            filter,
            self.config["STREAM_PRIVACY_WAIT"],
            stream.names,
            (stream.background_filter, stream.backdrop),
            self.config["STREAM_JPEG_QUALITY"] if broadcast else None,
        )
        self._launch(stream, call.run, args)
        self._started(stream, lambda: stream.answer is not None or stream.state != "starting")
        if stream.answer is None:
            with contextlib.suppress(UnknownStream):  # it may have ended meanwhile
                self.stop(stream.id)
            raise SourceFailed(f"the call was not answered within {OPEN_WAIT} s")
        return stream

    def _launch(self, stream: Stream, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        """Start a stream's process (a reader, or a call's), which speaks to the pipe loop over a pipe."""
        registry = self.registry
        with registry.lock:
            if self.closed.is_set():
                raise SourceFailed("the service is stopping")
            limit = self.config["STREAM_MAX_STREAMS"]
            if sum(s.running for s in registry.streams.values()) >= limit:
                raise TooManyStreams(f"{limit} streams are running (STREAM_MAX_STREAMS): stop one first")
            self._start_threads()
            stream.conn, child = CONTEXT.Pipe()
            stream.process = CONTEXT.Process(
                target=target, name=f"facerec-stream-{stream.id}", daemon=True, args=(child, *args)
            )
            stream.process.start()
            child.close()
            registry.streams[stream.id] = stream
            registry.wake()

    def _started(self, stream: Stream, ready: Callable[[], bool]) -> Stream:
        with stream.changed:
            stream.changed.wait_for(ready, timeout=OPEN_WAIT)
        if stream.state in ("failed", "ended"):
            with self.registry.lock:
                self.registry.streams.pop(stream.id, None)
            raise SourceFailed(stream.message)
        return stream

    def _start_threads(self) -> None:
        if self._threads:
            return  # started with the first stream: a service nobody streams from holds no processes
        self.registry.pool.start()
        self._threads = [
            threading.Thread(target=PipeLoop(self.registry).run, name="streams", daemon=True),
            threading.Thread(target=self.recognition.run, name="recognition", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the streams ----------------------------------------------------------------------------------

    def get(self, stream_id: str) -> Stream:
        stream = self.registry.streams.get(stream_id)
        if stream is None:
            raise UnknownStream(stream_id)
        return stream

    def current(self) -> list[Stream]:
        """The streams now, playing or not (until deleted)."""
        with self.registry.lock:
            return list(self.registry.streams.values())

    def summary(self, stream: Stream, details: bool = False) -> dict[str, Any]:
        with self.registry.lock:  # its faces and rates change under the pipe loop
            return stream.summary(details)

    def change(self, stream_id: str, filter: Any = ..., backdrop: Backdrop | None = None) -> Stream:
        """Switch a stream's privacy filter (unless `filter` is ...) and its background filter (unless
        `backdrop` is None) while it plays: the next frames out are drawn with them."""
        with self.registry.lock:
            stream = self.get(stream_id)
            conn = stream.conn if stream.running else None
            if filter is not ...:
                stream.filter = filter
                if conn is not None:
                    send(conn, SetFilter(filter))
                    self.registry.draw(stream)
            if backdrop is not None:
                stream.background_filter, stream.background, stream.backdrop = backdrop
                if conn is not None:
                    send(conn, SetBackground(stream.background_filter, stream.backdrop))
            return stream

    def whep(self, stream_id: str, offer: str) -> tuple[str, str]:
        """A WHEP viewer's SDP offer for a broadcast stream or call: (viewer id, SDP answer) once its
        process (the reader's relay, or the call's) has answered it."""
        with self.registry.lock:
            stream = self.get(stream_id)
            if not stream.broadcast:
                raise NotBroadcast(
                    'only a stream or call started with "broadcast": true is sent over WHEP'
                    " (any other stream is watched as MJPEG)"
                )
            limit = self.config["STREAM_MAX_VIEWERS"]
            if len(stream.whep) >= limit:
                raise NotBroadcast(f"{limit} viewers watch already (STREAM_MAX_VIEWERS)")
            if not stream.running or stream.conn is None:
                raise NotBroadcast(f"the {'call' if stream.is_call else 'stream'} is not playing")
            viewer = uuid.uuid4().hex[:12]
            stream.whep[viewer] = None
            send(stream.conn, AddViewer(viewer, offer))
        with stream.changed:
            stream.changed.wait_for(lambda: stream.whep.get(viewer) is not None or not stream.running, OPEN_WAIT)
        with self.registry.lock:
            answer = stream.whep.get(viewer)
            if isinstance(answer, str):
                return viewer, answer
            stream.whep.pop(viewer, None)
            if stream.running and stream.conn is not None:
                send(stream.conn, DropViewer(viewer))
        raise SourceFailed(answer[1] if answer else f"the viewer was not answered within {OPEN_WAIT} s")

    def whep_close(self, stream_id: str, viewer: str) -> None:
        """A WHEP viewer is done (its DELETE): its connection ends, the others go on."""
        with self.registry.lock:
            stream = self.get(stream_id)
            if viewer not in stream.whep:
                raise UnknownViewer(f"no viewer {viewer} of stream {stream_id}")
            del stream.whep[viewer]
            if stream.running and stream.conn is not None:
                send(stream.conn, DropViewer(viewer))

    def publish(self, stream_id: str, url: str, token: str | None) -> Stream:
        """Publish a broadcast call to a WHIP endpoint (whip.py): returns the call once the endpoint has
        answered; PublishFailed when it refused, could not be reached or did not answer in time."""
        wait = self.config["STREAM_WHIP_WAIT"]
        with self.registry.lock:
            stream = self.get(stream_id)
            if not (stream.is_call and stream.broadcast):
                raise NotBroadcast('only a call started with "broadcast": true is published over WHIP')
            if not stream.running or stream.conn is None:
                raise NotBroadcast("the call is not playing")
            if stream.publication is not None and stream.publication["state"] != "failed":
                raise NotBroadcast(f"the call is published already: DELETE /streams/{stream_id}/publish first")
            name = uuid.uuid4().hex[:12]
            stream.publication = {"id": name, "url": url, "state": "starting", "error": None}
            send(stream.conn, Publish(name, url, token, wait))
        publication = stream.publication
        with stream.changed:  # the call's process gives up on the endpoint after `wait` seconds

            def answered() -> bool:
                return publication["state"] != "starting" or stream.publication is not publication or not stream.running

            stream.changed.wait_for(answered, wait + OPEN_WAIT)
        with self.registry.lock:
            if publication["state"] in ("connecting", "publishing"):
                return stream
            if publication["state"] == "starting":  # unpublished meanwhile, the call ended, or its process is stuck
                publication.update(state="failed", error="publishing stopped before the WHIP endpoint answered")
            raise PublishFailed(publication["error"])

    def unpublish(self, stream_id: str) -> None:
        """Stop publishing a broadcast call (its resource at the endpoint is DELETEd)."""
        with self.registry.lock:
            stream = self.get(stream_id)
            if stream.publication is None:
                raise NotPublished(f"stream {stream_id} is not published")
            name, stream.publication = stream.publication["id"], None
            if stream.running and stream.conn is not None:
                send(stream.conn, Unpublish(name))
        with stream.changed:
            stream.changed.notify_all()  # a POST still waiting for the endpoint's answer gives up

    def stop(self, stream_id: str) -> None:
        """Stop a stream and forget it; its viewers' connections end."""
        with self.registry.lock:
            stream = self.get(stream_id)
            del self.registry.streams[stream_id]
            self.registry.end(stream, "stopped", None)
            self.registry.wake()

    def health(self) -> dict[str, Any]:
        with self.registry.lock:
            return {
                "workers": self.registry.pool.pids(),
                "worker_restarts": self.registry.pool.restarts,
                "readers": [
                    s.process.pid for s in self.registry.streams.values() if s.process and s.process.is_alive()
                ],
            }

    # -- viewers and event clients --------------------------------------------------------------------

    def watch(self, stream: Stream, viewers: int) -> None:
        """A viewer came (`viewers` 1) or went (-1). The reader draws and encodes the video only while
        someone watches; a newcomer never gets a picture from before."""
        with self.registry.lock:
            stream.viewers += viewers
            watched = stream.viewers > 0
            if watched != stream.watched and stream.running and stream.conn is not None:
                send(stream.conn, Watched(watched))
            stream.watched = watched
            if not watched:
                stream.jpeg = None

    def next_jpeg(self, stream: Stream, after: int) -> tuple[int, bytes, float] | None:
        """(seq, JPEG, read time) of the first frame newer than `after`, however long a live source keeps
        it coming; None once the stream has ended."""
        with stream.changed:
            stream.changed.wait_for(
                lambda: (
                    not stream.running or self.closed.is_set() or (stream.jpeg is not None and stream.jpeg[0] > after)
                )
            )
            return stream.jpeg if stream.running and not self.closed.is_set() else None

    def next_events(self, stream: Stream, after: int, timeout: float = 15) -> list[dict[str, Any]] | None:
        """The events with an id above `after` ([] after `timeout` seconds); None once the stream is gone."""
        with stream.changed:
            stream.changed.wait_for(
                lambda: (
                    stream.state == "stopped"
                    or self.closed.is_set()
                    or bool(stream.events and stream.events[-1]["id"] > after)
                ),
                timeout,
            )
            if stream.state == "stopped" or self.closed.is_set():
                return None
            return [e for e in stream.events if e["id"] > after]

    # -- the end --------------------------------------------------------------------------------------

    def shutting_down(self) -> None:
        """The service is stopping (SIGTERM): every MJPEG and event response ends now, so that the
        server need not wait for them."""
        self.closed.set()
        for stream in self.current():
            with stream.changed:
                stream.changed.notify_all()

    def close(self) -> None:
        """Stop every stream and process and wait for them: nothing is left running or in shared memory.
        Idempotent; a second caller waits for the first."""
        registry = self.registry
        with self._closing:
            if self._threads is None:
                return
            with registry.lock:  # the pipe loop, woken, finds the service closed once it has the lock
                registry.wake()
                self.closed.set()
                for stream in registry.streams.values():
                    registry.end(stream, "stopped", None)
                registry.to_recognise.notify_all()
            for thread in self._threads:
                thread.join(timeout=5)
            deadline = time.monotonic() + STOP_WAIT
            registry.pool.stop(deadline)
            registry.stopping.finish_all(deadline)
            self._threads = None
            registry.close_wake()
