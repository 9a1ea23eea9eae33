"""The detect service's HTTP edge: read the upload, run the pipeline, store the faces, answer JSON."""
from contextlib import contextmanager

from flask import Blueprint, current_app, request
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from facerec.vision.faces import analyse_photo
from facerec.vision.images import box_to_stored

from .store_client import StoreUnavailable

bp = Blueprint("detect", __name__)


@bp.get("/health")
def health():
    models = current_app.extensions["models"]
    if not current_app.extensions["store"].ping():
        raise ServiceUnavailable("models loaded, but the face store does not answer", retry_after=5)
    return {"status": "ready", "dlib": models.build}


@bp.post("/detect")
def detect():
    photo, faces, stored = detect_and_store()
    return {
        "image": photo.summary(),
        "faces": [
            {"id": s["id"], "box": f.box, "landmarks": f.landmarks, "matches": s["matches"],
             "person": s["person"], "person_distance": s["person_distance"]}
            for f, s in zip(faces, stored)
        ],
    }


@bp.put("/api/detect")
def jalbum_detect():
    """jAlbum's contract: raw (often chunked) body; `rectangle` in the stored file's pixels, since
    jAlbum crops thumbnails from them without applying EXIF orientation."""
    photo, faces, stored = detect_and_store()
    return {
        "success": True,
        "count": len(faces),
        "faces": [
            {
                "token": s["id"],
                "rectangle": box_to_stored(f.box, photo.orientation, photo.width, photo.height),
                "age": 0,
                "quality": 0,
                "gender": 0,
            }
            for f, s in zip(faces, stored)
        ],
    }


def uploaded_bytes():
    """The photo: multipart field `image`, or else the raw body (chunked or not)."""
    if request.mimetype == "multipart/form-data":
        if "image" not in request.files:
            raise BadRequest('a multipart upload carries the photo in a field named "image"')
        data = request.files["image"].read()
    else:
        data = request.get_data(cache=False)
    if not data:
        raise BadRequest('no photo in the request: send it as the body or as multipart field "image"')
    return data


def detect_and_store():
    config = current_app.config
    with current_app.extensions["photo_queue"].slot():
        photo, faces = off_hub(
            analyse_photo, current_app.extensions["models"], uploaded_bytes(), config["MIN_FACE_PX"], config["MAX_IMAGE_PIXELS"]
        )
    try:
        stored = current_app.extensions["store"].add_faces(photo.sha256, faces) if faces else []
    except StoreUnavailable as e:
        raise ServiceUnavailable(f"{e}; nothing was stored, try again", retry_after=5) from None
    return photo, faces, stored


class PhotoQueue:
    """The photos one worker holds, in work or waiting for it. Past the limit a request is answered
    503 at once, so a flood meets a quick "retry later" rather than client time-outs.

    Greenlets of one worker switch only at I/O, so the count needs no lock.
    """

    def __init__(self, limit):
        self.limit, self.held = limit, 0

    @contextmanager
    def slot(self):
        if self.held >= self.limit:
            raise ServiceUnavailable(f"busy: {self.held} photos are waiting on this worker; retry shortly", retry_after=2)
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


def off_hub(fn, *args):
    """Run CPU-bound work in gevent's native thread pool when under gevent.

    dlib releases the GIL, so the hub, and with it gunicorn's heartbeat greenlet, keeps running
    during a long detection (a starved heartbeat gets the whole worker killed: gunicorn issues 1955, 2246, 2608).
    The pool holds one thread: a worker works on one photo at a time, as many workers as cores.
    """
    from gevent import get_hub, monkey

    if not monkey.is_module_patched("socket"):
        return fn(*args)
    pool = get_hub().threadpool
    pool.maxsize = 1
    return pool.apply(fn, args)
