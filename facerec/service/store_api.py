"""The one client of the store's REST API: the detect and stream services call the store only through it
(JSON, never pickle)."""

import base64
from typing import Any

import numpy as np
import requests

from facerec.vision.boxes import Box


class StoreUnavailable(RuntimeError):
    """The store did not answer, or answered with an error: nothing was acknowledged."""


class StoreRefused(StoreUnavailable):
    """The store answered 4xx other than 401: the request was wrong (an unknown face, a conflict), not
    the store down. `status` and `message` are the store's, for the caller to pass on."""

    def __init__(self, status: int, message: str):
        super().__init__(f"the face store answered {status}: {message}")
        self.status, self.message = status, message


class StoreClient:
    """The store's REST API as the other services use it: one session, its key, one time-out, and one way
    to fail (StoreUnavailable: nothing was acknowledged)."""

    def __init__(self, base_url: str, timeout: float, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key is not None:
            if not isinstance(api_key, str):  # FACEREC_* values are JSON: 12345 arrives as a number
                raise ValueError("STORE_API_KEY must be a string; quote a key that reads as JSON: '\"12345\"'")
            self.session.headers["X-API-Key"] = api_key

    def call(self, method: str, path: str, **kwargs: Any) -> dict:
        """The store's JSON answer; StoreUnavailable for no answer or anything but a 200 (StoreRefused
        for a 4xx)."""
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise StoreUnavailable(f"the face store at {self.base_url} did not answer ({type(e).__name__})") from None
        if response.status_code == 401:
            raise StoreUnavailable("the face store refused this service's key: set STORE_API_KEY to one of its keys")
        if 400 <= response.status_code < 500:
            raise StoreRefused(response.status_code, _message(response))
        if response.status_code != 200:
            raise StoreUnavailable(f"the face store answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def ping(self) -> bool:
        try:
            self.call("GET", "/health")
            return True
        except StoreUnavailable:
            return False

    def add_faces(self, photo_sha256: str, faces: list[dict], origin: dict | None = None) -> list[dict]:
        """Store one photo's faces (each built by `face_body`), all or none; per face, its ID and matches.
        `origin`: the photo's source, source_sha256 and time, those the client gave."""
        body = {"photo_sha256": photo_sha256, **(origin or {}), "faces": faces}
        return self.call("POST", "/faces", json=body)["faces"]

    def identify(self, descriptors: list[np.ndarray]) -> list[dict]:
        """Per descriptor {"person", "name", "distance"}: the person it clearly is, else person None."""
        body = {"descriptors": [d.tolist() for d in descriptors]}
        return self.call("POST", "/people/identify", json=body)["faces"]


def _message(response: requests.Response) -> str:
    """The `message` of the store's one error shape, else the start of its body."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def face_body(
    descriptor: np.ndarray,
    box: Box,
    thumbnail: bytes,
    quality: float,
    landmarks: list | None = None,
    detector: str = "hog",
) -> dict:
    """One face as `POST /faces` takes it: JSON numbers (exact for float32), never pickle. `detector`:
    how it was found (facerec/vision/faces.py FOUND_BY)."""
    body = {
        "descriptor": descriptor.tolist(),
        "box": box.to_json(),
        "thumbnail": base64.b64encode(thumbnail).decode("ascii"),
        "quality": quality,
        "detector": detector,
    }
    if landmarks is not None:
        body["landmarks"] = landmarks
    return body
