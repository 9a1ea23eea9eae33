"""A stream's reader process: read frames from the source, put each in shared memory for the detection
workers, draw the faces the manager last sent, and encode the annotated JPEG once for every viewer.

It never waits for detection: the boxes drawn are the newest the manager has, so the output keeps the
source's pace whatever the workers do. It talks to the manager (stream_service/manager.py) over one
pipe: small messages ("opened", "frame", "ended", "failed") out, the faces to draw in.
"""

import collections
import os
import time

import cv2
import numpy as np

from .backdrop import Backdrop
from .shared_frames import FrameRing, JpegSlots

# A frame this different from the one before (mean absolute difference of 16x9 grey thumbnails, 0-255)
# starts a new shot: the faces followed until then are gone. Within a shot of the test clip the
# difference stays under 15; its three cuts measure 24 to 28.
CUT_DIFFERENCE = 20
# With a privacy filter, detections this many frames from a frame (a third of a second at 30 fps) say
# where its faces are; a face moves too far in more.
NEAR = 10
# Frames over 4K are refused: each stream holds 10 of them in shared memory.
MAX_FRAME_PIXELS = 3840 * 2160
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR: a named person, a person without a name, nobody known.
COLOURS = {"named": (80, 200, 60), "person": (0, 190, 255), "unknown": (60, 60, 230)}


URL_SCHEMES = ("rtsp", "rtsps", "http", "https")


def source_problem(source):
    """Why a source cannot be opened, when that shows without opening it (a missing file); else None."""
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        return None if scheme in URL_SCHEMES else f"a URL source is {', '.join(URL_SCHEMES)}, not {scheme}"
    if not os.path.exists(source):
        return f"there is no {source} on the server"
    if not is_file(source):
        return None
    if not os.path.isfile(source) or not os.access(source, os.R_OK):
        return f"{source} is not a file the service can read"
    return None


def is_file(source):
    return "://" not in source and not source.startswith("/dev/video")


def open_capture(source):
    """OpenCV's capture for a file, a camera device or a URL, with time limits on opening and reading.

    FFmpeg decodes with one thread: its frame threads cost more CPU a frame than they save in time
    (docs/performance.md), and on a busy machine CPU is what the video is short of."""
    if source.startswith("/dev/video"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    settings = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10_000]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, settings + [cv2.CAP_PROP_N_THREADS, 1])


def run(conn, source, loop, blur, privacy_wait, names, jpeg_quality, backdrop=(None, None)):
    """The process: returns when the source ends or fails, or when told to stop; and when the manager is
    gone (its pipe closes: the next message fails), so that it never outlives the service."""
    cv2.setNumThreads(1)
    capture = open_capture(source)
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        conn.send(("failed", f"could not read a frame from {source}"))
        return
    height, width = frame.shape[:2]
    if width * height > MAX_FRAME_PIXELS:
        conn.send(("failed", f"its frames are {width}x{height}, larger than 4K ({MAX_FRAME_PIXELS:,} pixels)"))
        return
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if 1 <= fps <= 120 else 30.0
    frames = FrameRing(names["frames"], (height, width), create=True)
    jpegs = JpegSlots(names["jpeg"], height * width * 3 + 65536, create=True)
    try:
        frames.slot(0)[:] = frame
        conn.send(("opened", width, height, fps))
        player = Player(conn, frames, jpegs, Shown(blur, privacy_wait), jpeg_quality, Backdrop(*backdrop))
        _play(conn, capture, player, source, loop, fps)
    except (BrokenPipeError, EOFError):
        pass  # the manager is gone: nobody to play for
    finally:
        capture.release()
        frames.close(unlink=True)
        jpegs.close(unlink=True)


def _play(conn, capture, player, source, loop, fps):
    """Each frame is decoded straight into its slot of the frame ring (no copy), then shown."""
    paced = is_file(source)  # a file is played at its own frame rate; a live source paces itself
    seq, due = 0, time.monotonic()
    while True:
        if not player.show(seq, time.monotonic()):
            return
        if paced:
            due += 1 / fps
            late = time.monotonic() - due
            if late < 0:
                time.sleep(-late)
            elif late > 1:  # far behind (a busy machine): carry on from now rather than rush
                due = time.monotonic()
        seq += 1
        slot = player.frames.slot(seq)
        ok = read_into(capture, slot)
        if not ok and loop and paced:
            capture.release()
            capture = open_capture(source)
            ok = read_into(capture, slot)
        if not ok:
            conn.send(("ended", "the file ended") if paced else ("failed", "the source stopped sending frames"))
            return


def read_into(capture, slot):
    """Decode the next frame into `slot`; False when there is none. A live source that changed its frame
    size is scaled back to its first size."""
    ok, frame = capture.read(slot)
    if ok and frame is not slot:  # OpenCV decoded it elsewhere: another size
        cv2.resize(frame, (slot.shape[1], slot.shape[0]), dst=slot)
    return ok


