"""One call, many viewers: the call's annotated video encoded once, in H.264, and the same packets sent
to every viewer over WebRTC (WHEP), and, while someone watches it so, as Motion JPEG.

Runs in the call's process (call.py), on its event loop. Each frame that goes back to the caller is
also handed here; it is encoded (in a thread: libx264 lets go of the GIL) once, whatever the number of
viewers, and each viewer's track passes the packet to its own RTP sender, which only splits it into
RTP packets (aiortc packs an av.Packet a track returns instead of encoding a frame). An encoder per
viewer is what does not scale: in a trial here, VP8 encoders per viewer did not carry three viewers.

A viewer must start on a keyframe, and one that fell behind must skip to one: a newcomer, or a viewer
whose queue overflowed, asks for a keyframe and gets nothing until it comes. Keyframes also come every
KEYFRAME_EVERY frames, for the packets a viewer lost (aiortc passes a viewer's picture loss indications
to an encoder only when it encodes, never for packets).
"""

import asyncio
import fractions
import itertools
import logging
from collections.abc import Callable
from typing import Any

import av
import cv2
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .messages import AddViewer, DropViewer, JpegOut, ViewerAnswer, ViewerLeft
from .shared_frames import JpegSlots

log = logging.getLogger(__name__)

# Bits a pixel a frame, times 30 fps: ~1 Mbit/s at 640x360, as the caller's VP8 (call.py).
BITS_PER_PIXEL = 0.15
KEYFRAME_EVERY = 60  # frames: a viewer's picture damaged by a lost packet is whole again within two seconds
# A viewer holds at most this many packets not yet sent (a third of a second): one that falls further
# behind (a slow link) drops them and waits for a keyframe, so it never delays the others or fills memory.
QUEUE = 10
H264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "level": "31"}
# The MJPEG slots hold a JPEG of up to this many bytes: a 1080p frame's raw size, far more than its
# JPEG; a bigger JPEG (a 4K camera) is not shown as MJPEG.
JPEG_SLOT_BYTES = 1920 * 1080 * 3


