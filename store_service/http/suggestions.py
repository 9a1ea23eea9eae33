"""The HTTP edge of suggestions and their answers: "is this X?" for a face, "are these the same?" for a
person (store_service/suggestions.py); a yes is the existing assign or merge, a no is a correction."""

from flask import Blueprint, current_app, request
from werkzeug.exceptions import BadRequest

from ..people.suggestions import Suggestions
from .people import corrections, is_id, json_body, parse_face, parse_person, who

bp = Blueprint("suggestions", __name__)
# Most suggestions in one answer: a page shows a few; more says nothing the user can answer at once.
SUGGESTIONS_MAX = 20


def suggestions() -> Suggestions:
    return current_app.extensions["face_store"].suggestions


@bp.get("/faces/<face_id>/suggestions")
def face_suggestions(face_id: str) -> dict:
    return {"id": face_id, "suggestions": suggestions().for_face(parse_face(face_id), parse_limit(3))}


@bp.post("/faces/<face_id>/not-person")
def not_person(face_id: str) -> dict:
    person = parse_other()
    corrections().not_person(who(), parse_face(face_id), person)
    return {"id": face_id, "not_person": person}


@bp.get("/people/<person_id>/suggestions")
def person_suggestions(person_id: str) -> dict:
    person = parse_person(person_id)
    return {"id": person, "suggestions": suggestions().for_person(person, parse_limit(5))}


@bp.post("/people/<person_id>/not-same")
def not_same(person_id: str) -> dict:
    person, other = parse_person(person_id), parse_other()
    corrections().not_same(who(), person, other)
    return {"id": person, "not_same": other}


def parse_other() -> int:
    other = json_body().get("person")
    if not is_id(other):
        raise BadRequest('expected JSON {"person": a person ID}')
    return other


def parse_limit(default: int) -> int:
    raw = request.args.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= SUGGESTIONS_MAX):
        raise BadRequest(f"limit is a whole number from 1 to {SUGGESTIONS_MAX}, not {raw!r}")
    return int(raw)
