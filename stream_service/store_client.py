"""The stream service's side of the store's REST API: who a face is, and (for "store": true) keeping it."""

import base64
import hashlib

import requests


class StoreUnavailable(RuntimeError):
    """The store did not answer, or answered with an error."""


class StoreClient:
    def __init__(self, base_url, timeout, api_key=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key is not None:
            if not isinstance(api_key, str):  # FACEREC_* values are JSON: 12345 arrives as a number
                raise ValueError("STORE_API_KEY must be a string; quote a key that reads as JSON: '\"12345\"'")
            self.session.headers["X-API-Key"] = api_key

    def identify(self, descriptors):
        """Per descriptor {"person", "name", "distance"}: the person it clearly is, else person None."""
        body = {"descriptors": [d.tolist() for d in descriptors]}
        return self._call("POST", "/people/identify", json=body)["faces"]

    def add_face(self, frame_id, face):
        """Store one face of a stream's frame; its {"id", "person", "person_distance", ...}."""
        left, top, right, bottom = face["box"]
        body = {
            "photo_sha256": hashlib.sha256(frame_id.encode()).hexdigest(),
            "faces": [
                {
                    "descriptor": face["descriptor"].tolist(),
                    "box": {"left": left, "top": top, "width": right - left, "height": bottom - top},
                    "thumbnail": base64.b64encode(face["thumbnail"]).decode("ascii"),
                    "quality": face["quality"],
                }
            ],
        }
        return self._call("POST", "/faces", json=body)["faces"][0]

    def _call(self, method, path, **kwargs):
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise StoreUnavailable(f"the face store at {self.base_url} did not answer ({type(e).__name__})") from None
        if response.status_code != 200:
            raise StoreUnavailable(f"the face store answered {response.status_code}: {response.text[:200]}")
        return response.json()