class Broadcast:
    """The viewers of one call, or of a broadcast stream (relay.py). `send` says things to the manager
    (`ViewerAnswer`, `ViewerLeft`, `JpegOut`); `jpegs` (JpegSlots, or None) is where the MJPEG frames go
    while `watched`."""

    def __init__(self, send: Callable[[Any], None], jpegs: JpegSlots, jpeg_quality: int) -> None:
        self.send, self.jpegs = send, jpegs
        self.quality = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self.watched = False
        self.viewers: dict[str, tuple[RTCPeerConnection, Relayed]] = {}
        self.published: list[Relayed] = []  # the tracks of its WHIP publications (whip.py): the same packets
        self.codec: Any = None
        self.keyframe = False  # the next frame encoded is a keyframe
        self.busy = False  # a frame is being encoded: the next ones wait, only the newest
        self.pending: tuple[Any, np.ndarray, int, float] | None = None
        self.frames = itertools.count()

    async def add(self, viewer: str, offer: str) -> str:
        """A viewer's WHEP offer (SDP) answered: returns the answer. ValueError: the offer cannot be."""
        if "H264/90000" not in offer:
            raise ValueError("the viewer does not receive H.264, the one codec a broadcast is sent in")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = Relayed(self)
        self.viewers[viewer] = (pc, track)

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                await self.remove(viewer)

        try:
            # The transceiver exists, H.264 only, before the offer is read: aiortc settles the answer's
            # codecs while it reads the offer (and gives the offer's video to this transceiver).
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
            )
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.remove(viewer, tell=False)
            raise
        self.keyframe = True
        return pc.localDescription.sdp

    async def told(self, message: AddViewer | DropViewer) -> None:
        """The manager's AddViewer (answered with a ViewerAnswer, or why not) or DropViewer."""
        if isinstance(message, DropViewer):
            await self.remove(message.viewer)
            return
        try:
            answer = await self.add(message.viewer, message.offer)
        except Exception as e:  # aiortc's SDP parser says what it cannot read in several exception types
            log.info("broadcast: a viewer's offer refused: %r", e)
            why = str(e) if isinstance(e, ValueError) else "it is not an SDP offer that can be read"
            self.send(ViewerAnswer(message.viewer, None, f"the offer cannot be answered: {why}"))
        else:
            self.send(ViewerAnswer(message.viewer, answer, None))

    async def remove(self, viewer: str, tell: bool = True) -> None:
        """A viewer's connection closed (it left, or the call ends); the manager is told (`tell`)
        unless the viewer was never answered."""
        got = self.viewers.pop(viewer, None)
        if got is None:
            return
        pc, track = got
        track.stop()
        await pc.close()
        if tell:
            self.send(ViewerLeft(viewer))

    def tracks(self) -> list["Relayed"]:
        """Where each packet goes: every WHEP viewer's track and every publication's."""
        return [track for _, track in self.viewers.values()] + self.published

    async def close(self) -> None:
        for viewer in list(self.viewers):
            await self.remove(viewer)

    def put(self, video: Any, image: np.ndarray, seq: int, read_at: float) -> None:
        """A frame going out (the av.VideoFrame, its BGR pixels, its number and read time) for the viewers."""
        if not self.viewers and not self.published and not self.watched:
            return
        if self.busy:
            self.pending = (video, image, seq, read_at)  # encoded next, unless a newer frame comes first
            return
        self.busy = True
        asyncio.ensure_future(self._encode_and_pass(video, image, seq, read_at))

    async def _encode_and_pass(self, video, image, seq, read_at):
        loop = asyncio.get_running_loop()
        try:
            while True:
                keyframe, self.keyframe = self.keyframe, False
                packets, jpeg = await loop.run_in_executor(None, self._encode, video, image, keyframe)
                for packet in packets:
                    for track in self.tracks():
                        track.push(packet)
                if jpeg is not None and self.jpegs is not None and len(jpeg) <= self.jpegs.size:
                    self.jpegs.put(seq, jpeg.reshape(-1), read_at)
                    self.send(JpegOut(seq))
                if self.pending is None:
                    return
                (video, image, seq, read_at), self.pending = self.pending, None
        finally:
            self.busy = False

    def _encode(self, video, image, keyframe):
        """(H.264 packets of the frame, for the viewers, or []; its JPEG while watched, or None)."""
        packets = []
        if self.viewers or self.published:  # not tracks(): in a thread, no iterating what the loop changes
            codec = self._codec(video.width, video.height)
            # A frame of its own: the caller's encoder converts `video` in another thread meanwhile, and
            # two threads converting one av.VideoFrame hang in swscale (seen: the call stopped).
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = next(self.frames), codec.time_base
            keyframe = keyframe or frame.pts % KEYFRAME_EVERY == 0
            frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
            packets = list(codec.encode(frame))
            for packet in packets:
                packet.pts, packet.time_base = video.pts, video.time_base
        jpeg = cv2.imencode(".jpg", image, self.quality)[1] if self.watched else None
        return packets, jpeg

    def _codec(self, width, height):
        if self.codec is None or (self.codec.width, self.codec.height) != (width, height):
            self.codec = av.CodecContext.create("libx264", "w")
            self.codec.width, self.codec.height, self.codec.pix_fmt = width, height, "yuv420p"
            self.codec.time_base = fractions.Fraction(1, 30)
            self.codec.bit_rate = int(BITS_PER_PIXEL * 30 * width * height)
            self.codec.gop_size = KEYFRAME_EVERY
            self.codec.profile = "Baseline"  # constrained baseline: what every WebRTC H.264 decoder takes
            self.codec.options = H264_OPTIONS
            self.codec.thread_count = 1
        return self.codec


class Relayed(MediaStreamTrack):
    """A viewer's video: the broadcast's packets, from a keyframe on."""

    kind = "video"

    def __init__(self, broadcast: Broadcast) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.queue: asyncio.Queue = asyncio.Queue()
        self.synced = False  # a keyframe has been passed since the viewer came (or fell behind)

    def push(self, packet: Any) -> None:
        if not self.synced and not packet.is_keyframe:
            return
        if self.queue.qsize() >= QUEUE:  # fallen behind: drop what waits and start again at a keyframe
            while not self.queue.empty():
                self.queue.get_nowait()
            self.synced = False
            self.broadcast.keyframe = True
            return
        self.synced = True
        self.queue.put_nowait(packet)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self.queue.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        self.queue.put_nowait(None)
        super().stop()
