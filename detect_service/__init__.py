"""The detect service: photos in, faces out, each face stored through the store service."""

from flask import Flask

from facerec.auth import require_api_key
from facerec.config import load_config
from facerec.cors import allow_origins
from facerec.errors import register_error_handlers
from facerec.openapi import serve_openapi
from facerec.vision.faces import DETECTORS, Models
from facerec.vision.images import ImageError, ImageTooLarge, UnsupportedImage

from . import deepstack, views
from .store_client import StoreClient


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)  # an API: no /static/<filename> route
    load_config(app, test_config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
    app.json.sort_keys = False
    allow_origins(app)  # before the key check: a browser's CORS preflight carries no key
    require_api_key(app)  # a bad key setting fails before any model is loaded
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
    if app.config["DETECTOR"] not in DETECTORS:
        raise ValueError(f"DETECTOR must be one of {', '.join(DETECTORS)}, not {app.config['DETECTOR']!r}")
    # Loaded here, once per worker, never at import time.
    app.extensions["models"] = Models(app.config["MODELS_DIR"], app.config["LANDMARKS"])
    app.extensions["store"] = StoreClient(
        app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"]
    )
    app.extensions["photo_queue"] = views.PhotoQueue(app.config["MAX_QUEUE_SECONDS"])
    register_error_handlers(app, {UnsupportedImage: 415, ImageTooLarge: 413, ImageError: 422})

    app.register_blueprint(views.bp)
    app.register_blueprint(deepstack.bp)
    serve_openapi(app)
    return app
