"""Publishing a broadcast call to a media server over WHIP (the WebRTC-HTTP Ingestion Protocol, RFC 9725),
so that a CDN or a video-call service carries it further.

Runs in the call's process (call.py), on its event loop. The publication is one more peer connection,
made here as the offerer: a send-only video transceiver, H.264 only, whose track passes on the
broadcast's packets (broadcast.py), the ones its WHEP viewers get: nothing is encoded again. The offer
(with every ICE candidate: aiortc gathers them all before the offer is made, so nothing trickles) is
POSTed to the endpoint as application/sdp, with `Authorization: Bearer <token>` when given; a 201
brings the answer and a `Location`, the session's resource, which is DELETEd when the publication stops,
fails, or the call ends.
"""

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urljoin

import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from .broadcast import Broadcast, Relayed

log = logging.getLogger(__name__)

SDP = "application/sdp"
MAX_ANSWER_BYTES = 64 * 1024  # an SDP answer is a few kB: more is not read (nothing fills memory)
# Seconds the endpoint has to answer a DELETE: the call's process has processes.STOP_WAIT (3 s) to stop.
DELETE_WAIT = 2


class PublishFailed(Exception):
    """The endpoint cannot be reached, refused the offer, or answered what is not a WHIP answer."""


class Publication:
    """One WHIP publication of a broadcast. `report(state, error)` tells the manager each change:
    "connecting" (the endpoint answered), "publishing" (the media flows), "failed" (with why)."""

    def __init__(
        self, broadcast: Broadcast, url: str, token: str | None, wait: float, report: Callable[[str, str | None], None]
    ) -> None:
        self.broadcast, self.url, self.token, self.wait, self.report = broadcast, url, token, wait, report
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = Relayed(broadcast)
        self.resource: str | None = None  # the session's URL (the answer's Location)
        self.stopped = False

    async def start(self) -> None:
        """Offer, and send the broadcast once answered; a failure is reported (never raised)."""
        pc = self.pc
        transceiver = pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
        )
        pc.on("connectionstatechange", self._state_changed)
        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.wait_for(asyncio.to_thread(self._post, pc.localDescription.sdp), self.wait)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except TimeoutError:
            await self._fail(f"the WHIP endpoint did not answer within {self.wait:g} s")
            return
        except PublishFailed as e:
            await self._fail(str(e))
            return
        except Exception as e:  # aiortc's SDP parser says what it cannot read in several exception types
            log.info("whip: the answer refused: %r", e)
            await self._fail("the WHIP endpoint's answer is not an SDP answer that can be read")
            return
        if self.stopped:  # stopped while the endpoint was answering
            await self.stop()
            return
        self.broadcast.published.append(self.track)
        self.broadcast.keyframe = True  # the endpoint starts on a keyframe
        self.report("connecting", None)

    async def stop(self) -> None:
        """End the publication: its media stops and its resource is DELETEd (once)."""
        self.stopped = True
        if self.track in self.broadcast.published:
            self.broadcast.published.remove(self.track)
        self.track.stop()
        resource, self.resource = self.resource, None
        await asyncio.gather(self.pc.close(), self._delete(resource))

    async def _delete(self, resource: str | None) -> None:
        """DELETE the session's resource, if there is one (the endpoint frees it at once)."""
        if resource is None:
            return
        try:
            await asyncio.wait_for(
                asyncio.to_thread(requests.delete, resource, headers=self._headers(), timeout=DELETE_WAIT),
                DELETE_WAIT + 0.5,
            )
        except (requests.RequestException, TimeoutError) as e:
            log.info("whip: the DELETE of a publication failed: %r", e)

    async def _fail(self, why: str) -> None:
        if not self.stopped:
            self.report("failed", why)
        await self.stop()

    async def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.stopped:
            self.report("publishing", None)
        elif state in ("failed", "closed") and not self.stopped:
            await self._fail(f"the connection to the media server {'failed' if state == 'failed' else 'closed'}")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _post(self, offer: str) -> str:
        """The endpoint's SDP answer to `offer`; keeps its Location. PublishFailed: no WHIP answer."""
        headers = {"Content-Type": SDP, **self._headers()}
        try:
            with requests.post(self.url, data=offer, headers=headers, timeout=self.wait, stream=True) as response:
                body = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
                if response.status_code != 201:
                    said = body[:200].decode("utf-8", "replace").strip()
                    raise PublishFailed(
                        f"the WHIP endpoint refused the offer: {response.status_code} {response.reason}"
                        + (f": {said}" if said else "")
                    )
                location = response.headers.get("Location")
                if not location or response.headers.get("Content-Type", "").split(";")[0].strip() != SDP:
                    raise PublishFailed("the WHIP endpoint's 201 lacks its SDP answer or its Location")
                if len(body) > MAX_ANSWER_BYTES:
                    raise PublishFailed(f"the WHIP endpoint's answer is over {MAX_ANSWER_BYTES} bytes")
                self.resource = urljoin(response.url, location)  # a Location may be relative
                return body.decode("utf-8", "replace")
        except requests.Timeout:
            raise TimeoutError from None
        except requests.RequestException as e:
            raise PublishFailed(f"the WHIP endpoint cannot be reached: {type(e).__name__}") from None
