"""The HTTP edge of publishing a broadcast call to a media server over WHIP (whip.py):
POST /streams/<id>/publish {"url": "https://...", "token": "..."} and DELETE /streams/<id>/publish."""

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest

from .manager import Manager

bp = Blueprint("publish", __name__)

MAX_URL_CHARS = 2048
MAX_TOKEN_CHARS = 4096
# RFC 6750's bearer token (b64token): nothing else can go in an Authorization header as is.
TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Printable ASCII without spaces: what a URL sent as is may hold (no header or request-line injection).
URL_CHARS = re.compile(r"[!-~]+")


def streams() -> Manager:
    return current_app.extensions["streams"]


@bp.post("/streams/<stream_id>/publish")
def publish(stream_id: str) -> ResponseReturnValue:
    """Publish a broadcast call to a WHIP endpoint: 201 with the call, its publication answered."""
    url, token = parse_publish(request.get_json(silent=True))
    stream = streams().publish(stream_id, url, token)
    return streams().summary(stream, details=True), 201, {"Location": f"/streams/{stream_id}/publish"}


@bp.delete("/streams/<stream_id>/publish")
def unpublish(stream_id: str) -> dict[str, Any]:
    streams().unpublish(stream_id)
    return {"success": True, "id": stream_id}


def parse_publish(body: Any) -> tuple[str, str | None]:
    """(url, token) of a POST /streams/<id>/publish body, or 400."""
    if not isinstance(body, dict) or not set(body) <= {"url", "token"}:
        raise BadRequest('expected JSON {"url": "https://<the WHIP endpoint>", "token": "<its bearer token>"}')
    url, token = body.get("url"), body.get("token")
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not URL_CHARS.fullmatch(url):
        raise BadRequest(f"url is the WHIP endpoint's http:// or https:// URL, at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number raises
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise BadRequest(f"url is the WHIP endpoint's http:// or https:// URL with its host, not {url[:100]}")
    if parts.username is not None or parts.password is not None:
        raise BadRequest("url holds no user or password (it is shown with the stream): give the token instead")
    if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not TOKEN.fullmatch(token)):
        raise BadRequest(f"token is a bearer token (RFC 6750's characters), at most {MAX_TOKEN_CHARS} characters")
    return url, token
