"""A stream's reader process: read frames from the source, put each in shared memory for the detection
workers, draw the faces the manager last sent, and encode the annotated JPEG once for every viewer (and,
for a broadcast stream, the same picture in H.264 for every WHEP viewer: relay.py).

It never waits for detection: the boxes drawn are the newest the manager has, so the output keeps the
source's pace whatever the workers do. It talks to the manager's pipe loop (loop.py) over one pipe:
small messages (messages.py: `Opened`, `FrameRead`, `Ended`, `Failed`) out, the faces to draw in.
"""

import os
import time
from multiprocessing.connection import Connection

import cv2
import numpy as np

from .backdrop import Backdrop
from .drawing import picture
from .messages import (
    AddViewer,
    Draw,
    DropViewer,
    Ended,
    Failed,
    FrameOut,
    FrameRead,
    Opened,
    SetBackground,
    SetFilter,
    Stop,
    Watched,
)
from .relay import Relay
from .shared_frames import FrameRing, JpegSlots
from .showing import Shown

# A frame this different from the one before (mean absolute difference of 16x9 grey thumbnails, 0-255)
# starts a new shot: the faces followed until then are gone. Within a shot of the test clip the
# difference stays under 15; its three cuts measure 24 to 28.
CUT_DIFFERENCE = 20
# Frames over 4K are refused: each stream holds 10 of them in shared memory.
MAX_FRAME_PIXELS = 3840 * 2160
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")


def source_problem(source: str) -> str | None:
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


def is_file(source: str) -> bool:
    return "://" not in source and not source.startswith("/dev/video")


def open_capture(source: str) -> cv2.VideoCapture:
    """OpenCV's capture for a file, a camera device or a URL, with time limits on opening and reading.

    FFmpeg decodes with one thread: its frame threads cost more CPU a frame than they save in time
    (docs/performance.md), and on a busy machine CPU is what the video is short of."""
    if source.startswith("/dev/video"):
        return cv2.VideoCapture(source, cv2.CAP_V4L2)
    settings = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10_000]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, settings + [cv2.CAP_PROP_N_THREADS, 1])


def run(
    conn: Connection,
    source: str,
    loop: bool,
    blur: str | None,
    privacy_wait: float,
    names: dict[str, str],
    jpeg_quality: int,
    backdrop: tuple = (None, None),
    broadcast: bool = False,
) -> None:
    """The process: returns when the source ends or fails, or when told to stop; and when the manager is
    gone (its pipe closes: the next message fails), so that it never outlives the service. `backdrop`:
    the background filter and what goes behind the person (backdrop.py); with `broadcast`, WHEP viewers
    may watch too (relay.py)."""
    cv2.setNumThreads(1)
    capture = open_capture(source)
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok or frame is None:
        conn.send(Failed(f"could not read a frame from {source}"))
        return
    height, width = frame.shape[:2]
    if width * height > MAX_FRAME_PIXELS:
        conn.send(Failed(f"its frames are {width}x{height}, larger than 4K ({MAX_FRAME_PIXELS:,} pixels)"))
        return
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if 1 <= fps <= 120 else 30.0
    frames = FrameRing(names["frames"], (height, width), create=True)
    jpegs = JpegSlots(names["jpeg"], height * width * 3 + 65536, create=True)
    relay = Relay(jpegs, jpeg_quality) if broadcast else None
    try:
        frames.slot(0)[:] = frame
        conn.send(Opened(width, height, fps))
        player = Player(conn, frames, jpegs, Shown(blur, privacy_wait), jpeg_quality, Backdrop(*backdrop), relay)
        _play(conn, capture, player, source, loop, fps)
    except (BrokenPipeError, EOFError):
        pass  # the manager is gone: nobody to play for
    finally:
        if relay is not None:  # every WHEP viewer's connection ends with the stream
            relay.close()
        capture.release()
        frames.close(unlink=True)
        jpegs.close(unlink=True)


