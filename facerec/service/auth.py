"""Optional API keys, the same for both services: header ``X-API-Key`` on every route but the open ones
(the DeepStack routes also take the form field ``api_key``).

Keys come from ``API_KEYS`` (a comma-separated string or a JSON list) and ``API_KEY_FILE`` (one key per
line). With neither set, every route is open, as before. Only the keys' SHA-256 digests are kept: the
plain keys are dropped from the app's config once hashed, so a dump of it shows none.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import Unauthorized

HEADER = "X-API-Key"
# /health is what load balancers and compose's health checks poll; the spec describes, it reveals nothing.
# The store's people page (/ and its files under /web/) holds no data: it asks for a key and sends it;
# so does the stream service's watch page (/watch/<id>). POST /session (session.py) checks the key it is
# given itself.
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/", "/session"})
OPEN_PREFIXES = ("/web/", "/watch/")
# The DeepStack face API's clients send the key as the multipart form field `api_key` (docs/home.md).
FORM_KEY_PREFIX = "/v1/vision/"
FORM_KEY_FIELD = "api_key"
# The key as a cookie (session.py), accepted by the services that register its blueprint.
COOKIE = "facerec_key"
DIGESTS = "api_key_digests"  # app.extensions[DIGESTS]: what session.py checks a posted key against


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def require_api_key(app: Flask) -> None:
    """When keys are configured, answer 401 to every request to a closed path without a right key."""
    digests = key_digests(app.config)
    app.config["API_KEYS"] = None  # only the digests stay in memory
    app.extensions[DIGESTS] = digests
    if not digests:
        return

    @app.before_request
    def check_api_key():
        if is_open(request.path):
            return
        key, source = request.headers.get(HEADER), f"the {HEADER} header"
        if key is None and request.path.startswith(FORM_KEY_PREFIX):
            key, source = request.form.get(FORM_KEY_FIELD), f"the form field {FORM_KEY_FIELD}"
        if key is None and "session" in app.blueprints:
            key, source = request.cookies.get(COOKIE), "the page's key cookie"
        if key is None:
            raise Unauthorized(f"this service requires an API key in the {HEADER} header{other_places(app)}")
        if not key_matches(key, digests):
            raise Unauthorized(f"{source} does not hold a valid API key")


def other_places(app: Flask) -> str:
    """Where else this request could have carried its key, for the 401's message."""
    if request.path.startswith(FORM_KEY_PREFIX):
        return f" or the form field {FORM_KEY_FIELD}"
    return " (the live page asks for it once)" if "session" in app.blueprints else ""


def key_digests(config: Mapping[str, Any]) -> list[bytes]:
    """The SHA-256 digests of every configured key; empty when keys are off."""
    keys = parse_keys(config.get("API_KEYS"))
    if config.get("API_KEY_FILE"):
        keys += read_key_file(config["API_KEY_FILE"])
    return [digest(k) for k in keys]


def parse_keys(value: object) -> list[str]:
    """API_KEYS as a list of keys. FACEREC_* values are read as JSON, so a list arrives as a list and
    anything else that is not JSON as a string; a key that JSON turns into a number or boolean would
    lose its spelling, so it is refused rather than guessed at."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ValueError('API_KEYS must be a comma-separated string or a JSON list of strings, e.g. ["key1", "key2"]')
    return [k.strip() for k in value if k.strip()]


def read_key_file(path: str) -> list[str]:
    """One key per line. A configured file that holds no key is an error, not an open service."""
    with open(path, encoding="utf-8") as f:
        keys = [line.strip() for line in f if line.strip()]
    if not keys:
        raise ValueError(f"API_KEY_FILE {path} holds no key")
    return keys


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_matches(key: str, digests: Iterable[bytes]) -> bool:
    # Compare with every digest, without stopping at a match: the time taken says nothing about which.
    presented = digest(key)
    matched = False
    for d in digests:
        matched |= hmac.compare_digest(presented, d)
    return matched
