"""The DeepStack / CodeProject.AI face API, as Double Take, Home Assistant (deepstack-python), Blue Iris,
Agent DVR and deepstack-sdk call it (docs/home.md): multipart forms in, JSON with `success` out.

Who a face is, the store decides, by the rule that places new faces (POST /people/identify): a face the
rule would not put in a named person is "unknown", and so is one farther from that person than
DEEPSTACK_MAX_DISTANCE, whatever `min_confidence` the client sends: a loose client threshold never turns
a stranger into family. Boxes are in the stored file's pixels (no EXIF turn), as DeepStack's are.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable

from facerec.service.store_api import StoreRefused, StoreUnavailable, face_body
from facerec.vision.faces import Face, analyse_photo
from facerec.vision.images import Photo, box_to_stored

from .views import off_hub

bp = Blueprint("deepstack", __name__, url_prefix="/v1/vision/face")

UNKNOWN = "unknown"
# Confidence falls in a straight line from 1 at distance 0 to DEFAULT_CONFIDENCE at DEEPSTACK_MAX_DISTANCE
# (0.55 by default: 1 - 0.6 d, 0 from d = 1.67 on). 0.67 is the min_confidence DeepStack's clients send by
# default, so the default threshold is exactly our bound, a higher one asks for a closer face (0.78: within
# 0.36, the original service's MAX_DISTANCE), and a lower one changes nothing: no face beyond the bound
# is named.
DEFAULT_CONFIDENCE = 0.67
# DeepStack's default min_confidence of face detection.
DEFAULT_DETECTION_CONFIDENCE = 0.4
REGISTER_MAX_IMAGES = 20  # images in one register request: 20 photos are about 20 s of work
USERID_MAX = 200  # characters: a person's name in the store


@bp.record_once
def check_settings(state: BlueprintSetupState) -> None:
    """A bad DEEPSTACK_MAX_DISTANCE stops the service at start-up, not a request later."""
    bound = state.app.config["DEEPSTACK_MAX_DISTANCE"]
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound <= 1.2:
        raise ValueError(f"DEEPSTACK_MAX_DISTANCE must be a distance above 0 and at most 1.2, not {bound!r}")


def confidence(distance: float) -> float:
    """DeepStack's confidence (0..1) for one of our distances: monotone, DEFAULT_CONFIDENCE at the bound."""
    per_distance = (1 - DEFAULT_CONFIDENCE) / current_app.config["DEEPSTACK_MAX_DISTANCE"]
    return round(min(1.0, max(0.0, 1 - per_distance * distance)), 4)


def detection_confidence(face: Face) -> float:
    """0.5 to 1: every face found has passed HOG, so it is more likely a face than not (above DeepStack's
    default 0.4), and its quality (0..1: size, sharpness, frontality; thumbnails.py) ranks it above that."""
    return round(0.5 + 0.5 * face.quality, 4)


@bp.post("/register")
def register() -> dict:
    userid = form_userid()
    images = [f.read() for _, f in request.files.items(multi=True)]
    if not images or len(images) > REGISTER_MAX_IMAGES:
        raise BadRequest(f"register takes 1 to {REGISTER_MAX_IMAGES} images, in fields of any name")
    # Every image is read before anything is stored: one without a face changes nothing. Only each
    # photo's hash and largest face are kept meanwhile, not its pixels.
    chosen = [(photo.sha256, face) for photo, face in (largest_face(*analyse(data)) for data in images)]
    found = [(sha256, face) for sha256, face in chosen if face is not None]
    if len(found) < len(chosen):
        raise BadRequest("no face found in image")
    ids = [store_face(sha256, face)["id"] for sha256, face in found]
    call_store("POST", "/people/register", json={"name": userid, "faces": ids})
    return {"success": True, "message": "face added"}


@bp.post("/recognize")
def recognize() -> dict:
    least = form_confidence(DEFAULT_CONFIDENCE)
    photo, faces = analyse(form_image("image"))
    who = identify(faces)
    return {"success": True, "predictions": [prediction(photo, f, w, least) for f, w in zip(faces, who)]}


@bp.post("/list")
def list_faces() -> dict:
    return {"success": True, "faces": sorted({p["name"] for p in all_people() if p["name"] is not None})}


@bp.post("/delete")
def delete() -> dict:
    """The people named `userid` go; their faces stay in the store, unknown (DeepStack answers success
    whether or not the name was registered)."""
    userid = form_userid()
    for person in all_people():
        if person["name"] == userid:
            call_store("DELETE", f"/people/{person['id']}")
    return {"success": True}


