"""The stream service's side of the store's REST API: who a face is, and (for "store": true) keeping it."""

import base64
import hashlib

from facerec.store_api import StoreAPI


class StoreClient:
    def __init__(self, base_url, timeout, api_key=None):
        self.api = StoreAPI(base_url, timeout, api_key)

    def identify(self, descriptors):
        """Per descriptor {"person", "name", "distance"}: the person it clearly is, else person None."""
        body = {"descriptors": [d.tolist() for d in descriptors]}
        return self.api.call("POST", "/people/identify", json=body)["faces"]

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
        return self.api.call("POST", "/faces", json=body)["faces"][0]
