"""The one error shape of both services: every error, 500s included, is JSON like

    {"success": false, "status": 404, "error": "Not Found", "message": "no face with id ..."}

``success`` is there because jAlbum reads it on every response.
"""

from collections.abc import Mapping

from flask import Flask, json
from werkzeug.exceptions import HTTPException


def register_error_handlers(app: Flask, statuses: Mapping[type[Exception], int]) -> None:
    """Render every HTTP error as JSON; `statuses` maps the core's exception classes to HTTP codes."""

    @app.errorhandler(HTTPException)
    def render(e):
        response = e.get_response()  # keeps headers such as Allow and Retry-After
        response.data = json.dumps({"success": False, "status": e.code, "error": e.name, "message": e.description})
        response.content_type = "application/json"
        return response

    for exc_class, status in statuses.items():
        app.register_error_handler(exc_class, _as_http(status, render))


def _as_http(status, render):
    def handle(e):
        error = HTTPException(description=str(e))
        error.code = status
        return render(error)

    return handle
