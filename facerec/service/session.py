"""The key as a cookie, for pages whose requests cannot carry a header: an <img> on a Motion JPEG route
and an EventSource send no X-API-Key. The page asks for the key once and posts it here; the answer sets
it as an HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it) cookie, Secure
over HTTPS, that every later request of the page's origin carries. The key travels in a body and a
cookie only: never in a URL, so never in an access log. auth.py accepts the cookie on the services that
register this blueprint (the stream service's live and call page).
"""

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import BadRequest, Forbidden

from .auth import COOKIE, DIGESTS, key_matches

bp = Blueprint("session", __name__)

PATH = "/session"
MAX_AGE = 30 * 24 * 3600  # seconds: a month, then the page asks again
KEY_MAX = 1024  # characters: longer than any key a person types or pastes


@bp.post(PATH)
def open_session() -> Response:
    """{"key": "..."}: a valid key is set as the cookie (204); a wrong one is a 403 and sets nothing.
    Without keys configured there is nothing to remember: 204, no cookie."""
    body = request.get_json(silent=True)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX:
        raise BadRequest(f'expected JSON {{"key": "one of the API keys"}}, at most {KEY_MAX} characters')
    response = current_app.response_class(status=204)
    digests = current_app.extensions[DIGESTS]
    if not digests:
        return response
    if not key_matches(key, digests):
        raise Forbidden("that is not one of this service's API keys")
    response.set_cookie(COOKIE, key, max_age=MAX_AGE, httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.delete(PATH)
def close_session() -> Response:
    """The cookie is cleared: the page asks for the key again."""
    response = current_app.response_class(status=204)
    response.delete_cookie(COOKIE, httponly=True, samesite="Strict", secure=request.is_secure)
    return response
