"""The store's HTTP edge: parse, call the FaceStore, answer JSON."""

import math

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import BadRequest

from ..exceptions import UnknownPhoto
from ..store import UNKNOWN_ORDERS, FaceStore, parse_origin

bp = Blueprint("store", __name__)
FACES_PAGE_MAX = 1000  # faces in one page of GET /faces


def store() -> FaceStore:
    return current_app.extensions["face_store"]


@bp.get("/health")
def health() -> dict:
    return {"status": "ready", "faces": len(store())}


@bp.post("/faces")
def add_faces() -> dict:
    """The detect service's write: one photo's faces, stored in one transaction."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("faces"), list):
        raise BadRequest('expected JSON {"photo_sha256": "...", "faces": [{"descriptor": [...], "box": {...}}]}')
    photo = str(body.get("photo_sha256", ""))
    # JSON may carry lone surrogates ("\ud800"), which SQLite cannot store as UTF-8, and NUL, which PostgreSQL cannot.
    if not photo.isascii() or "\x00" in photo:
        raise BadRequest("photo_sha256 is the photo's SHA-256 in hex")
    faces = store().add_faces(photo, body["faces"], parse_max_distance(), parse_limit(), parse_origin(body))
    return {"faces": faces}


@bp.get("/faces")
def list_faces() -> dict:
    """Every face, a page at a time in ID order: `after` the last ID of the page before; with
    person=none, the faces in no person, newest or best first (order=newest or quality)."""
    after = request.args.get("after", "")
    if not after.isascii() or "\x00" in after:
        raise BadRequest("after is a face ID, or the next value of the page before")
    raw = request.args.get("limit", str(FACES_PAGE_MAX))
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= FACES_PAGE_MAX):
        raise BadRequest(f"limit is a whole number from 1 to {FACES_PAGE_MAX}, not {raw!r}")
    person, order = request.args.get("person"), request.args.get("order", "newest")
    if person is None:
        faces, next_after = store().page(after, int(raw))
    elif person != "none" or order not in UNKNOWN_ORDERS:
        raise BadRequest(f"person is none, order {' or '.join(UNKNOWN_ORDERS)}")
    else:
        faces, next_after = store().unknown_page(order, after, int(raw))
    return {"faces": faces, "next": next_after}


@bp.get("/photos/<sha256>")
def photo(sha256: str) -> dict:
    """Every face of one photo, with its person: the page draws them on the photo."""
    if not sha256.isascii() or "\x00" in sha256:  # no engine holds such a photo (see add_faces)
        raise UnknownPhoto(sha256)
    return {"sha256": sha256, "faces": store().photo_faces(sha256)}


@bp.get("/photos")
def photos() -> dict:
    """The photos, or a video's frames, stored from one file: how facerec ingest knows what to skip."""
    sha = request.args.get("source_sha256")
    if not sha:
        raise BadRequest("the source_sha256 query parameter is required")
    return {"photos": store().photos(sha)}


@bp.get("/faces/<face_id>")
def get_face(face_id: str) -> dict:
    return store().get(face_id)


@bp.get("/faces/<face_id>/thumbnail.jpg")
def thumbnail(face_id: str) -> Response:
    """The face's thumbnail. A face ID names one descriptor, whose thumbnail never changes: the ID is
    the ETag, and a browser that has it asks again only after a day."""
    response = Response(store().thumbnail(face_id), mimetype="image/jpeg")
    response.set_etag(face_id)
    response.cache_control.private = True  # a picture of a person: no shared cache keeps it
    response.cache_control.max_age = 24 * 3600
    response.make_conditional(request)  # in place: 304 when the browser's ETag matches
    return response


@bp.get("/faces/<face_id>/similar")
def similar(face_id: str) -> dict:
    return {"id": face_id, "faces": store().similar(face_id, parse_max_distance(), parse_limit())}


@bp.delete("/faces/<face_id>")
def delete_face(face_id: str) -> dict:
    store().delete(face_id)
    return {"success": True, "id": face_id}


# jAlbum's routes (its LocalFaceRecService): PUT search, DELETE delete, token in the query string.
@bp.put("/api/search")
def jalbum_search() -> dict:
    faces = store().similar(parse_facetoken(), parse_max_distance("max-distance"), parse_limit())
    matches = [{"token_id": f["id"], "distance": f["distance"]} for f in faces]
    return {"success": True, "count": len(matches), "faces": matches}


@bp.delete("/api/delete")
def jalbum_delete() -> dict:
    store().delete(parse_facetoken())
    return {"success": True}


def parse_facetoken() -> str:
    token = request.args.get("facetoken")
    if not token:
        raise BadRequest("the facetoken query parameter is required")
    return token


def parse_max_distance(name: str = "max_distance") -> float:
    raw = request.args.get(name)
    if raw is None:
        return current_app.config["MAX_DISTANCE"]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 4:  # dlib descriptors are about 1.4 long: no two lie 4 apart
        raise BadRequest(f"{name} must be a number from 0 to 4, not {raw!r}")
    return value


def parse_limit() -> int:
    most = current_app.config["SIMILAR_LIMIT"]
    raw = request.args.get("limit", most)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise BadRequest(f"limit must be a whole number from 1 to {most}, not {raw!r}")
    return value
