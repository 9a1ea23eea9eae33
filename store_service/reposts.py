"""A photo posted again answers with the faces stored for it, under their IDs.

A face's ID is the hash of its descriptor, and another detector (the DETECTOR setting), dlib build or
decode finds the same face with a slightly different box and descriptor. Without this, a photo stored
before such a change and posted again would store each of its faces a second time under a new ID.
"""

import numpy as np

from facerec.vision.boxes import Box, iou

from .storage.db import Database

# The same face: the same photo (SHA-256), boxes overlapping at IoU >= 0.5 (the benchmark's "same face")
# and descriptors within 0.3 (between the two detectors a face's descriptor moved by 0.2 at most on the
# shared photo sets; another person lies about 0.6 or more away).
SAME_FACE_IOU = 0.5
SAME_FACE_DISTANCE = 0.3


def stored_twins(db: Database, photo_sha256: str, boxes: list[tuple], vectors: list[np.ndarray]) -> list[str | None]:
    """Per posted face ((left, top, width, height), descriptor), the ID of the stored face of the same
    photo that it is, or None. Each stored face answers for one posted face, the best overlap first."""
    rows = db.execute(
        "SELECT id, box_left, box_top, box_width, box_height FROM faces WHERE photo_sha256 = ?", (photo_sha256,)
    ).fetchall()
    pairs = sorted(
        ((iou(Box(*box), Box(*row[1:])), i, j) for i, box in enumerate(boxes) for j, row in enumerate(rows)),
        reverse=True,
    )
    twins: list[str | None] = [None] * len(boxes)
    taken: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < SAME_FACE_IOU:
            break
        stored = rows[j][0]
        if (
            twins[i] is None
            and j not in taken
            and np.linalg.norm(db.index.vector(stored) - vectors[i]) <= SAME_FACE_DISTANCE
        ):
            twins[i] = stored
            taken.add(j)
    return twins
