"""A detection worker process: finds the faces of the frame it is given (read from the stream's shared
memory) and describes those the manager does not know yet.

Workers are shared by every stream; each works on one frame at a time, niced below the readers and
the web process, so that when the machine is short of CPU it is detection that slows, not the video.
"""

import os

import cv2
import dlib
import numpy as np

from facerec.vision.faces import Models
from facerec.vision.thumbnails import face_thumbnail

from .shared_frames import FrameRing
from .tracks import iou

# A face overlapping a followed face this much is that face: it needs no new descriptor.
SAME_FACE_IOU = 0.3


def run(conn, models_dir, landmarks, detect_width):
    """The process: answers each ("detect", ...) message with ("faces", ...) or ("gone", ...); returns
    when told to stop, or when the manager is gone (its pipe closes)."""
    os.nice(10)
    cv2.setNumThreads(1)
    models = Models(models_dir, landmarks)
    rings = {}
    conn.send(("ready",))
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            if message[0] == "forget":  # a stream ended: let its shared memory go
                ring = rings.pop(message[1], None)
                if ring is not None:
                    ring.close()
                continue
            _, stream, ring_name, shape, seq, known, thumbnails, threshold = message
            if ring_name not in rings:
                try:
                    rings[ring_name] = FrameRing(ring_name, shape)
                except FileNotFoundError:
                    conn.send(("gone", stream, seq))
                    continue
            got = rings[ring_name].get(seq)
            if got is None:
                conn.send(("gone", stream, seq))
                continue
            conn.send(("faces", stream, seq, find_faces(models, got[0], detect_width, known, thumbnails, threshold)))
    except (BrokenPipeError, EOFError):
        return
    finally:
        for ring in rings.values():
            ring.close()


def find_faces(models, frame, detect_width, known, thumbnails=False, threshold=0.0):
    """[{"box": (left, top, right, bottom), "descriptor": float32[128] or None}] in frame pixels.

    Faces are found on the frame shrunk to `detect_width`, and described on the full frame, each unless
    it overlaps one of the `known` boxes (faces followed and already described). With `thumbnails`,
    each described face also has its "thumbnail" and "quality" (for the store). `threshold` is added to
    HOG's: below 0 it finds more faces, and more that are none.
    """
    height, width = frame.shape[:2]
    scale = min(1.0, detect_width / width)
    small = (
        frame
        if scale == 1
        else cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    )
    rects, _, _ = models.detector.run(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), 0, threshold)
    boxes = [
        _clamped((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), width, height)
        for r in rects
    ]
    new = [i for i, box in enumerate(boxes) if not any(iou(box, k) > SAME_FACE_IOU for k in known)]
    faces = [{"box": box, "descriptor": None} for box in boxes]
    if new:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        shapes = dlib.full_object_detections([models.predictor(rgb, dlib.rectangle(*boxes[i])) for i in new])
        for i, shape, d in zip(new, shapes, models.encoder.compute_face_descriptor(rgb, shapes)):
            faces[i]["descriptor"] = np.asarray(d, dtype=np.float32)
            if thumbnails:
                left, top, right, bottom = boxes[i]
                faces[i]["thumbnail"], faces[i]["quality"] = face_thumbnail(rgb, shape, max(right - left, bottom - top))
    return faces


def _clamped(box, width, height):
    left, top, right, bottom = (round(v) for v in box)
    return max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1)
