"""Watching a broadcast call over WebRTC: WHEP (the WebRTC-HTTP Egress Protocol, as browsers' players
and OBS speak it), and the watch page.

POST /streams/<id>/whep with the viewer's SDP offer (application/sdp) answers 201 with the SDP answer and
a Location, the viewer's own resource, to DELETE when done (the connection closing ends it too).
"""

from typing import Any

from flask import Blueprint, Response, current_app, request, send_from_directory
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from .web import WEB_DIR

bp = Blueprint("whep", __name__)

SDP = "application/sdp"


def streams() -> Any:
    return current_app.extensions["streams"]


@bp.post("/streams/<stream_id>/whep")
def whep_offer(stream_id: str) -> Response:
    if request.mimetype != SDP:
        raise UnsupportedMediaType(f"a WHEP offer is sent as {SDP}")
    offer = request.get_data(as_text=True)
    if not offer.startswith("v=0") or "\nm=video " not in offer or "\0" in offer:
        raise BadRequest("the body is an SDP offer that receives video")
    viewer, answer = streams().whep(stream_id, offer)
    return Response(answer, 201, {"Location": f"/streams/{stream_id}/whep/{viewer}"}, mimetype=SDP)


@bp.delete("/streams/<stream_id>/whep/<viewer>")
def whep_leave(stream_id: str, viewer: str) -> dict[str, Any]:
    streams().whep_close(stream_id, viewer)
    return {"success": True, "viewer": viewer}


@bp.get("/watch/<stream_id>")
def watch_page(stream_id: str) -> Response:
    """The page that watches one broadcast (the id is read by its script from the address)."""
    return send_from_directory(WEB_DIR, "watch.html")
