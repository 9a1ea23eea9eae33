"""Faces followed from detection to detection, so that a person keeps one box and one label.

A detection's faces are matched to the faces followed by how much their boxes overlap (IoU, greedy,
best first), then by how near they are. A followed face is described (encoded) only its first few times, and looked up in the
store from its mean descriptor; a face not seen for LOST_AFTER seconds, or a cut to a new shot, ends it.
Pure bookkeeping, no processes and no HTTP: the manager calls it under its lock.
"""

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from facerec.service.clock import utc_now
from facerec.vision.boxes import Box, iou

from .messages import DrawnFace, FoundFace

MATCH_IOU = 0.2  # a detected box overlapping a followed face's last box this much is that face
LOST_AFTER = 1.0  # seconds unseen after which a face has left
DESCRIPTORS = 3  # descriptors taken of each face: its first three detections, at least SPACING apart
SPACING = 0.2
# A new descriptor this far from the face's mean is someone else in the same place: video frames of one
# face lie up to 0.67 apart (0.47 median) in the test clip, its two people 0.58 to 0.77.
SOMEONE_ELSE = 0.75


def _centre_distance(a: Box, b: Box) -> float:
    return ((a.left + a.right - b.left - b.right) ** 2 + (a.top + a.bottom - b.top - b.bottom) ** 2) ** 0.5 / 2


@dataclass
class Track:
    id: int
    box: Box
    seen: float  # time.monotonic() of the last detection that found it
    since: str = field(default_factory=utc_now)
    descriptors: list[np.ndarray] = field(default_factory=list)
    described: float = 0.0  # when its last descriptor was taken
    person: int | None = None
    name: str | None = None
    distance: float | None = None
    announced: bool = False  # its "appeared" event has been sent

    def mean(self) -> np.ndarray:
        return np.mean(self.descriptors, axis=0)

    def kind(self) -> str:
        return "named" if self.name else "person" if self.person is not None else "unknown"

    def label(self) -> str:
        return self.name or (f"person {self.person}" if self.person is not None else "unknown")


class Tracks:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.live: dict[int, Track] = {}  # id -> Track
        self._ids = itertools.count(1)

    def known_boxes(self) -> list[Box]:
        """Boxes of the faces that need no new descriptor now (the workers describe the others)."""
        now = self.clock()
        return [
            t.box
            for t in self.live.values()
            if t.descriptors and (len(t.descriptors) >= DESCRIPTORS or now - t.described < SPACING)
        ]

    def update(self, faces: list[FoundFace]) -> tuple[list[tuple[Track, FoundFace]], list[Track]]:
        """Match one detection's faces; returns the tracks that got a new
        descriptor and the tracks that ended."""
        now = self.clock()
        pairs = sorted(
            ((iou(f.box, t.box), i, t.id) for i, f in enumerate(faces) for t in self.live.values()), reverse=True
        )
        matched: dict[int, int] = {}  # face's index -> track's id
        used: set[int] = set()
        for overlap, i, track_id in pairs:
            if overlap < MATCH_IOU:
                break
            if i not in matched and track_id not in used:
                matched[i] = track_id
                used.add(track_id)
        # A face that moved fast between two detections overlaps little: the nearest face followed
        # within a box's width of it is still that face.
        near = sorted(
            (_centre_distance(f.box, t.box), i, t.id)
            for i, f in enumerate(faces)
            for t in self.live.values()
            if i not in matched and t.id not in used
        )
        for distance, i, track_id in near:
            if distance <= faces[i].box.width and i not in matched and track_id not in used:
                matched[i] = track_id
                used.add(track_id)
        described: list[tuple[Track, FoundFace]] = []
        ended: list[Track] = []
        for i, face in enumerate(faces):
            track = self.live.get(matched[i]) if i in matched else None
            d = face.descriptor
            if (
                track is not None
                and d is not None
                and track.descriptors
                and np.linalg.norm(track.mean() - d) > SOMEONE_ELSE
            ):
                ended.append(self.live.pop(track.id))  # someone else stepped in: a new face
                track = None
            if track is None:
                track = Track(next(self._ids), face.box, now)
                self.live[track.id] = track
            track.box, track.seen = face.box, now
            if d is not None and len(track.descriptors) < DESCRIPTORS:
                track.descriptors.append(d)
                track.described = now
                described.append((track, face))
        for track in list(self.live.values()):
            if now - track.seen > LOST_AFTER:
                ended.append(self.live.pop(track.id))
        return described, ended

    def cut(self) -> list[Track]:
        """A new shot: every face followed has left."""
        ended = list(self.live.values())
        self.live.clear()
        return ended

    def overlay(self, blur: str | None) -> list[DrawnFace]:
        """What the reader draws: per face its box, label, kind and whether it is blurred."""
        return [
            DrawnFace(
                t.id, t.box, t.label(), t.kind(), blur == "blur-all" or (blur == "blur-unknown" and t.kind() != "named")
            )
            for t in self.live.values()
        ]
