"""The stream service's HTTP edge: start, list and stop streams; the annotated video; the events."""

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, Conflict, ServiceUnavailable

from .background_views import parse_backdrop
from .manager import Manager
from .sources import allowed_source
from .stream import FILTERS

bp = Blueprint("streams", __name__)

BOUNDARY = "frame"
MAX_SOURCE_CHARS = 2048
MAX_NAME_CHARS = 200


def streams() -> Manager:
    return current_app.extensions["streams"]


@bp.get("/health")
def health() -> ResponseReturnValue:
    if streams().closed.is_set():
        raise ServiceUnavailable("the service is stopping")
    return {"status": "ready", "streams": len(streams().current()), **streams().health()}


@bp.post("/streams")
def start_stream() -> ResponseReturnValue:
    body = request.get_json(silent=True)
    source, name, loop, filter, store = parse_stream(body)
    stream = streams().start(source, name, loop, filter, store, parse_backdrop(body), parse_broadcast(body))
    return streams().summary(stream, details=True), 201, {"Location": f"/streams/{stream.id}"}


@bp.get("/streams")
def list_streams() -> ResponseReturnValue:
    return {"streams": [streams().summary(s) for s in streams().current()]}


@bp.get("/streams/<stream_id>")
def get_stream(stream_id: str) -> ResponseReturnValue:
    return streams().summary(streams().get(stream_id), details=True)


@bp.delete("/streams/<stream_id>")
def stop_stream(stream_id: str) -> ResponseReturnValue:
    streams().stop(stream_id)
    return {"success": True, "id": stream_id}


@bp.patch("/streams/<stream_id>")
def change_stream(stream_id: str) -> ResponseReturnValue:
    """Switch a stream's (or a call's) privacy filter and/or background filter while it plays."""
    body = request.get_json(silent=True)
    changes = {"filter", "background_filter", "background"}
    if not isinstance(body, dict) or not body or not set(body) <= changes or body.get("filter") not in FILTERS:
        raise BadRequest(
            'expected JSON {"filter": null | "blur-unknown" | "blur-all", "background_filter": null |'
            ' "background-blur" | "background-replace" | "hologram", "background": "#rrggbb" | "<name>"},'
            " any of the three"
        )
    stream = streams().get(stream_id)
    backdrop = parse_backdrop(body, stream.background_filter, stream.background)
    changed = streams().change(stream_id, body["filter"] if "filter" in body else ..., backdrop)
    return streams().summary(changed, details=True)


@bp.post("/webrtc/offer")
def webrtc_offer() -> ResponseReturnValue:
    """A browser's camera as a call: its WebRTC offer in, the SDP answer out. The annotated (or
    filtered) video goes back on the same peer connection; the call is listed with the streams."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type", "offer") != "offer":
        raise BadRequest('expected JSON {"sdp": "<the offer>", "type": "offer", "name": "...", "filter": null}')
    sdp, name, filter = body["sdp"], body.get("name", "camera"), body.get("filter")
    if not sdp.startswith("v=0") or "\nm=video " not in sdp or "\0" in sdp:
        raise BadRequest("sdp is a WebRTC offer (SDP) that sends video")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name is a string of at most {MAX_NAME_CHARS} characters")
    if filter not in FILTERS:
        raise BadRequest('filter is null, "blur-unknown" or "blur-all"')
    call = streams().call(sdp, name, filter, backdrop=parse_backdrop(body), broadcast=parse_broadcast(body))
    return {"sdp": call.answer, "type": "answer", "id": call.id}, 201, {"Location": f"/streams/{call.id}"}


@bp.get("/streams/<stream_id>/mjpeg")
def mjpeg(stream_id: str) -> Response:
    """The annotated video as Motion JPEG: each part is the newest frame when the viewer is ready for
    one (a slow viewer skips frames, it never makes others wait). Each part says when its frame was read
    (X-Frame-Read, seconds of the server's monotonic clock) and its number (X-Frame-Seq)."""
    manager, stream = streams(), streams().get(stream_id)
    if stream.is_call and not stream.broadcast:
        raise Conflict('a call\'s video goes back to its caller only, unless it is started with "broadcast": true')

    def parts() -> Iterator[bytes]:
        seq = -1
        manager.watch(stream, 1)
        try:
            while (frame := manager.next_jpeg(stream, seq)) is not None:
                seq, jpeg, read_at = frame
                yield (
                    (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame-Seq: {seq}\r\nX-Frame-Read: {read_at:.6f}\r\n\r\n"
                    ).encode()
                    + jpeg
                    + b"\r\n"
                )
                stream.latencies.append(time.monotonic() - read_at)  # the part has left: it is written
        finally:
            manager.watch(stream, -1)

    return Response(
        parts(),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/streams/<stream_id>/events")
def events(stream_id: str) -> Response:
    """Server-sent events: who appeared and left, and the stream's state, from Last-Event-ID on."""
    manager, stream = streams(), streams().get(stream_id)
    try:
        after = int(request.headers.get("Last-Event-ID", request.args.get("after", "0")))
    except ValueError:
        raise BadRequest("Last-Event-ID (or after) is an event id, a whole number") from None

    def messages() -> Iterator[str]:
        last = after
        yield "retry: 2000\n\n"
        while (batch := manager.next_events(stream, last)) is not None:
            if not batch:
                yield ": still here\n\n"  # keeps proxies from closing a quiet connection
            for event in batch:
                yield f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                last = event["id"]

    return Response(
        messages(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def parse_stream(body: Any) -> tuple[str, str, bool, str | None, bool]:
    """(source, name, loop, filter, store) of a POST /streams body, or 400."""
    if not isinstance(body, dict):
        raise BadRequest(
            'expected JSON {"source": "video.mp4 | /dev/video0 | rtsp://...", "name": "...", "loop": false,'
            ' "filter": null, "store": false, "broadcast": false}'
        )
    source, name = body.get("source"), body.get("name", body.get("source"))
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE_CHARS or "\0" in source:
        raise BadRequest(
            f"source is a file path, a camera device (/dev/videoN) or a URL, at most {MAX_SOURCE_CHARS} characters"
        )
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name is a string of at most {MAX_NAME_CHARS} characters")
    loop, filter, store = body.get("loop", False), body.get("filter"), body.get("store", False)
    if not isinstance(loop, bool) or not isinstance(store, bool):
        raise BadRequest("loop and store are true or false")
    if filter not in FILTERS:
        raise BadRequest('filter is null, "blur-unknown" or "blur-all"')
    return allowed_source(source, current_app.config["STREAM_MEDIA_DIR"]), name, loop, filter, store


def parse_broadcast(body: Any) -> bool:
    """Whether a stream or call (its body, a dict) is started with "broadcast": true, or 400."""
    broadcast = body.get("broadcast", False)
    if not isinstance(broadcast, bool):
        raise BadRequest("broadcast is true or false")
    return broadcast
