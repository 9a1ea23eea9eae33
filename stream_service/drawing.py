"""The picture that goes out: each face boxed and labelled, or blurred beyond recognition; a frame no
detection covered in time, blurred all over. Used by the reader (reader.py) and by a call (call.py).
"""

import cv2
import numpy as np

from facerec.vision.boxes import Box

from .messages import DrawnFace

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR: a named person, a person without a name, nobody known.
COLOURS = {"named": (80, 200, 60), "person": (0, 190, 255), "unknown": (60, 60, 230)}


def picture(frame: np.ndarray, faces: list[DrawnFace] | None, fps: int, canvas: np.ndarray | None = None) -> np.ndarray:
    """The frame as it goes out: annotated (faces blurred or boxed), or blurred whole when `faces` is None.
    Drawn on `canvas` (an array of the frame's shape, or the frame itself), else on a copy."""
    return annotate(frame, faces, fps, canvas) if faces is not None else blurred(frame)


def annotate(frame: np.ndarray, faces: list[DrawnFace], fps: int, canvas: np.ndarray | None = None) -> np.ndarray:
    """The frame with each face blurred or boxed and labelled, and the output fps top left, drawn on
    `canvas` (see picture)."""
    out = frame.copy() if canvas is None else canvas
    if out is not frame:
        np.copyto(out, frame)
    height, width = out.shape[:2]
    for face in faces:
        left, top, right, bottom = face.box.corners()
        if face.blur:
            _blur(out, face.box, 2 if face.spread else 4)
            continue
        colour = COLOURS[face.kind]
        thickness = max(2, width // 400)
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness)
        scale = max(0.5, width / 1280)
        (w, h), base = cv2.getTextSize(face.label, FONT, scale, 1)
        y = top - 4 if top - h - base - 4 >= 0 else bottom + h + 4
        cv2.rectangle(out, (left, y - h - base), (left + w + 6, y + base), colour, cv2.FILLED)
        cv2.putText(out, face.label, (left + 3, y), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    scale = max(0.5, width / 1280)
    cv2.putText(out, f"{fps} fps", (8, int(24 * scale) + 4), FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def blurred(frame: np.ndarray) -> np.ndarray:
    """The whole frame blurred: no detection covered it in time, so any face in it may be unknown."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame, (max(2, width // 32), max(2, height // 32)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _blur(out: np.ndarray, box: Box, margin: int = 4) -> None:
    """Blur the face and a margin of 1/`margin` of its size around it (a face moves between
    detections) beyond recognition."""
    left, top, right, bottom = box.corners()
    pad_x, pad_y = (right - left) // margin, (bottom - top) // margin
    left, top = max(left - pad_x, 0), max(top - pad_y, 0)
    right, bottom = min(right + pad_x, out.shape[1]), min(bottom + pad_y, out.shape[0])
    if right - left < 2 or bottom - top < 2:
        return
    region = out[top:bottom, left:right]
    small = cv2.resize(
        region, (max(2, (right - left) // 16), max(2, (bottom - top) // 16)), interpolation=cv2.INTER_AREA
    )
    out[top:bottom, left:right] = cv2.resize(small, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
