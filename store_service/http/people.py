"""The HTTP edge of people: parse, call store_service/people/, answer JSON."""

import hashlib
from typing import Any, TypeGuard

from flask import Blueprint, current_app, request
from werkzeug.exceptions import BadRequest

from facerec.service.auth import HEADER

from ..exceptions import UnknownFace, UnknownPerson
from ..people.corrections import Corrections
from ..people.placing import People
from ..store import canonical

bp = Blueprint("people", __name__)
# Who made a correction, for the audit log: this header when the client names its user ...
USER_HEADER = "X-Facerec-User"
# ... else the first 12 hex digits of the API key's SHA-256 (enough to tell keys apart, useless to
# guess a key from), else "anonymous".
KEY_PREFIX = 12
NAME_MAX = 200  # characters in a person's name
IDENTIFY_MAX = 100  # descriptors in one POST /people/identify
NEW_PERSON_FACES = 1000  # faces in one POST /people: more is a re-cluster's work, not a hand's
REGISTER_MAX = 100  # faces in one POST /people/register


def people() -> People:
    return current_app.extensions["face_store"].people


def corrections() -> Corrections:
    return current_app.extensions["face_store"].corrections


@bp.get("/people")
def list_people() -> dict:
    page, limit = parse_page()
    search = request.args.get("q", "")
    if len(search) > NAME_MAX or not is_utf8(search):
        raise BadRequest(f"q is up to {NAME_MAX} characters of a name")
    found, total = people().list_people(page, limit, parse_flag("hidden"), search)
    return {"people": found, "page": page, "total": total}


@bp.post("/people")
def create_person() -> tuple[dict, int]:
    """A new person of the given faces, named: for a face no suggestion fits."""
    body = json_body()
    faces, changes = body.get("faces"), parse_changes({"name": body.get("name")})
    if (
        not isinstance(faces, list)
        or not 1 <= len(faces) <= NEW_PERSON_FACES
        or not all(isinstance(f, str) and is_utf8(f) for f in faces)
        or set(body) - {"name", "faces"}
    ):
        raise BadRequest(f'expected JSON {{"faces": [1 to {NEW_PERSON_FACES} face IDs], "name": "..." or null}}')
    person = corrections().create_person(who(), changes["name"], faces)
    return people().summary(person), 201


@bp.post("/people/identify")
def identify() -> dict:
    """Who each descriptor is, by the rule that places new faces; nothing is stored (the stream service)."""
    descriptors = json_body().get("descriptors")
    if not isinstance(descriptors, list) or not 1 <= len(descriptors) <= IDENTIFY_MAX:
        raise BadRequest(f'expected JSON {{"descriptors": [1 to {IDENTIFY_MAX} descriptors of 128 numbers]}}')
    return {"faces": people().identify([canonical(d) for d in descriptors])}


@bp.post("/people/register")
def register() -> dict:
    """The faces join the person of this name, created if new (the detect service's DeepStack API)."""
    body = json_body()
    name, faces = body.get("name"), body.get("faces")
    if not (isinstance(name, str) and 0 < len(name) <= NAME_MAX and is_utf8(name)):
        raise BadRequest(f"name is a string of 1 to {NAME_MAX} characters")
    if not (isinstance(faces, list) and 1 <= len(faces) <= REGISTER_MAX and all(isinstance(f, str) for f in faces)):
        raise BadRequest(f'expected JSON {{"name": "...", "faces": [1 to {REGISTER_MAX} face IDs]}}')
    person = corrections().register(who(), name, list(dict.fromkeys(faces)))
    return people().summary(person)


@bp.get("/people/<person_id>")
def get_person(person_id: str) -> dict:
    return people().get_person(parse_person(person_id))


@bp.patch("/people/<person_id>")
def update_person(person_id: str) -> dict:
    person, changes = parse_person(person_id), parse_changes(json_body())
    corrections().update_person(who(), person, changes)
    return people().summary(person)


