"""A call's process: a browser's camera over WebRTC in, the same video annotated (or blurred) back out on
the same peer connection. To the manager it is a stream's reader whose source is the caller: it puts each
frame it receives in the stream's frame ring for the detection workers, draws the faces the manager sends,
and speaks the reader's messages (messages.py: `FrameRead`, `Ended`, `Failed`), plus `Answer` (the SDP
answer), `NewRing` (a new frame ring, for the first frame and whenever the browser changes the
resolution, as browsers do with bandwidth and CPU) and `Sent` (a frame's latency).

aiortc is asyncio: the process runs the call's event loop in its main thread for the call's whole life
(an event loop started inside a Flask view ends with the request, and the peer connection with it). One
process per call keeps each call's video decoding and encoding off the web process and its GIL, and
ending the call frees everything the call held (sockets, codecs, frames): the process exits.

Latency comes first. The frames aiortc decodes are drained as they come and only the newest is kept;
when the sender takes a frame to encode and send, the newest is worked on (into the frame ring, the faces
drawn) meanwhile, to be the next one out. A frame with no time to go out costs nothing more than its
decoding, so a busy machine lowers the frame rate, not the latency. Nothing queues.
"""

import asyncio
import fractions
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import av
import cv2
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .backdrop import Backdrop
from .broadcast import JPEG_SLOT_BYTES, Broadcast
from .drawing import picture
from .messages import (
    AddViewer,
    Answer,
    Draw,
    DropViewer,
    Ended,
    Failed,
    FrameRead,
    NewRing,
    Publish,
    Published,
    Sent,
    SetBackground,
    SetFilter,
    Stop,
    Unpublish,
    Watched,
)
from .reader import is_cut
from .shared_frames import FrameRing, JpegSlots
from .showing import Shown
from .whip import Publication

# The video back is VP8 (every browser decodes it), encoded here rather than by aiortc: at libvpx's
# fastest real-time speed and without its noise filter, which costs far less CPU than aiortc's settings
# (docs/performance.md). Bits a pixel a frame, times 30 fps: ~1 Mbit/s at 640x360, for a LAN.
BITS_PER_PIXEL = 0.15
KEYFRAME_EVERY = 60  # frames: a picture a packet loss damaged is whole again within two seconds
VP8_OPTIONS = {
    "deadline": "realtime",
    "cpu-used": "16",
    "lag-in-frames": "0",
    "noise-sensitivity": "0",
    "static-thresh": "1",
    "partitions": "0",
    "undershoot-pct": "100",
    "overshoot-pct": "15",
}
CONNECT_WAIT = 30  # seconds from the answer to the first frame, before the call is given up
SILENCE = 10  # seconds without a frame after which the caller is gone (a tab closed without a goodbye)


def run(
    conn: Connection,
    offer: str,
    filter: str | None,
    privacy_wait: float,
    names: dict[str, str],
    backdrop: tuple = (None, None),
    broadcast: int | None = None,
) -> None:
    """The process: answers the offer, then plays the call until the caller leaves, the manager says
    stop, or the manager is gone (its pipe closes). `backdrop`: the background filter (backdrop.py); with
    `broadcast` (the MJPEG's JPEG quality), others may watch the call too (broadcast.py)."""
    cv2.setNumThreads(1)

    async def answer() -> None:  # the Call is made inside the event loop that plays it
        await Call(conn, filter, privacy_wait, names, backdrop, broadcast).play(offer)

    try:
        asyncio.run(answer())
    except (BrokenPipeError, EOFError):
        pass  # the manager is gone: nobody to play for