class Player:
    """What the reader does with each frame read: hand it on to detection (its slot of the ring), draw the
    newest faces on the frame to show, and encode that as the JPEG every viewer gets, only while someone
    watches (the manager says so: ("watched", bool)). A background filter (backdrop.py) goes on first."""

    def __init__(self, conn, frames, jpegs, shown, jpeg_quality, backdrop):
        self.conn, self.frames, self.jpegs, self.shown, self.backdrop = conn, frames, jpegs, shown, backdrop
        self.quality = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self.watched = False
        self.outputs, self.previous = [], None
        self.canvas = np.empty(frames.shape, np.uint8)  # the picture is drawn here: the ring stays clean

    def show(self, seq, read_at):
        """The frame in slot `seq`, just read; False when told to stop."""
        frame = self.frames.written(seq, read_at)
        cut, self.previous = is_cut(frame, self.previous)
        while self.conn.poll():
            message = self.conn.recv()
            if message[0] == "stop":
                return False
            if message[0] == "watched":
                self.watched = message[1]
            elif message[0] == "background":
                self.backdrop.set(*message[1:])
            else:
                self.shown.told(message)
        out = self.shown.next(seq, frame, read_at, cut)
        if out is not None:
            out_seq, out_frame, out_read_at, faces = out
            self.outputs = [t for t in self.outputs if t > read_at - 1] + [read_at]
            if self.watched:
                filtered = self.backdrop.apply(out_frame)
                # A frame held back for the privacy filter, or filtered, is a copy of its own: drawn on in place.
                canvas = filtered if self.shown.blur or filtered is not out_frame else self.canvas
                ok, jpeg = cv2.imencode(".jpg", picture(filtered, faces, len(self.outputs), canvas), self.quality)
                self.jpegs.put(out_seq, jpeg.reshape(-1), out_read_at)
            out = (out_seq, out_read_at, self.watched)
        self.conn.send(("frame", seq, cut, out))
        return True


def is_cut(frame, previous):
    """(whether `frame` starts a new shot, its thumbnail: `previous` for the next frame)."""
    step = max(1, frame.shape[1] // 160)  # every step-th pixel is plenty for a 16x9 thumbnail, and cheap
    thumb = cv2.cvtColor(cv2.resize(frame[::step, ::step], (16, 9), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return previous is not None and float(np.mean(cv2.absdiff(thumb, previous))) > CUT_DIFFERENCE, thumb


def picture(frame, faces, fps, canvas=None):
    """The frame as it goes out: annotated (faces blurred or boxed), or blurred whole when `faces` is None.
    Drawn on `canvas` (an array of the frame's shape, or the frame itself), else on a copy."""
    return annotate(frame, faces, fps, canvas) if faces is not None else blurred(frame)


class Shown:
    """Which frame goes out next, with which faces drawn on it.

    The faces come from detections (each of one frame, `seq`), never from across a cut. Without a
    privacy filter, each frame goes out as it is read, with the newest faces. With one, a frame waits
    (at most `wait` seconds) for a detection of itself or of a frame at most NEAR frames later in the same
    shot, and is blurred where that detection and the last one before it (as near, same shot) found
    faces: a face is blurred from the first frame it is in, where it is in that frame. A frame no
    detection covered in time goes out blurred all over.
    """

    def __init__(self, blur, wait):
        self.blur, self.wait = blur, wait
        self.detected = {}  # detected frame's seq -> its faces, the newest labels
        self.cuts = []  # seqs of frames that start a new shot
        self.waiting = collections.deque()  # (seq, frame, read time) not yet shown (privacy filter only)

    def told(self, message):
        """The manager's ("faces", faces, seq of the detected frame) or ("filter", filter: switched live)."""
        if message[0] == "faces":
            self.faces_of(message[2], message[1])
        elif message[0] == "filter":
            self.blur = message[1]
            self.waiting.clear()  # frames held back for the old filter are skipped

    def faces_of(self, seq, faces):
        self.detected[seq] = faces

    def next(self, seq, frame, read_at, cut):
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

    def _covering(self, seq, newest=False):
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


def spanned(before, after):
    """The faces of a frame between two detections: a face both found is where it was, where it went or
    in between (the box spanning both); a face only one found may have moved anywhere near, so its box
    gets a wider margin (`spread`)."""
    earlier = {face["track"]: face for face in before}
    faces = []
    for face in after:
        other = earlier.pop(face["track"], None)
        if other is None:
            faces.append({**face, "spread": True})
        else:
            (l1, t1, r1, b1), (l2, t2, r2, b2) = face["box"], other["box"]
            faces.append({**face, "box": (min(l1, l2), min(t1, t2), max(r1, r2), max(b1, b2))})
    return faces + [{**face, "spread": True} for face in earlier.values()]


def annotate(frame, faces, fps, canvas=None):
    """The frame with each face blurred or boxed and labelled, and the output fps top left, drawn on
    `canvas` (see picture)."""
    out = frame.copy() if canvas is None else canvas
    if out is not frame:
        np.copyto(out, frame)
    height, width = out.shape[:2]
    for face in faces:
        left, top, right, bottom = face["box"]
        if face["blur"]:
            _blur(out, face["box"], 2 if face.get("spread") else 4)
            continue
        colour = COLOURS[face["kind"]]
        thickness = max(2, width // 400)
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness)
        scale = max(0.5, width / 1280)
        (w, h), base = cv2.getTextSize(face["label"], FONT, scale, 1)
        y = top - 4 if top - h - base - 4 >= 0 else bottom + h + 4
        cv2.rectangle(out, (left, y - h - base), (left + w + 6, y + base), colour, cv2.FILLED)
        cv2.putText(out, face["label"], (left + 3, y), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    scale = max(0.5, width / 1280)
    cv2.putText(out, f"{fps} fps", (8, int(24 * scale) + 4), FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def blurred(frame):
    """The whole frame blurred: no detection covered it in time, so any face in it may be unknown."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame, (max(2, width // 32), max(2, height // 32)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _blur(out, box, margin=4):
    """Blur the face and a margin of 1/`margin` of its size around it (a face moves between
    detections) beyond recognition."""
    left, top, right, bottom = box
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
