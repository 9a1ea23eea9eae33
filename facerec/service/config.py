"""Every setting of both services, with its default, in one place.

Any key can be overridden by an environment variable of the same name prefixed with ``FACEREC_``
(``FACEREC_MAX_DISTANCE=0.5``). Values are parsed as JSON, so numbers stay numbers. Tests pass a dict.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

# The largest face thumbnail, in bytes: what the detect service makes (facerec/vision/thumbnails.py) and
# the store accepts. Part of the contract between the two services, not a setting. 8 KB keeps a page
# of 100 faces under 1 MB and a photo's faces well inside MAX_STORE_REQUEST_BYTES.
THUMBNAIL_MAX_BYTES = 8 * 1024
# A photo's `source` (a path, as facerec ingest was given it) and `time` (seconds into a video), as both
# services accept them: a path far longer than any file system's, and a video of some 115 days.
SOURCE_MAX = 4096
TIME_MAX = 10_000_000

# Any: each setting has its own type; code reads them by name.
DEFAULTS: dict[str, Any] = {
    # Where each service listens (read by the gunicorn config files).
    "DETECT_BIND": "127.0.0.1:5000",
    "STORE_BIND": "127.0.0.1:5001",
    "STREAM_BIND": "127.0.0.1:5002",
    # Detect workers: one per core. Each runs one photo at a time, so more would only queue.
    "DETECT_WORKERS": None,
    # Store: SQLite file lives in DATA_DIR.
    "DATA_DIR": "data",
    # Store: a postgresql://user:password@host/db URL puts the faces there instead, shared by any number
    # of store replicas (docs/scaling.md). Unset: SQLite in DATA_DIR, one store process.
    "DATABASE_URL": None,
    # Plain Euclidean distance between dlib descriptors. 0.36 is the original service's and jAlbum's
    # value: on real photos almost never a wrong match, but it misses most same-person pairs (docs/api.md).
    "MAX_DISTANCE": 0.36,
    # Default and largest `limit` of a similarity query.
    "SIMILAR_LIMIT": 100,
    # Detect: how to reach the store, and how long to wait for it (seconds).
    "STORE_URL": "http://127.0.0.1:5001",
    "STORE_TIMEOUT": 30,
    # Model files: a folder holding the dlib .dat files; unset = the face-recognition-models package.
    "MODELS_DIR": None,
    # 5 = the CC0 five-point model. 68 = the 68-point model (iBUG 300-W data, no commercial use).
    "LANDMARKS": 5,
    # Every face at least this many pixels wide in the original photo is searched for, 20 to 2000
    # (docs/detection.md: the photo is scanned at 80 / MIN_FACE_PX of its size).
    "MIN_FACE_PX": 100,
    # How faces are found (docs/detection.md). "proposals": YuNet, a small CNN, proposes where faces are
    # on a reduced image and HOG confirms each in a small window (the whole scan where that costs little
    # or no less). "hog": HOG scans the whole photo.
    "DETECTOR": "proposals",
    # On a photo of at most 1 MP, where HOG's whole scan costs little, faces down to this size are found
    # (as far as a scan of 1.25 MP allows: a 640×480 photo down to 40 px). 0 = MIN_FACE_PX everywhere.
    "SMALL_FACE_PX": 40,
    # With DETECTOR "proposals", a face YuNet proposes with at least this score is a face even where HOG
    # turns it down ("detector": "cnn"), 0.5 to 1; 1 = only the faces HOG accepts (docs/detection.md).
    "SURE_FACE_SCORE": 0.9,
    # Detect: a photo is admitted while the photos ahead of it on its worker would take at most this many
    # seconds (at the worker's recent time per photo); past it, 503 with Retry-After at once. 60 s lets a
    # client's burst of 50 photos of 2 s each wait its turn on two workers, and answers a flood at once.
    "MAX_QUEUE_SECONDS": 60,
    # Limits on what an upload may be (docs/operations.md).
    "MAX_UPLOAD_BYTES": 50 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 64_000_000,
    "MAX_STORE_REQUEST_BYTES": 4 * 1024 * 1024,
    # Optional API keys (docs/operations.md; facerec/service/auth.py). Unset = every route open.
    # A comma-separated string or a JSON list of keys, and/or a file with one key per line.
    "API_KEYS": None,
    "API_KEY_FILE": None,
    # The key the detect service sends to the store in X-API-Key: one of the store's keys.
    "STORE_API_KEY": None,
    # People (docs/people.md; store_service/people/ and clusters.py). All distances are plain
    # Euclidean between dlib descriptors, measured by `make bench-people`.
    # A re-cluster merges two clusters when at least 40 % of the pairs between their faces lie within
    # 0.6, dlib's own same-person bound (docs/people.md: the faces of one person in our labelled sets
    # have 63 % to 100 % of their pairs within 0.6; two different people at most 30 %, and at most 4 %
    # for people of 10 photos or more). A share, unlike the distance between means, does not shrink as
    # the clusters grow: it means the same at 2 and at 1,000 faces a person.
    "PEOPLE_CLUSTER_DISTANCE": 0.6,
    "PEOPLE_CLUSTER_SHARE": 0.4,
    # A share over 3 faces or fewer says little, so such a cluster, or a new face, also joins a person of
    # 5 faces or more when its faces' mean squared distance to the person's centre is within 2.1 times
    # what a face of the person has on average (the person's own spread, corrected for its size; 1 for a
    # face of the same person). 2.1 is the 99th percentile of that ratio under the chi-square law whose
    # effective dimension (13) was measured on lfw10; checked on every set (docs/people.md).
    "PEOPLE_SPREAD_RATIO": 2.1,
    # Each face links to its 10 nearest neighbours: enough to join every face of a person, few enough
    # that 100 k faces make about 1 M links.
    "PEOPLE_NEIGHBOURS": 10,
    # Up to 20,000 faces the neighbours are exact (about 2 s); beyond, searched in k-means cells.
    "PEOPLE_EXACT_LIMIT": 20000,
    # A cluster of fewer than 2 faces is no person: a face alone stays unknown.
    "PEOPLE_MIN_FACES": 2,
    # A new face joins a person when its mean distance to that person's 3 nearest faces is within 0.6,
    # dlib's bound (3 faces, not 1: one odd face of a person decides nothing; 0.55 or 0.57 left more
    # faces of celeb5 unknown, for no gain in precision; `make bench-people`) ...
    "PEOPLE_JOIN_DISTANCE": 0.6,
    "PEOPLE_JOIN_NEAREST": 3,
    # ... and at least 0.05 less than to any other person: between two people it stays unknown
    # (0.08 changed nothing on the labelled sets but lost a few faces to unknown).
    "PEOPLE_MARGIN": 0.05,
    # Faces farther than 0.7 count as 0.7 in that mean (0.7: beyond anything that could join at 0.6).
    "PEOPLE_NEAR": 0.7,
    # A new face that joins nobody pairs with an unknown face of another photo within 0.6 into a new
    # person: what a re-cluster does with two faces alone (their RMS distance is their distance). 0.5
    # and 0.55 left more faces unknown (celeb5 incremental F1 0.87 and 0.93) with the same precision.
    "PEOPLE_PAIR_DISTANCE": 0.6,
    # GET /people/<id>/suggestions offers the people whose mean distance to this one (a face of one to a
    # face of the other, average linkage) is within 0.7: the textbook merges below 0.6, the parts of one
    # person a re-cluster left apart lie up to about 0.65 from each other; different people of the
    # labelled sets lie 0.63 or more apart, most beyond 0.7 (docs/people.md): a few "no" answers.
    "PEOPLE_SUGGEST_DISTANCE": 0.7,
    # A face of quality under this (thumbnails.py: size × sharpness × how frontal; a face turned far aside,
    # blurred, dim and flat, or tiny) may join a person but founds none, neither on arrival nor in a
    # re-cluster, and links no two clusters there (docs/people.md: what the quality means in distances).
    "PEOPLE_LOW_QUALITY": 0.1,
    # Re-cluster in the background after this many new faces (0 = only on POST /people/recluster).
    "PEOPLE_RECLUSTER_AFTER": 1000,
    # Default and largest `limit` of GET /people and GET /people/audit.
    "PEOPLE_PAGE_LIMIT": 200,
    # Store: where the web page (served at the store's /) sends photos: the detect service, as the
    # browser reaches it.
    "DETECT_URL": "http://127.0.0.1:5000",
    # Detect: the origins whose pages may call it from a browser (CORS; facerec/service/cors.py): the store's
    # web page at its default address, by either name. A comma-separated string or a JSON list.
    "CORS_ORIGINS": ["http://127.0.0.1:5001", "http://localhost:5001"],
    # Live streams (docs/stream.md; stream_service/). Detection worker processes, shared by all streams:
    # one per core (None). Each works on the newest frame of a stream; frames in between are skipped.
    "STREAM_WORKERS": None,
    # Streams that may run at once: each holds a reader process and its frames in shared memory.
    "STREAM_MAX_STREAMS": 4,
    # Frames wider than this are shrunk to it for detection (not for the picture, which keeps the
    # source's size): detection then costs the same whatever the source, and finds faces from 40 px
    # at this width (120 px in a 1080p frame).
    "STREAM_DETECT_WIDTH": 640,
    # How often each face on screen is looked up in the store again (seconds): a name given on the
    # people page shows on the live video within this time.
    "STREAM_IDENTIFY_EVERY": 0.5,
    # With a privacy filter, how long a frame may wait for a detection that covers it (seconds); a frame
    # still uncovered then goes out blurred all over. Longer: fewer whole-blurred frames on a busy machine,
    # more latency.
    "STREAM_PRIVACY_WAIT": 0.5,
    # Quality of the annotated Motion JPEG frames (1-100).
    "STREAM_JPEG_QUALITY": 80,
    # HTTPS for the stream service (docs/webrtc.md): browsers give a page the camera only over https://
    # (or on localhost). Paths to a PEM certificate and its key, the user's own; None serves plain HTTP.
    "STREAM_CERT_FILE": None,
    "STREAM_KEY_FILE": None,
    # Background pictures uploaded with PUT /backgrounds/<name> (stream_service/backgrounds.py): at most
    # this many bytes each, and this many of them (a 1080p JPEG is 0.2-1 MB; each is kept at most 1920x1080).
    "STREAM_BACKGROUND_MAX_BYTES": 8 * 1024 * 1024,
    "STREAM_BACKGROUNDS_KEPT": 50,
    # Viewers of one broadcast over WebRTC (WHEP) at once: each costs the call's process a peer
    # connection and its packets (the video is encoded once for all of them).
    "STREAM_MAX_VIEWERS": 20,
    # Seconds a WHIP endpoint has to answer a broadcast's offer (POST /streams/<id>/publish, docs/webrtc.md)
    # before publishing fails: a media server answers in well under a second; the wait is bounded so that
    # an endpoint that never answers costs the request no more than this.
    "STREAM_WHIP_WAIT": 10,
    # The only folder whose files (and folders below it) a stream may play; None: no file at all, only
    # cameras and URLs (docs/home.md). Symbolic links that lead out of it are refused.
    "STREAM_MEDIA_DIR": None,
    # The DeepStack API's recognize (detect_service/deepstack.py, docs/home.md) names a face only when the
    # placing rule puts it in a named person AND its distance to that person (the mean to its 3 nearest
    # faces) is within 0.55. With 3 photos registered a person, the rule's 0.6 named 2 of 400 photos of
    # people never registered in celeb8 (lookalikes at 0.576 and 0.596); 0.55 named none on any labelled
    # set, and still named 91-100 % of the registered people's photos whose face was found (`make bench-home`).
    "DEEPSTACK_MAX_DISTANCE": 0.55,
    # The MQTT broker the stream service publishes every stream's events to (stream_service/mqtt.py,
    # docs/home.md): mqtt://[user:password@]host[:port] or mqtts://...; None: no MQTT.
    "MQTT_URL": None,
}


def setting(name: str) -> Any:
    """One setting outside Flask (gunicorn config, supervisor): the environment wins over DEFAULTS."""
    raw = os.environ.get(f"FACEREC_{name}")
    if raw is None:
        return DEFAULTS[name]
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def load_config(app: Flask, test_config: Mapping[str, Any] | None = None) -> None:
    """Defaults, then FACEREC_* environment variables, then the test's overrides."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("FACEREC")
    if test_config:
        app.config.update(test_config)
