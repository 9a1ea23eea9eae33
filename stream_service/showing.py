"""Which frame goes out next, with which faces drawn on it: the privacy filter's promise.

Used by a stream's reader (reader.py) and a call (call.py), each frame as it is read.
"""

import collections
import dataclasses
import time

import numpy as np

from facerec.vision.boxes import Box

from .messages import Draw, DrawnFace, SetFilter

# With a privacy filter, detections this many frames from a frame (a third of a second at 30 fps) say
# where its faces are; a face moves too far in more.
NEAR = 10

# (seq, frame, read time, faces or None: blur it all over)
Out = tuple[int, np.ndarray, float, list[DrawnFace] | None]


class Shown:
    """Which frame goes out next, with which faces drawn on it.

    The faces come from detections (each of one frame, `seq`), never from across a cut. Without a
    privacy filter, each frame goes out as it is read, with the newest faces. With one, a frame waits
    (at most `wait` seconds) for a detection of itself or of a frame at most NEAR frames later in the same
    shot, and is blurred where that detection and the last one before it (as near, same shot) found
    faces: a face is blurred from the first frame it is in, where it is in that frame. A frame no
    detection covered in time goes out blurred all over.
    """

    def __init__(self, blur: str | None, wait: float) -> None:
        self.blur, self.wait = blur, wait
        self.detected: dict[int, list[DrawnFace]] = {}  # detected frame's seq -> its faces, the newest labels
        self.cuts: list[int] = []  # seqs of frames that start a new shot
        # (seq, frame, read time) not yet shown (privacy filter only)
        self.waiting: collections.deque[tuple[int, np.ndarray, float]] = collections.deque()

    def told(self, message: Draw | SetFilter) -> None:
        """The manager's faces to draw, or the filter switched live."""
        if isinstance(message, Draw):
            self.faces_of(message.seq, message.faces)
        elif isinstance(message, SetFilter):
            self.blur = message.filter
            self.waiting.clear()  # frames held back for the old filter are skipped

    def faces_of(self, seq: int, faces: list[DrawnFace]) -> None:
        self.detected[seq] = faces

    def next(self, seq: int, frame: np.ndarray, read_at: float, cut: bool) -> Out | None:
        """(seq, frame, read time, faces or None: blur it all) to show now, or None: nothing yet."""
        if cut:
            self.cuts = self.cuts[-10:] + [seq]
        if len(self.detected) > 60:
            for old in sorted(self.detected)[:-30]:
                del self.detected[old]
        if not self.blur:
            return seq, frame, read_at, self._covering(seq, newest=True) or []
        self.waiting.append((seq, frame.copy(), read_at))
        if len(self.waiting) >= 3 and self._covering(self.waiting[1][0]) is not None:
            self.waiting.popleft()  # behind: skip one frame to catch up
        first, first_frame, first_read = self.waiting[0]
        faces = self._covering(first)
        if faces is None and time.monotonic() - first_read < self.wait:
            return None
        self.waiting.popleft()
        return first, first_frame, first_read, faces

    def _covering(self, seq: int, newest: bool = False) -> list[DrawnFace] | None:
        """With `newest`, the faces of the newest detection of frame `seq`'s shot up to it. Else the faces
        of the first detection at or after `seq` and at most NEAR frames later, with those of the last
        one before it (as near); both of its shot. None when there is none."""
        shot = max([c for c in self.cuts if c <= seq], default=0)
        if newest:
            found = [m for m in self.detected if shot <= m <= seq]
            return self.detected[max(found)] if found else None
        end = min([c for c in self.cuts if c > seq], default=seq + NEAR + 1)
        after = [m for m in self.detected if seq <= m < min(end, seq + NEAR + 1)]
        if not after:
            return None
        before = [m for m in self.detected if max(shot, seq - NEAR) <= m < seq]
        return spanned(self.detected[max(before)] if before else [], self.detected[min(after)])


def spanned(before: list[DrawnFace], after: list[DrawnFace]) -> list[DrawnFace]:
    """The faces of a frame between two detections: a face both found is where it was, where it went or
    in between (the box spanning both); a face only one found may have moved anywhere near, so its box
    gets a wider margin (`spread`)."""
    earlier = {face.track: face for face in before}
    faces = []
    for face in after:
        other = earlier.pop(face.track, None)
        if other is None:
            faces.append(dataclasses.replace(face, spread=True))
        else:
            a, b = face.box, other.box
            box = Box.from_corners(
                min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom)
            )
            faces.append(dataclasses.replace(face, box=box))
    return faces + [dataclasses.replace(face, spread=True) for face in earlier.values()]