class Call:
    """One call, made inside its event loop."""

    def __init__(
        self,
        conn: Connection,
        filter: str | None,
        privacy_wait: float,
        names: dict[str, str],
        backdrop: tuple = (None, None),
        broadcast: int | None = None,
    ) -> None:
        self.conn, self.names = conn, names
        self.shown = Shown(filter, privacy_wait)
        self.backdrop = Backdrop(*backdrop)
        self.broadcast: Broadcast | None = None
        if broadcast is not None:
            jpegs = JpegSlots(names["jpeg"], JPEG_SLOT_BYTES, create=True)
            self.broadcast = Broadcast(self.conn.send, jpegs, broadcast)
        self.publications: dict[str, Publication] = {}  # a broadcast's, over WHIP (whip.py), by name
        self.ring: FrameRing | None = None
        self.rings = 0  # frame rings made so far: each has a name of its own
        self.seq = -1
        self.previous: np.ndarray | None = None  # the last frame's thumbnail, for cuts
        self.newest: tuple[Any, float] | None = None  # (the newest frame received, not yet worked on, when it came)
        self.received = asyncio.Event()  # a frame came
        self.arrived = 0  # frames received
        # The reason the call ends.
        self.done: asyncio.Future[Ended | Failed] = asyncio.get_running_loop().create_future()
        self.outputs: list[float] = []  # times of the last second's frames out, for the fps drawn

    async def play(self, offer: str) -> None:
        loop = asyncio.get_running_loop()
        # No STUN or TURN server: on a LAN or localhost the host candidates connect (and nothing is
        # asked of a server the service may not reach).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        back = Annotated(self.conn, self.next_out)
        loop.add_reader(self.conn.fileno(), self._from_manager)
        try:

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video" and not back.taken:
                    back.taken = True
                    pc.addTrack(back)  # on the offer's video transceiver: the video goes back the same way
                    vp8 = [
                        c
                        for c in RTCRtpSender.getCapabilities("video").codecs
                        if c.mimeType in ("video/VP8", "video/rtx")
                    ]
                    for transceiver in pc.getTransceivers():
                        if transceiver.receiver.track is track:
                            transceiver.setCodecPreferences(vp8)
                    loop.create_task(self._receive(track))

            @pc.on("connectionstatechange")
            def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self._finish(
                        Ended("the caller hung up" if pc.connectionState == "closed" else "the connection failed")
                    )

            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                if not back.taken:
                    raise ValueError("the offer sends no video")
                await pc.setLocalDescription(await pc.createAnswer())
            except ValueError as e:
                self.conn.send(Failed(f"the offer cannot be answered: {e}"))
                return
            self.conn.send(Answer(pc.localDescription.sdp))
            loop.create_task(self._watch())
            self.conn.send(await self.done)
        finally:
            loop.remove_reader(self.conn.fileno())
            # Each publication's resource is DELETEd, all at once: the process has STOP_WAIT seconds.
            await asyncio.gather(*(p.stop() for p in self.publications.values()))
            if self.broadcast is not None:  # every viewer's connection ends with the call
                await self.broadcast.close()
                self.broadcast.jpegs.close(unlink=True)
            await pc.close()
            if self.ring is not None:
                self.ring.close(unlink=True)

    def _finish(self, reason: Ended | Failed) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    def _from_manager(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if isinstance(message, Stop):
                    self._finish(Ended("stopped"))
                    return
                if isinstance(message, Draw | SetFilter):
                    self.shown.told(message)
                elif isinstance(message, SetBackground):
                    self.backdrop.set(message.kind, message.background)
                elif isinstance(message, Watched | AddViewer | DropViewer) and self.broadcast is not None:
                    asyncio.ensure_future(self._to_viewers(message))
                elif isinstance(message, Publish | Unpublish) and self.broadcast is not None:
                    asyncio.ensure_future(self._publishing(message))
        except (EOFError, OSError):
            self._finish(Ended("the service is gone"))

    async def _to_viewers(self, message: Watched | AddViewer | DropViewer) -> None:
        """The manager's Watched, AddViewer or DropViewer, for a broadcast."""
        broadcast = self.broadcast
        assert broadcast is not None  # only a broadcast call is told these
        if isinstance(message, Watched):
            broadcast.watched = message.watched
        else:
            await broadcast.told(message)

    async def _publishing(self, message: Publish | Unpublish) -> None:
        """The manager's Publish or Unpublish, for a broadcast (whip.py)."""
        assert self.broadcast is not None  # only a broadcast call is told these
        name = message.publication
        if isinstance(message, Unpublish):
            if (gone := self.publications.pop(name, None)) is not None:
                await gone.stop()
            return

        def report(state: str, error: str | None) -> None:
            if state == "failed":
                self.publications.pop(name, None)
            self.conn.send(Published(name, state, error))

        publication = Publication(self.broadcast, message.url, message.token, message.wait, report)
        self.publications[name] = publication
        await publication.start()

    async def _receive(self, track: MediaStreamTrack) -> None:
        """Drain the decoded frames as they come: only the newest is kept for work."""
        try:
            while True:
                self.newest = (await track.recv(), time.monotonic())
                self.arrived += 1
                self.received.set()
        except MediaStreamError:
            self._finish(Ended("the caller's video ended"))

    async def _watch(self) -> None:
        """The caller is gone when no frame has come for SILENCE seconds (CONNECT_WAIT for the first)."""
        last, since = self.arrived, time.monotonic()
        while not self.done.done():
            await asyncio.sleep(1)
            if self.arrived != last:
                last, since = self.arrived, time.monotonic()
            elif time.monotonic() - since > (SILENCE if self.arrived else CONNECT_WAIT):
                self._finish(
                    Failed(
                        "no video came from the caller"
                        if not self.arrived
                        else f"the caller sent no video for {SILENCE} s"
                    )
                )

    async def next_out(self) -> tuple[Any, float]:
        """(the next frame out, with the faces drawn or blurred, when its frame came): the newest frame
        received, or with a privacy filter one held back until a detection covers it."""
        while True:
            while self.newest is None:
                self.received.clear()
                await self.received.wait()
            (frame, received_at), self.newest = self.newest, None
            out = self._frame(frame, received_at)
            if out is not None:
                return out

    def _frame(self, frame: Any, received_at: float) -> tuple[Any, float] | None:
        """The frame (av.VideoFrame) into the frame ring (for the detection workers); what goes out now,
        if anything: (av.VideoFrame, when its frame came)."""
        image = frame.to_ndarray(format="bgr24")
        height, width = image.shape[:2]
        ring, resized = self.ring, False
        if ring is None or ring.shape[:2] != (height, width):
            ring, resized = self._new_ring(width, height), True
        self.seq += 1
        ring.put(self.seq, image, received_at)
        cut, self.previous = is_cut(image, None if resized else self.previous)
        self.conn.send(FrameRead(self.seq, cut or resized, None))
        out = self.shown.next(self.seq, image, received_at, cut or resized)
        if out is None:
            return None
        out_seq, out_image, out_received_at, faces = out
        self.outputs = [t for t in self.outputs if t > received_at - 1] + [received_at]
        filtered = self.backdrop.apply(out_image)
        image = picture(filtered, faces, len(self.outputs), None if filtered is out_image else filtered)
        video = av.VideoFrame.from_ndarray(image, format="bgr24")
        video.pts, video.time_base = frame.pts, frame.time_base
        if self.broadcast is not None:
            self.broadcast.put(video, image, out_seq, out_received_at)
        return video, out_received_at

    def _new_ring(self, width: int, height: int) -> FrameRing:
        """A frame ring for frames of this size (the first, or the browser changed the resolution)."""
        if self.ring is not None:
            self.ring.close(unlink=True)  # workers that still map it keep their mapping until told to forget it
        name = f"{self.names['frames']}-{self.rings}"
        self.rings += 1
        self.ring = FrameRing(name, (height, width), create=True)
        self.shown.waiting.clear()  # frames of the old size are not shown
        self.conn.send(NewRing(width, height, name))
        return self.ring


class Annotated(MediaStreamTrack):
    """The video going back: the newest annotated frame, VP8-encoded, each time the sender is ready for one.

    The sender asks for the next frame as soon as it has sent the last, so the time of that request is
    when the last frame left: its latency (received -> encoded -> sent) is reported to the manager."""

    kind = "video"

    def __init__(self, conn: Connection, next_out: Callable[[], Awaitable[tuple[Any, float]]]) -> None:
        super().__init__()
        self.conn, self.next_out = conn, next_out
        self.taken = False
        self.handed: float | None = None  # received time of the frame the sender took last
        self.codec: Any = None  # av's VP8 encoder, for the frames' size
        # The next frame out, drawn while the last one is encoded.
        self.drawing: asyncio.Future[tuple[Any, float]] | None = None

    async def recv(self) -> Any:
        if self.handed is not None:
            self.conn.send(Sent(time.monotonic() - self.handed))
            self.handed = None
        while True:
            frame, received_at = await (self.drawing or self.next_out())
            self.drawing = asyncio.ensure_future(self.next_out())
            packets = await asyncio.get_running_loop().run_in_executor(None, self._encode, frame)
            if packets:
                self.handed = received_at
                return packets[0]
            # libvpx dropped the frame (its rate control): the next one

    def stop(self) -> None:
        if self.drawing is not None:
            self.drawing.cancel()
        super().stop()

    def _encode(self, frame: Any) -> list[Any]:
        """The frame in VP8: [av.Packet], or [] when the encoder drops it."""
        if self.codec is None or (self.codec.width, self.codec.height) != (frame.width, frame.height):
            self.codec = av.CodecContext.create("libvpx", "w")
            self.codec.width, self.codec.height, self.codec.pix_fmt = frame.width, frame.height, "yuv420p"
            self.codec.time_base = fractions.Fraction(1, 90000)
            self.codec.bit_rate = int(BITS_PER_PIXEL * 30 * frame.width * frame.height)
            self.codec.gop_size, self.codec.qmin, self.codec.qmax = KEYFRAME_EVERY, 2, 56
            self.codec.options = {**VP8_OPTIONS, "bufsize": str(self.codec.bit_rate)}
            self.codec.thread_count = 1  # libvpx's threads wait for each other spinning: slow on a busy machine
        packets = list(self.codec.encode(frame.reformat(format="yuv420p")))
        for packet in packets:
            packet.pts, packet.time_base = frame.pts, frame.time_base
        return packets
