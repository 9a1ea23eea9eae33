"""The stream service: live video in (a file, a camera, an RTSP or HTTP URL), annotated video and events
out, each face named from the store's people."""

import atexit

from flask import Flask

from facerec.auth import require_api_key
from facerec.config import load_config
from facerec.errors import register_error_handlers
from facerec.openapi import serve_openapi

from . import mqtt, views, web
from .manager import SourceFailed, Streams, TooManyStreams, UnknownStream
from .store_client import StoreClient


def create_app(test_config=None):
    app = Flask(__name__, static_folder=None)  # an API and one page: no /static/<filename> route
    load_config(app, test_config)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a stream's settings, never more
    app.json.sort_keys = False
    require_api_key(app)
    store = StoreClient(app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"])
    # Processes start with the first stream, in the worker that serves it, never at import time.
    app.extensions["streams"] = streams = Streams(app.config, store)
    atexit.register(streams.close)
    if app.config["MQTT_URL"]:
        atexit.register(mqtt.Publisher(app.config["MQTT_URL"], streams).close)
    register_error_handlers(app, {UnknownStream: 404, SourceFailed: 422, TooManyStreams: 409})
    app.register_blueprint(views.bp)
    app.register_blueprint(web.bp)
    serve_openapi(app)
    return app
