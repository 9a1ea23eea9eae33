"""A detection worker process: finds the faces of the frame it is given (read from the stream's shared
memory) and describes those the manager does not know yet. The pool (pool.py) starts and feeds them.

Workers are shared by every stream; each works on one frame at a time, niced below the readers and
the web process, so that when the machine is short of CPU it is detection that slows, not the video.
"""

import os
from multiprocessing.connection import Connection

import cv2
import numpy as np

from facerec.vision.boxes import Box, iou
from facerec.vision.faces import FRAME_MIN_FACE_PX, FRAME_PROPOSAL_LONG_SIDE, Models, find_frame_faces

from .messages import Detect, Forget, Found, FoundFace, Gone, Ready, Stop
from .shared_frames import FrameRing

# A face YuNet proposes that overlaps a face found this much is that face.
SAME_FACE_IOU = 0.3
# A privacy filter can blur only the faces detection finds: it asks HOG for more. On every second frame
# of the test clip, find_frame_faces found 92 faces at HOG's own threshold and 99 at -0.3 (each of the
# 78 that HOG's whole scan finds at its own threshold among them). HOG still turns down faces YuNet
# sees well, turned aside: three of the four faces of the audience shot at 7.5 s.
PRIVACY_THRESHOLD = -0.3


def run(conn: Connection, models_dir: str | None, landmarks: int, detect_width: int) -> None:
    """The process: answers each `Detect` with `Found` or `Gone`; returns when told to `Stop`, or when
    the manager is gone (its pipe closes)."""
    os.nice(10)
    cv2.setNumThreads(1)
    models = Models(models_dir, landmarks)
    rings: dict[str, FrameRing] = {}
    conn.send(Ready())
    try:
        while True:
            message = conn.recv()
            if isinstance(message, Stop):
                return
            if isinstance(message, Forget):  # a stream ended: let its shared memory go
                ring = rings.pop(message.ring, None)
                if ring is not None:
                    ring.close()
                continue
            conn.send(_detect(models, rings, message, detect_width))
    except (BrokenPipeError, EOFError):
        return
    finally:
        for ring in rings.values():
            ring.close()


def _detect(models: Models, rings: dict[str, FrameRing], job: Detect, detect_width: int) -> Found | Gone:
    """The faces of the job's frame, read from its ring (mapped once, then kept until forgotten)."""
    if job.ring not in rings:
        try:
            rings[job.ring] = FrameRing(job.ring, job.shape)
        except FileNotFoundError:
            return Gone(job.stream, job.seq)
    got = rings[job.ring].get(job.seq, detect_width)
    if got is None:
        return Gone(job.stream, job.seq)
    frame = got[0]
    scale = job.shape[1] / frame.shape[1]
    return Found(job.stream, job.seq, detect_stream_faces(models, frame, scale, job.known, job.thumbnails, job.private))


def detect_stream_faces(
    models: Models,
    frame: np.ndarray,
    scale: float,
    known: list[Box],
    thumbnails: bool = False,
    private: bool = False,
) -> list[FoundFace]:
    """The faces in the pixels of the stream's frames, of which `frame` is one shrunk `scale` times (detection costs what the shrunk
    frame's size does, whatever the source's).

    The faces are found by the pipeline's find_frame_faces, and described unless they overlap one of the
    `known` boxes (faces followed and already described). With `thumbnails`, each described face also
    has its thumbnail and quality (for the store). For a privacy filter (`private`), which would
    rather blur too much than too little, HOG accepts lower scores (PRIVACY_THRESHOLD), and the faces
    YuNet proposed that HOG did not confirm are faces too, never described.
    """
    height, width = round(frame.shape[0] * scale), round(frame.shape[1] * scale)

    def in_frame(box: Box) -> Box:
        left, top, right, bottom = box.scaled(scale).corners()
        return Box.from_corners(max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1))

    followed = [box.scaled(1 / scale) for box in known]
    threshold = PRIVACY_THRESHOLD if private else 0.0
    faces = [
        FoundFace(in_frame(face.box), face.descriptor, face.thumbnail, face.quality, face.detector)
        if thumbnails and face.descriptor is not None
        else FoundFace(in_frame(face.box), face.descriptor, detector=face.detector)
        for face in find_frame_faces(models, frame, known=followed, threshold=threshold)
    ]
    if private:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        for x, y, w, h, _ in models.proposer.propose(rgb, FRAME_MIN_FACE_PX, FRAME_PROPOSAL_LONG_SIDE):
            box = in_frame(Box.from_corners(x, y, x + w, y + h))
            if not any(iou(box, face.box) > SAME_FACE_IOU for face in faces):
                faces.append(FoundFace(box, None))
    return faces