@bp.post("")
def detect_faces() -> dict:
    least = form_confidence(DEFAULT_DETECTION_CONFIDENCE)
    photo, faces = analyse(form_image("image"))
    found = [{"confidence": detection_confidence(f), **corners(photo, f)} for f in faces]
    return {"success": True, "predictions": [p for p in found if p["confidence"] >= least]}


@bp.post("/match")
def match() -> dict:
    descriptors = []
    for field in ("image1", "image2"):
        face = largest_face(*analyse(form_image(field)))[1]
        if face is None:
            raise BadRequest(f"no face found in {field}")
        descriptors.append(face.descriptor)
    distance = float(np.linalg.norm(descriptors[0] - descriptors[1]))
    return {"success": True, "similarity": confidence(distance)}


def prediction(photo: Photo, face: Face, who: dict, least: float) -> dict:
    """One recognize prediction: the person's name and confidence, or "unknown" with 0: when the placing
    rule puts the face in no named person, or farther than DEEPSTACK_MAX_DISTANCE, or the client asks for
    more confidence."""
    distance = who["distance"]
    named = (
        who["person"] is not None
        and who["name"] is not None
        and distance <= current_app.config["DEEPSTACK_MAX_DISTANCE"]
        and confidence(distance) >= least
    )
    score = confidence(distance) if named else 0.0
    return {"userid": who["name"] if named else UNKNOWN, "confidence": score, **corners(photo, face)}


def corners(photo: Photo, face: Face) -> dict:
    """The face's box as DeepStack gives it: x_min, y_min, x_max, y_max in the stored file's pixels."""
    box = box_to_stored(face.box, photo.orientation, photo.width, photo.height)
    return {"x_min": box.left, "y_min": box.top, "x_max": box.right, "y_max": box.bottom}


def analyse(data: bytes) -> tuple[Photo, list[Face]]:
    """The photo and its faces, in this worker's turn (views.PhotoQueue), as /detect finds them."""
    config = current_app.config
    with current_app.extensions["photo_queue"].turn():
        return off_hub(
            analyse_photo,
            current_app.extensions["models"],
            data,
            config["MIN_FACE_PX"],
            config["MAX_IMAGE_PIXELS"],
            config["SMALL_FACE_PX"],
            config["DETECTOR"],
            config["SURE_FACE_SCORE"],
        )


def largest_face(photo: Photo, faces: list[Face]) -> tuple[Photo, Face | None]:
    """The photo and its largest face (the one a registration or a match is about), None if it has none."""
    return photo, max(faces, key=lambda f: f.box.area, default=None)


def identify(faces: list[Face]) -> list[dict]:
    """Per face the store's {"person", "name", "distance"}: the person the placing rule puts it in."""
    if not faces:
        return []
    return store_answer(lambda: current_app.extensions["store"].identify([f.descriptor for f in faces]))


def store_face(photo_sha256: str, face: Face) -> dict:
    """Store one face of a photo (the photo's other faces are no one's business here)."""
    body = face_body(face.descriptor, face.box, face.thumbnail, face.quality, face.landmarks, face.detector)
    return store_answer(lambda: current_app.extensions["store"].add_faces(photo_sha256, [body]))[0]


def all_people() -> list[dict]:
    """Every person, hidden ones too, a page at a time."""
    found, page = [], 1
    while True:
        answer = call_store("GET", "/people", params={"hidden": "true", "page": page})
        found += answer["people"]
        if not answer["people"] or len(found) >= answer["total"]:
            return found
        page += 1


def call_store(method: str, path: str, **kwargs) -> dict:
    return store_answer(lambda: current_app.extensions["store"].call(method, path, **kwargs))


def store_answer(call: Callable[[], Any]) -> Any:
    """The store's answer; its refusal passed on with its status, its absence a 503."""
    try:
        return call()
    except StoreRefused as e:
        error = HTTPException(e.message)
        error.code = e.status
        raise error from None
    except StoreUnavailable as e:
        raise ServiceUnavailable(f"{e}; nothing was changed, try again", retry_after=5) from None


def form_image(field: str) -> bytes:
    if field not in request.files:
        raise BadRequest(f'expected the image in the multipart field "{field}"')
    data = request.files[field].read()
    if not data:
        raise BadRequest(f'the multipart field "{field}" is empty')
    return data


def form_userid() -> str:
    userid = request.form.get("userid", "").strip()
    if not 0 < len(userid) <= USERID_MAX or userid == UNKNOWN or "\x00" in userid:
        raise BadRequest(f'userid is a name of 1 to {USERID_MAX} characters, not "{UNKNOWN}"')
    return userid


def form_confidence(default: float) -> float:
    raw = request.form.get("min_confidence")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise BadRequest("min_confidence is a number from 0 to 1")
    return value
