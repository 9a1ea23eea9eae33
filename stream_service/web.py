"""The live page: the streams, each playing with its faces named, and who came and went.

No build step: the files under web/ are what the browser gets. The page calls this service's API on its
own origin: the video is an <img> on the MJPEG route, the events an EventSource.
"""

import os

from flask import Blueprint, Response, send_from_directory

WEB_DIR = os.path.join(os.path.dirname(__file__), "web")

bp = Blueprint("web", __name__)


@bp.get("/")
def page() -> Response:
    return send_from_directory(WEB_DIR, "index.html")


@bp.get("/web/<name>")
def asset(name: str) -> Response:
    """The page's script and style sheet (a 404 in the usual error shape for anything else)."""
    return send_from_directory(os.path.join(WEB_DIR, "static"), name)
