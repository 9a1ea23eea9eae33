"""Recognition: a thread of its own asks the store who each followed face is, so that a slow store never
holds up the video.

At once for a new face, then every STREAM_IDENTIFY_EVERY seconds for every face on screen (a name given
on the people page meanwhile shows then). With "store": true, each new descriptor is stored first. A
store that does not answer leaves the faces unknown; the video goes on.
"""

import hashlib
import logging
import time
from typing import Any, Protocol

import numpy as np

from facerec.service.store_api import StoreUnavailable, face_body

from .messages import FoundFace
from .registry import Registry
from .stream import Stream
from .tracks import Track

log = logging.getLogger(__name__)

NOBODY = {"person": None, "name": None, "distance": None}


class Store(Protocol):
    """What recognition asks of the store (facerec/service/store_api.py's StoreClient)."""

    def identify(self, descriptors: list[np.ndarray]) -> list[dict]: ...

    def add_faces(self, photo_sha256: str, faces: list[dict], origin: dict | None = None) -> list[dict]: ...


class Recognition:
    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry, self.store = registry, store
        self.every = registry.config["STREAM_IDENTIFY_EVERY"]
        self._identified_at = 0.0

    def run(self) -> None:
        """The thread: until the service closes."""
        registry = self.registry
        while not registry.closed.is_set():
            with registry.lock:
                registry.to_recognise.wait_for(lambda: registry.closed.is_set() or self._due(), timeout=self.every)
                work = [job for stream in registry.streams.values() if (job := _work(stream))]
                self._identified_at = time.monotonic()
            for stream, tracks, means, pending in work:
                try:
                    for track, face in pending:
                        self._keep(f"{stream.id}:{track.id}:{len(track.descriptors)}:{time.time()}", face)
                    answers = self.store.identify(means) if means else []
                except StoreUnavailable as e:
                    log.warning("streams: %s", e)
                    answers = [NOBODY] * len(tracks)
                with registry.lock:
                    self._recognised(stream, tracks, answers)

    def _keep(self, frame_id: str, face: FoundFace) -> None:
        """Store one face of a stream's frame, as a photo of its own ("store": true)."""
        assert face.descriptor is not None and face.thumbnail is not None and face.quality is not None
        body = face_body(face.descriptor, face.box, face.thumbnail, face.quality, detector=face.detector)
        self.store.add_faces(hashlib.sha256(frame_id.encode()).hexdigest(), [body])

    def _due(self) -> bool:
        if time.monotonic() - self._identified_at >= self.every:
            return True
        return any(
            s.to_store or any(t.descriptors and not t.announced for t in s.tracks.live.values())
            for s in self.registry.streams.values()
        )

    def _recognised(self, stream: Stream, tracks: list[Track], answers: list[dict[str, Any]]) -> None:
        changed = False
        for track, answer in zip(tracks, answers):
            if stream.tracks.live.get(track.id) is not track:
                continue  # it left meanwhile
            before = (track.person, track.name)
            track.person, track.name, track.distance = answer["person"], answer["name"], answer["distance"]
            if not track.announced:
                track.announced = True
                stream.announce("appeared", track)
                changed = True
            elif (track.person, track.name) != before:
                stream.announce("changed", track)
                changed = True
        if changed and stream.running:
            self.registry.draw(stream)


def _work(
    stream: Stream,
) -> tuple[Stream, list[Track], list[np.ndarray], list[tuple[Track, FoundFace]]] | None:
    """What to ask the store about a stream's faces (taking its descriptors to store), or None."""
    tracks = [t for t in stream.tracks.live.values() if t.descriptors]
    pending, stream.to_store = stream.to_store, []
    if not tracks and not pending:
        return None
    return stream, tracks, [t.mean() for t in tracks], pending
