"""The detect service's HTTP edge: read the upload, run the pipeline, store the faces, answer JSON."""

import re
import time
from contextlib import contextmanager

from flask import Blueprint, current_app, request
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from facerec.service.config import SOURCE_MAX, TIME_MAX
from facerec.service.store_api import StoreUnavailable, face_body
from facerec.vision.boxes import Box, iou
from facerec.vision.faces import analyse_photo, describe_boxes
from facerec.vision.images import box_to_stored

bp = Blueprint("detect", __name__)

# A request may draw this many boxes; each costs a descriptor (about 20 ms).
MAX_DRAWN_BOXES = 20
# dlib's encoder looks at a 150 px chip of a face: below 20 px a face holds too little to describe.
MIN_DRAWN_BOX_PX = 20
# A drawn box overlapping a face the detector found by this much is that face (the benchmark's "same face").
DRAWN_IOU = 0.5


@bp.get("/health")
def health():
    models = current_app.extensions["models"]
    if not current_app.extensions["store"].ping():
        raise ServiceUnavailable("models loaded, but the face store does not answer", retry_after=5)
    return {"status": "ready", "dlib": models.build, "detector": current_app.config["DETECTOR"]}


@bp.post("/detect")
def detect():
    photo, faces, stored = detect_and_store(origin(), drawn_boxes())
    return {
        "image": photo.summary(),
        "faces": [
            {
                "id": s["id"],
                "box": f.box.to_json(),
                "landmarks": f.landmarks,
                "detector": f.detector,
                "matches": s["matches"],
                "person": s["person"],
                "person_distance": s["person_distance"],
            }
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
                "rectangle": box_to_stored(f.box, photo.orientation, photo.width, photo.height).to_json(),
                "age": 0,  # never estimated
                "quality": round(f.quality, 3),
                "gender": 0,  # never estimated
            }
            for f, s in zip(faces, stored)
        ],
    }


def analyse_drawn_photo(models, data, min_face_px, max_pixels, small_face_px, detector, sure_score, boxes):
    """The photo's faces as found by the detector, then those of the drawn `boxes` that none of them is
    (boxes overlapping at IoU DRAWN_IOU or more are one face): every face of the photo is stored as the
    photo is noted, so a photo first sent with a drawn box is not taken for one of a single face."""
    photo, faces = analyse_photo(models, data, min_face_px, max_pixels, small_face_px, detector, sure_score)
    boxes = [b for b in boxes if all(iou(b, f.box) < DRAWN_IOU for f in faces)]
    if boxes:
        faces += describe_boxes(models, data, boxes, max_pixels)[1]
    return photo, faces


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


def origin():
    """Where the photo comes from, kept with its faces (facerec ingest sends it): `source` (a path or
    name), `source_sha256` (of the file it came from, when that is not the photo: a video) and `time`
    (seconds into that video). Checked here, before any work; the store checks them again."""
    found: dict[str, str | float] = {k: request.args[k] for k in ("source", "source_sha256") if k in request.args}
    if len(request.args.get("source", "")) > SOURCE_MAX:
        raise BadRequest(f"source is at most {SOURCE_MAX} characters")
    if "source_sha256" in found and not re.fullmatch("[0-9a-f]{64}", request.args["source_sha256"]):
        raise BadRequest("source_sha256 is a SHA-256 in lowercase hex")
    if "time" in request.args:
        try:
            seconds = float(request.args["time"])
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= TIME_MAX:
            raise BadRequest(f"time is a number of seconds from 0 to {TIME_MAX}")
        found["time"] = seconds
    return found


def drawn_boxes() -> list[Box]:
    """The boxes drawn by hand round faces the detector missed: form fields `box=left,top,width,height`
    (upright pixels, as /detect answers boxes), at most MAX_DRAWN_BOXES, each of MIN_DRAWN_BOX_PX or more."""
    fields = request.form.getlist("box") if request.mimetype == "multipart/form-data" else []
    if len(fields) > MAX_DRAWN_BOXES:
        raise BadRequest(f"at most {MAX_DRAWN_BOXES} boxes a photo")
    return [parse_box(field) for field in fields]


def parse_box(field: str) -> Box:
    numbers = field.split(",")
    if len(numbers) != 4 or not all(re.fullmatch("[0-9]{1,9}", n.strip()) for n in numbers):
        raise BadRequest(f"box is left,top,width,height in whole pixels, not {field[:40]!r}")
    box = Box(*map(int, numbers))
    if min(box.width, box.height) < MIN_DRAWN_BOX_PX:
        raise BadRequest(f"a box is at least {MIN_DRAWN_BOX_PX} pixels wide and high: a smaller face describes nothing")
    return box


def detect_and_store(origin=None, boxes=()):
    config = current_app.config
    with current_app.extensions["photo_queue"].turn():
        photo, faces = off_hub(
            analyse_drawn_photo,
            current_app.extensions["models"],
            uploaded_bytes(),
            config["MIN_FACE_PX"],
            config["MAX_IMAGE_PIXELS"],
            config["SMALL_FACE_PX"],
            config["DETECTOR"],
            config["SURE_FACE_SCORE"],
            boxes,
        )
    try:
        # Even a photo without faces: the store notes every photo it is sent.
        bodies = [face_body(f.descriptor, f.box, f.thumbnail, f.quality, f.landmarks, f.detector) for f in faces]
        stored = current_app.extensions["store"].add_faces(photo.sha256, bodies, origin)
    except StoreUnavailable as e:
        raise ServiceUnavailable(f"{e}; nothing was stored, try again", retry_after=5) from None
    return photo, faces, stored


class PhotoQueue:
    """The photos one worker holds, admitted by how long they would wait, and worked on one at a time.

    A photo is admitted while the photos ahead of it would take at most `max_wait` seconds, at this
    worker's recent time per photo; past that it is answered 503 at once, so a burst from one client
    (jAlbum sends 20 at once and never retries) is served whole, while a flood meets a quick "retry
    later" rather than client time-outs. A waiting photo stays in its socket: its bytes are read when
    its turn comes, so waiting photos cost no memory. Greenlets of one worker switch only at I/O, so
    the counts need no lock.
    """

    def __init__(self, max_wait: float, seconds_per_photo: float = 1.0):
        from gevent.lock import Semaphore

        self.max_wait, self.seconds_per_photo, self.held = max_wait, seconds_per_photo, 0
        self._turn = Semaphore(1)

    def expected_wait(self) -> float:
        """Seconds until a photo admitted now would be worked on."""
        return self.held * self.seconds_per_photo

    @contextmanager
    def turn(self):
        wait = self.expected_wait()
        if wait > self.max_wait:
            raise ServiceUnavailable(
                f"busy: {self.held} photos wait on this worker, about {wait:.0f} s of work; retry shortly",
                retry_after=max(1, round(wait - self.max_wait)),
            )
        self.held += 1
        try:
            with self._turn:
                started = time.monotonic()
                yield
                # A moving average over the last ten or so photos follows a change of photo sizes.
                self.seconds_per_photo += 0.1 * (time.monotonic() - started - self.seconds_per_photo)
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
