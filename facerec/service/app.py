"""`make_app()`: what every service's Flask app is before it builds its own parts. The Flask tutorial's
factory, shared: defaults, FACEREC_* overrides and the test's dict (config.py), the request ceiling, JSON
in the order it was built, optional CORS and API keys, the one error shape and the OpenAPI description."""

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from .auth import require_api_key
from .config import load_config
from .cors import allow_origins
from .errors import register_error_handlers
from .openapi import serve_openapi


def make_app(
    import_name: str,
    test_config: Mapping[str, Any] | None,
    max_request_bytes: str | int,
    errors: Mapping[type[Exception], int],
    cors: bool = False,
) -> Flask:
    """A service's app, configured, before its models, stores and blueprints. `max_request_bytes` is a
    number, or the name of the setting that holds it; `errors` maps the core's exceptions to statuses;
    `cors` lets the pages of CORS_ORIGINS call it from a browser."""
    app = Flask(import_name, static_folder=None)  # an API (and its own pages): no /static/<filename> route
    load_config(app, test_config)
    ceiling = app.config[max_request_bytes] if isinstance(max_request_bytes, str) else max_request_bytes
    app.config["MAX_CONTENT_LENGTH"] = ceiling
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    if cors:
        allow_origins(app)  # before the key check: a browser's CORS preflight carries no key
    require_api_key(app)  # a bad key setting fails before any model or database is opened
    register_error_handlers(app, errors)
    serve_openapi(app)
    return app
