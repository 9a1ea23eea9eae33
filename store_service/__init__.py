"""The store service: the one process that writes the faces database (SQLite), or one of many replicas
sharing a PostgreSQL database (DATABASE_URL; docs/scaling.md)."""

import os

from flask import Flask

from facerec.auth import require_api_key
from facerec.config import load_config
from facerec.errors import register_error_handlers
from facerec.openapi import serve_openapi

from .exceptions import (
    Conflict,
    InvalidCorrection,
    InvalidFace,
    NoThumbnail,
    NotInPerson,
    UnknownFace,
    UnknownPerson,
    UnknownPhoto,
)
from .store import FaceStore


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)  # an API: no /static/<filename> route
    load_config(app, test_config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_STORE_REQUEST_BYTES"]
    app.json.sort_keys = False
    require_api_key(app)  # first: a bad key setting fails before any model or database is opened
    # Opened here, in the worker after gunicorn forks: never share a database connection across a fork.
    location = app.config["DATABASE_URL"] or os.path.join(app.config["DATA_DIR"], "faces.sqlite3")
    app.extensions["face_store"] = FaceStore(location, settings=app.config)
    register_error_handlers(
        app,
        {
            UnknownFace: 404,
            InvalidFace: 400,
            UnknownPerson: 404,
            UnknownPhoto: 404,
            NotInPerson: 404,
            NoThumbnail: 404,
            InvalidCorrection: 400,
            Conflict: 409,
        },
    )

    from . import people_views, suggestion_views, views, web

    app.register_blueprint(views.bp)
    app.register_blueprint(people_views.bp)
    app.register_blueprint(suggestion_views.bp)
    app.register_blueprint(web.bp)
    serve_openapi(app)
    return app
