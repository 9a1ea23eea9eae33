"""The HTTP edge of background filters: the pictures (PUT, GET, DELETE /backgrounds/<name>) and the
"background_filter" and "background" of a stream's body (POST /streams, POST /webrtc/offer, PATCH)."""

from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import BadRequest

from .backdrop import FILTERS
from .backgrounds import Backgrounds

bp = Blueprint("backgrounds", __name__)


def backgrounds() -> Backgrounds:
    return current_app.extensions["backgrounds"]


@bp.put("/backgrounds/<name>")
def put_background(name: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A picture (JPEG, PNG, WebP, ... as the detect service reads photos) stored as background `name`."""
    request.max_content_length = current_app.config["STREAM_BACKGROUND_MAX_BYTES"]  # the rest stays at 64 KiB
    existed = name in backgrounds().names()
    saved = backgrounds().save(name, request.get_data(cache=False))
    return saved, 200 if existed else 201, {"Location": f"/backgrounds/{name}"}


@bp.get("/backgrounds")
def list_backgrounds() -> dict[str, list[str]]:
    return {"backgrounds": backgrounds().names()}


@bp.delete("/backgrounds/<name>")
def delete_background(name: str) -> dict[str, Any]:
    backgrounds().delete(name)
    return {"success": True, "name": name}


def parse_backdrop(
    body: Any, kind: str | None = None, background: str | None = None
) -> tuple[str | None, str | None, tuple | None] | None:
    """(background filter, background, what the stream's process gets) of a request body (a dict),
    starting from the stream's own (`kind`, `background`) for a PATCH; None when it names neither."""
    if "background_filter" not in body and "background" not in body:
        return None
    kind, background = body.get("background_filter", kind), body.get("background", background)
    if kind not in FILTERS:
        raise BadRequest('background_filter is null, "background-blur", "background-replace" or "hologram"')
    if kind == "background-replace" and background is None:
        raise BadRequest('"background-replace" needs a "background": "#rrggbb" or a picture PUT to /backgrounds')
    return kind, background, backgrounds().resolve(background)
