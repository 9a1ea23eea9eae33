"""The detect service's side of the store's REST API (JSON, never pickle)."""

import base64

from facerec.store_api import StoreAPI, StoreUnavailable


class StoreClient:
    def __init__(self, base_url, timeout, api_key=None):
        self.api = StoreAPI(base_url, timeout, api_key)

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
                    "detector": f.detector,
                }
                for f in faces
            ],
        }
        return self.api.call("POST", "/faces", json=body)["faces"]

    def ping(self):
        try:
            self.api.call("GET", "/health")
            return True
        except StoreUnavailable:
            return False