def _play(conn: Connection, capture: cv2.VideoCapture, player: "Player", source: str, loop: bool, fps: float) -> None:
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
            conn.send(Ended("the file ended") if paced else Failed("the source stopped sending frames"))
            return


def read_into(capture: cv2.VideoCapture, slot: np.ndarray) -> bool:
    """Decode the next frame into `slot`; False when there is none. A live source that changed its frame
    size is scaled back to its first size."""
    ok, frame = capture.read(slot)
    if ok and frame is not slot:  # OpenCV decoded it elsewhere: another size
        cv2.resize(frame, (slot.shape[1], slot.shape[0]), dst=slot)
    return ok


class Player:
    """What the reader does with each frame read: hand it on to detection (its slot of the ring), draw the
    newest faces on the frame to show, and encode that as the JPEG every viewer gets, only while someone
    watches (the manager says so: `Watched`), and hand it to a broadcast's WHEP viewers (`relay`) while
    one is connected. A background filter (backdrop.py) goes on first."""

    def __init__(
        self,
        conn: Connection,
        frames: FrameRing,
        jpegs: JpegSlots,
        shown: Shown,
        jpeg_quality: int,
        backdrop: Backdrop,
        relay: Relay | None = None,
    ) -> None:
        self.conn, self.frames, self.jpegs, self.shown, self.backdrop = conn, frames, jpegs, shown, backdrop
        self.relay = relay
        self.quality = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self.watched = False
        self.outputs: list[float] = []
        self.previous: np.ndarray | None = None
        self.canvas = np.empty(frames.shape, np.uint8)  # the picture is drawn here: the ring stays clean

    def show(self, seq: int, read_at: float) -> bool:
        """The frame in slot `seq`, just read; False when told to stop."""
        frame = self.frames.written(seq, read_at)
        cut, self.previous = is_cut(frame, self.previous)
        while self.conn.poll():
            message = self.conn.recv()
            if isinstance(message, Stop):
                return False
            if isinstance(message, Watched):
                self.watched = message.watched
            elif isinstance(message, SetBackground):
                self.backdrop.set(message.kind, message.background)
            elif isinstance(message, Draw | SetFilter):
                self.shown.told(message)
            elif isinstance(message, AddViewer | DropViewer) and self.relay is not None:
                self.relay.told(message)
        out = self.shown.next(seq, frame, read_at, cut)
        sent = None
        if out is not None:
            out_seq, out_frame, out_read_at, faces = out
            self.outputs = [t for t in self.outputs if t > read_at - 1] + [read_at]
            relay = self.relay if self.relay is not None and self.relay.watched else None
            if self.watched or relay is not None:
                filtered = self.backdrop.apply(out_frame)
                # A frame held back for the privacy filter, or filtered, is a copy of its own: drawn on in place.
                canvas = filtered if self.shown.blur or filtered is not out_frame else self.canvas
                image = picture(filtered, faces, len(self.outputs), canvas)
                if self.watched:
                    ok, jpeg = cv2.imencode(".jpg", image, self.quality)
                    self.jpegs.put(out_seq, jpeg.reshape(-1), out_read_at)
                if relay is not None:
                    relay.put(image, out_seq, out_read_at)
            sent = FrameOut(out_seq, out_read_at, self.watched)
        for message in self.relay.heard() if self.relay is not None else []:
            self.conn.send(message)
        self.conn.send(FrameRead(seq, cut, sent))
        return True


def is_cut(frame: np.ndarray, previous: np.ndarray | None) -> tuple[bool, np.ndarray]:
    """(whether `frame` starts a new shot, its thumbnail: `previous` for the next frame)."""
    step = max(1, frame.shape[1] // 160)  # every step-th pixel is plenty for a 16x9 thumbnail, and cheap
    thumb = cv2.cvtColor(cv2.resize(frame[::step, ::step], (16, 9), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return previous is not None and float(np.mean(cv2.absdiff(thumb, previous))) > CUT_DIFFERENCE, thumb
