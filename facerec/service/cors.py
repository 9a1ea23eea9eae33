"""Cross-origin requests (CORS): which web pages may call a service from a browser.

The store serves the people page; the page posts photos to the detect service, another origin. A
browser lets it read the answers only when the detect service names the page's origin, and asks first
(an OPTIONS "preflight") before a request with an X-API-Key header.
"""

from flask import Flask, request

from .auth import HEADER, parse_keys

# How long a browser may reuse a preflight's answer, in seconds: 10 minutes, so that a change of
# CORS_ORIGINS reaches open pages soon, while a page uploading photo after photo asks once.
PREFLIGHT_MAX_AGE = 600


def allow_origins(app: Flask) -> None:
    """Answer CORS preflights and mark the answers to CORS_ORIGINS. Register it before the API key
    check: a browser sends a preflight without the key."""
    origins = frozenset(parse_origins(app.config["CORS_ORIGINS"]))

    @app.before_request
    def answer_preflight():
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return "", 204

    @app.after_request
    def mark_allowed(response):
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = f"{HEADER}, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT"
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response


def parse_origins(value: object) -> list[str]:
    """CORS_ORIGINS as a list: a comma-separated string or a JSON list, as API_KEYS is read."""
    try:
        return parse_keys(value)
    except ValueError:
        raise ValueError(
            'CORS_ORIGINS must be a comma-separated string or a JSON list of origins, e.g. ["http://host:5001"]'
        ) from None
