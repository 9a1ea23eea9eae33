"""The people page: one HTML page, its script and its style sheet, served by the store at / and /web/.

No build step: the files under web/ are what the browser gets. The page calls the store's API on its
own origin and posts photos to the detect service at DETECT_URL (which must allow this origin: CORS_ORIGINS).
"""

import os

from flask import Blueprint, Response, current_app, render_template, send_from_directory

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "web")  # store_service/web/
STATIC_DIR = os.path.join(WEB_DIR, "static")

bp = Blueprint("web", __name__, template_folder=WEB_DIR)


@bp.get("/")
def page() -> str:
    return render_template("index.html", detect_url=current_app.config["DETECT_URL"])


@bp.get("/web/<name>")
def asset(name: str) -> Response:
    """The page's script and style sheet (a 404 in the usual error shape for anything else)."""
    return send_from_directory(STATIC_DIR, name)
