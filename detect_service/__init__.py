"""The detect service: photos in, faces out, each face stored through the store service."""
from flask import Flask

from facerec.auth import require_api_key
from facerec.config import load_config
from facerec.errors import register_error_handlers
from facerec.openapi import serve_openapi

from . import views
from .faces import Models
from .images import ImageError, ImageTooLarge, UnsupportedImage
from .store_client import StoreClient


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)  # an API: no /static/<filename> route
    load_config(app, test_config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"]
    app.json.sort_keys = False
    require_api_key(app)  # first: a bad key setting fails before any model or database is opened
    # Loaded here, once per worker, never at import time.
    app.extensions["models"] = Models(app.config["MODELS_DIR"], app.config["LANDMARKS"])
    app.extensions["store"] = StoreClient(
        app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"]
    )
    app.extensions["photo_queue"] = views.PhotoQueue(app.config["MAX_QUEUED_PHOTOS"])
    register_error_handlers(app, {UnsupportedImage: 415, ImageTooLarge: 413, ImageError: 422})

    app.register_blueprint(views.bp)
    serve_openapi(app)
    return app