@bp.post("/people/<person_id>/merge")
def merge(person_id: str) -> dict:
    person, others = parse_person(person_id), json_body().get("people")
    if not isinstance(others, list) or not all(is_id(p) for p in others):
        raise BadRequest('expected JSON {"people": [person IDs to merge into this one]}')
    corrections().merge(who(), person, others)
    return people().summary(person)


@bp.post("/people/<person_id>/faces/<face_id>/remove")
def remove_face(person_id: str, face_id: str) -> dict:
    person = parse_person(person_id)
    corrections().remove_face(who(), person, parse_face(face_id))
    return people().summary(person)


@bp.put("/faces/<face_id>/person")
def assign_face(face_id: str) -> dict:
    body = json_body()
    if "person" not in body or not (body["person"] is None or is_id(body["person"])):
        raise BadRequest('expected JSON {"person": a person ID, or null for none}')
    corrections().assign_face(who(), parse_face(face_id), body["person"])
    return {"id": face_id, "person": body["person"]}


@bp.delete("/people/<person_id>")
def delete_person(person_id: str) -> dict:
    person = parse_person(person_id)
    corrections().delete_person(who(), person)
    return {"success": True, "id": person}


@bp.post("/people/recluster")
def recluster() -> dict:
    result = people().recluster(who())
    assert result is not None  # None only with wait=False
    return result


@bp.post("/people/undo")
def undo() -> dict:
    return {"undone": corrections().undo(who())}


@bp.get("/people/audit")
def audit() -> dict:
    page, limit = parse_page()
    entries, total = corrections().audit(page, limit)
    return {"entries": entries, "page": page, "total": total}


def who() -> str:
    user = request.headers.get(USER_HEADER)
    if user:
        return f"user:{user[:NAME_MAX]}"
    key = request.headers.get(HEADER)
    return f"key:{hashlib.sha256(key.encode()).hexdigest()[:KEY_PREFIX]}" if key else "anonymous"


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def is_id(value: Any) -> TypeGuard[int]:
    """A person ID in a JSON body: a whole number SQLite can hold (a larger one names no person)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def parse_person(raw: str) -> int:
    """Person IDs are whole numbers; anything else names no person."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:  # 18 digits: within SQLite's 64-bit integers
        raise UnknownPerson(raw)
    return int(raw)


def parse_face(raw: str) -> str:
    """A face ID any engine can look up (is_utf8); anything else names no face."""
    if not is_utf8(raw):
        raise UnknownFace(raw)
    return raw


def parse_changes(body: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body: "name" (1 to NAME_MAX characters, or null) and/or "hidden" (a boolean), nothing else."""
    name, hidden = body.get("name"), body.get("hidden", False)
    if not body or set(body) - {"name", "hidden"}:
        raise BadRequest('expected JSON {"name": "..." or null, "hidden": true or false}, one or both')
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= NAME_MAX and is_utf8(name)):
        raise BadRequest(f"name is a string of 1 to {NAME_MAX} characters, or null")
    if not isinstance(hidden, bool):
        raise BadRequest("hidden is true or false")
    return body


def is_utf8(text: str) -> bool:
    """Text every engine can store: JSON may carry lone surrogates ("\ud800"), which SQLite cannot store,
    and NUL, which PostgreSQL cannot."""
    try:
        text.encode("utf-8")
        return "\x00" not in text
    except UnicodeEncodeError:
        return False


def parse_flag(name: str) -> bool:
    raw = request.args.get(name, "false")
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} is true or false, not {raw!r}")
    return raw == "true"


def parse_page() -> tuple[int, int]:
    most = current_app.config["PEOPLE_PAGE_LIMIT"]
    page, limit = request.args.get("page", "1"), request.args.get("limit", str(most))
    if not (page.isascii() and page.isdigit() and 1 <= int(page) <= 10**9):
        raise BadRequest(f"page is a whole number from 1, not {page!r}")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= most):
        raise BadRequest(f"limit is a whole number from 1 to {most}, not {limit!r}")
    return int(page), int(limit)
