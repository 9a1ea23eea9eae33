"""The store service: the one process that writes the faces database (SQLite), or one of many replicas
sharing a PostgreSQL database (DATABASE_URL; docs/scaling.md)."""

import os

from flask import Flask

from facerec.service.app import make_app

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

ERRORS = {
    UnknownFace: 404,
    InvalidFace: 400,
    UnknownPerson: 404,
    UnknownPhoto: 404,
    NotInPerson: 404,
    NoThumbnail: 404,
    InvalidCorrection: 400,
    Conflict: 409,
}


def create_app(test_config: dict | None = None) -> Flask:
    app = make_app(__name__, test_config, "MAX_STORE_REQUEST_BYTES", ERRORS)
    # Opened here, in the worker after gunicorn forks: never share a database connection across a fork.
    location = app.config["DATABASE_URL"] or os.path.join(app.config["DATA_DIR"], "faces.sqlite3")
    app.extensions["face_store"] = FaceStore(location, settings=app.config)
    from .http import faces, people, suggestions, web

    app.register_blueprint(faces.bp)
    app.register_blueprint(people.bp)
    app.register_blueprint(suggestions.bp)
    app.register_blueprint(web.bp)
    return app
