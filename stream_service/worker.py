"""A detection worker process: finds the faces of the frame it is given (read from the stream's shared
memory) and describes those the manager does not know yet.

Workers are shared by every stream; each works on one frame at a time, niced below the readers and
the web process, so that when the machine is short of CPU it is detection that slows, not the video.
"""

import os

import cv2

from facerec.vision.boxes import Box
from facerec.vision.faces import FRAME_MIN_FACE_PX, FRAME_PROPOSAL_LONG_SIDE, Models, find_frame_faces

from .shared_frames import FrameRing
from .tracks import iou

# A face YuNet proposes that overlaps a face found this much is that face.
SAME_FACE_IOU = 0.3
# A privacy filter can blur only the faces detection finds: it asks HOG for more. On every second frame
# of the test clip, find_frame_faces found 92 faces at HOG's own threshold and 99 at -0.3 (each of the
# 78 that HOG's whole scan finds at its own threshold among them). HOG still turns down faces YuNet
# sees well, turned aside: three of the four faces of the audience shot at 7.5 s.
PRIVACY_THRESHOLD = -0.3


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
            _, stream, ring_name, shape, seq, known, thumbnails, private = message
            if ring_name not in rings:
                try:
                    rings[ring_name] = FrameRing(ring_name, shape)
                except FileNotFoundError:
                    conn.send(("gone", stream, seq))
                    continue
            got = rings[ring_name].get(seq, detect_width)
            if got is None:
                conn.send(("gone", stream, seq))
                continue
            faces = find_faces(models, got[0], shape[1] / got[0].shape[1], known, thumbnails, private)
            conn.send(("faces", stream, seq, faces))
    except (BrokenPipeError, EOFError):
        return
    finally:
        for ring in rings.values():
            ring.close()


def find_faces(models, frame, scale, known, thumbnails=False, private=False):
    """[{"box": (left, top, right, bottom), "descriptor": float32[128] or None}] in the pixels of the
    stream's frames, of which `frame` is one shrunk `scale` times (detection costs what the shrunk
    frame's size does, whatever the source's).

    The faces are found by the pipeline's find_frame_faces, and described unless they overlap one of the
    `known` boxes (faces followed and already described). With `thumbnails`, each described face also
    has its "thumbnail" and "quality" (for the store). For a privacy filter (`private`), which would
    rather blur too much than too little, HOG accepts lower scores (PRIVACY_THRESHOLD), and the faces
    YuNet proposed that HOG did not confirm are faces too, never described.
    """
    height, width = round(frame.shape[0] * scale), round(frame.shape[1] * scale)

    def in_frame(box):
        left, top, right, bottom = box.scaled(scale).corners()
        return max(left, 0), max(top, 0), min(right, width - 1), min(bottom, height - 1)

    followed = [Box.from_corners(*known_box).scaled(1 / scale) for known_box in known]
    threshold = PRIVACY_THRESHOLD if private else 0.0
    faces = []
    for face in find_frame_faces(models, frame, known=followed, threshold=threshold):
        found = {"box": in_frame(face.box), "descriptor": face.descriptor}
        if thumbnails and face.descriptor is not None:
            found["thumbnail"], found["quality"] = face.thumbnail, face.quality
        faces.append(found)
    if private:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        for x, y, w, h, _ in models.proposer.propose(rgb, FRAME_MIN_FACE_PX, FRAME_PROPOSAL_LONG_SIDE):
            box = in_frame(Box.from_corners(x, y, x + w, y + h))
            if not any(iou(box, face["box"]) > SAME_FACE_IOU for face in faces):
                faces.append({"box": box, "descriptor": None})
    return faces
