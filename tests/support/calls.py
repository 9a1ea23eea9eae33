"""Calls as a test makes them: an aiortc caller whose camera plays the clip, its video back drained as a
browser would show it, an aiortc WHEP viewer of a broadcast, and polling on an event loop."""

import asyncio

import requests
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpByePacket
from av import VideoFrame

from tests.support.waiting import WAIT


class Camera(VideoStreamTrack):
    """The caller's camera: the clip's frames over and over at 30 fps, as a webcam's never-ending video
    (aiortc's MediaPlayer stops sending when a looped file starts again)."""

    def __init__(self, frames):
        super().__init__()
        self.frames, self.count = frames, 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.frames[self.count % len(self.frames)], format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


class Caller:
    """A caller of the stream service: `pc`, the call's `id` once answered, and `back`, the frames of
    its own video that came back."""

    def __init__(self, frames):
        self.pc = RTCPeerConnection()
        self.pc.addTrack(Camera(frames))
        self.back, self.id = 0, None

        @self.pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._drain(track))

    async def call(self, service, **body):
        """Start the call (POST /webrtc/offer with `body`) and wait for its video to come back."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        response = await asyncio.to_thread(
            requests.post,
            f"{service.url}/webrtc/offer",
            json={"sdp": self.pc.localDescription.sdp, "type": "offer", **body},
            timeout=WAIT,
        )
        assert response.status_code == 201, response.text
        self.id = response.json()["id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.json()["sdp"], type="answer"))
        await until(lambda: self.back > 10, "the caller's video back")
        return self

    async def _drain(self, track):
        try:
            while True:
                await track.recv()
                self.back += 1
        except MediaStreamError:
            pass


class Viewer:
    """A WHEP viewer: its peer connection, the frames it decoded, its resource (to DELETE), and whether
    the sender said goodbye (an RTCP BYE: the server closed the connection, rather than vanished and left
    it to time out)."""

    def __init__(self):
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames, self.last, self.ended = 0, None, asyncio.Event()
        self.resource, self.goodbye = None, False
        # aiortc hands each RTCP packet to the receiver's handler and tells nobody of a BYE: noted here.
        receiver = self.pc.getReceivers()[0]
        handle = receiver._handle_rtcp_packet

        async def noting(packet):
            self.goodbye = self.goodbye or isinstance(packet, RtcpByePacket)
            await handle(packet)

        receiver._handle_rtcp_packet = noting

    async def watch(self, service, stream_id):
        @self.pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._count(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        response = await asyncio.to_thread(
            requests.post,
            f"{service.url}/streams/{stream_id}/whep",
            data=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
            timeout=WAIT,
        )
        assert response.status_code == 201, response.text
        assert response.headers["Content-Type"] == "application/sdp"
        self.resource = response.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))

    async def _count(self, track):
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                self.last = frame
        except MediaStreamError:
            self.ended.set()


async def until(predicate, what, timeout=WAIT):
    """Poll `predicate` on the running event loop until it holds; AssertionError naming `what` after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)
