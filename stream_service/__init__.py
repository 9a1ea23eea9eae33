"""The stream service: live video in (a file, a camera, an RTSP or HTTP URL), annotated video and events
out, each face named from the store's people."""

import atexit

from flask import Flask

from facerec.service.app import make_app
from facerec.service.store_api import StoreClient

from . import views, web
from .manager import Manager, SourceFailed, TooManyStreams, UnknownStream


def create_app(test_config: dict | None = None) -> Flask:
    errors = {UnknownStream: 404, SourceFailed: 422, TooManyStreams: 409}
    app = make_app(__name__, test_config, 64 * 1024, errors)  # a stream's settings, never more
    store = StoreClient(app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"])
    # Processes start with the first stream, in the worker that serves it, never at import time.
    app.extensions["streams"] = streams = Manager(app.config, store)
    atexit.register(streams.close)
    app.register_blueprint(views.bp)
    app.register_blueprint(web.bp)
    return app
