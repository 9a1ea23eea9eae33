"""The detect service: photos in, faces out, each face stored through the store service."""

from flask import Flask

from facerec.service.app import make_app
from facerec.service.store_api import StoreClient
from facerec.vision.faces import DETECTORS, Models
from facerec.vision.images import ImageError, ImageTooLarge, UnsupportedImage

from . import deepstack, views


def create_app(test_config: dict | None = None) -> Flask:
    errors: dict[type[Exception], int] = {UnsupportedImage: 415, ImageTooLarge: 413, ImageError: 422}
    app = make_app(__name__, test_config, "MAX_UPLOAD_BYTES", errors, cors=True)
    min_face = app.config["MIN_FACE_PX"]
    if isinstance(min_face, bool) or not isinstance(min_face, (int, float)) or not 20 <= min_face <= 2000:
        raise ValueError(f"MIN_FACE_PX must be a number of pixels from 20 to 2000, not {min_face!r}")
    small_face = app.config["SMALL_FACE_PX"]
    if (
        isinstance(small_face, bool)
        or not isinstance(small_face, (int, float))
        or not (small_face == 0 or 20 <= small_face <= 2000)
    ):
        raise ValueError(f"SMALL_FACE_PX must be 0 or a number of pixels from 20 to 2000, not {small_face!r}")
    sure = app.config["SURE_FACE_SCORE"]
    if isinstance(sure, bool) or not isinstance(sure, (int, float)) or not 0.5 <= sure <= 1:
        raise ValueError(f"SURE_FACE_SCORE must be a number from 0.5 to 1, not {sure!r}")
    if app.config["DETECTOR"] not in DETECTORS:
        raise ValueError(f"DETECTOR must be one of {', '.join(DETECTORS)}, not {app.config['DETECTOR']!r}")
    # Loaded here, once per worker, never at import time.
    app.extensions["models"] = Models(app.config["MODELS_DIR"], app.config["LANDMARKS"])
    app.extensions["store"] = StoreClient(
        app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"]
    )
    app.extensions["photo_queue"] = views.PhotoQueue(app.config["MAX_QUEUE_SECONDS"])
    app.register_blueprint(views.bp)
    app.register_blueprint(deepstack.bp)
    return app
