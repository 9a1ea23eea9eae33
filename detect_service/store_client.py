"""The detect service's side of the store's REST API (JSON, never pickle)."""

import base64

import requests


class StoreUnavailable(RuntimeError):
    """The store did not answer, or answered with an error: nothing was acknowledged."""


class StoreClient:
    def __init__(self, base_url, timeout, api_key=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key is not None:
            if not isinstance(api_key, str):  # FACEREC_* values are JSON: 12345 arrives as a number
                raise ValueError("STORE_API_KEY must be a string; quote a key that reads as JSON: '\"12345\"'")
            self.session.headers["X-API-Key"] = api_key

    def add_faces(self, photo_sha256, faces, origin):
        """Store one photo's faces (all or none); per face, its ID and its matches. `origin`: the
        photo's source, source_sha256 and time, those the client gave."""
        body = {
            "photo_sha256": photo_sha256,
            **origin,
            "faces": [
                {
                    "descriptor": f.descriptor.tolist(),
                    "box": f.box,
                    "thumbnail": base64.b64encode(f.thumbnail).decode("ascii"),
                    "quality": f.quality,
                    "landmarks": f.landmarks,
                }
                for f in faces
            ],
        }
        return self._call("POST", "/faces", json=body)["faces"]

    def ping(self):
        try:
            self._call("GET", "/health")
            return True
        except StoreUnavailable:
            return False

    def _call(self, method, path, **kwargs):
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise StoreUnavailable(f"the face store at {self.base_url} did not answer ({type(e).__name__})") from None
        if response.status_code == 401:
            raise StoreUnavailable(
                "the face store refused the detect service's key: set STORE_API_KEY to one of its keys"
            )
        if response.status_code != 200:
            raise StoreUnavailable(f"the face store answered {response.status_code}: {response.text[:200]}")
        return response.json()
