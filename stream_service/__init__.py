"""The stream service: live video in (a file, a camera, an RTSP or HTTP URL), annotated video and events
out, each face named from the store's people."""

import atexit
from pathlib import Path

from flask import Flask

from facerec.service import session
from facerec.service.app import make_app
from facerec.service.store_api import StoreClient
from facerec.vision.images import ImageError, ImageTooLarge, UnsupportedImage

from . import background_views, mqtt, publish_views, views, web, whep
from .backgrounds import Backgrounds, BadBackground, TooManyBackgrounds, UnknownBackground
from .manager import (
    Manager,
    NotBroadcast,
    NotPublished,
    PublishFailed,
    SourceFailed,
    TooManyStreams,
    UnknownStream,
    UnknownViewer,
)


def create_app(test_config: dict | None = None) -> Flask:
    errors = {
        UnknownStream: 404,
        SourceFailed: 422,
        TooManyStreams: 409,
        UnknownBackground: 404,
        BadBackground: 400,
        TooManyBackgrounds: 409,
        UnsupportedImage: 415,
        ImageTooLarge: 413,
        ImageError: 422,
        NotBroadcast: 409,
        UnknownViewer: 404,
        PublishFailed: 422,
        NotPublished: 404,
    }
    # A stream's settings, never more (a background picture's upload raises it for itself).
    app = make_app(__name__, test_config, 64 * 1024, errors)
    store = StoreClient(app.config["STORE_URL"], app.config["STORE_TIMEOUT"], app.config["STORE_API_KEY"])
    # Processes start with the first stream, in the worker that serves it, never at import time.
    app.extensions["streams"] = streams = Manager(app.config, store)
    atexit.register(streams.close)
    app.extensions["backgrounds"] = Backgrounds(
        Path(app.config["DATA_DIR"]) / "backgrounds", app.config["STREAM_BACKGROUNDS_KEPT"]
    )
    if app.config["MQTT_URL"]:
        atexit.register(mqtt.Publisher(app.config["MQTT_URL"], streams).close)
    app.register_blueprint(views.bp)
    app.register_blueprint(background_views.bp)
    app.register_blueprint(whep.bp)
    app.register_blueprint(publish_views.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(session.bp)  # the live page's key, as a cookie its <img> and EventSource carry
    return app
