"""A broadcast stream's WHEP viewers, from its reader process (reader.py): the frames it shows, encoded
once in H.264 and relayed to every viewer by a call's own Broadcast (broadcast.py), unchanged.

The reader is a plain loop paced by its source, and aiortc is asyncio: the Broadcast runs on an event
loop in a thread of the reader. A thread rather than a process of its own, because the shown frame is
already here (a process would need another shared ring, another pipe and another thing to stop), and
because a thread ends with the reader whatever ends it: the reader's `finally` closes every viewer's
connection. The encoding itself runs in the loop's executor and libx264 lets go of the GIL, so the
reader's own loop is not held up by it.

Only the reader's main thread writes to its pipe: what the Broadcast says (`ViewerAnswer`,
`ViewerLeft`) waits in a queue that the reader sends with its next frame.
"""

import asyncio
import contextlib
import dataclasses
import fractions
import queue
import threading
from typing import Any

import numpy as np

from .broadcast import Broadcast
from .messages import AddViewer, DropViewer
from .shared_frames import JpegSlots

# Seconds the viewers' connections have to close when the stream ends: within the STOP_WAIT (3 s) a
# reader has before it is terminated.
CLOSE_WAIT = 2
# RTP's clock for video: a frame's timestamp is its read time in 1/90000 s, so skipped frames keep time.
VIDEO_CLOCK = fractions.Fraction(1, 90000)


@dataclasses.dataclass(frozen=True)
class Stamp:
    """What Broadcast reads of a frame besides its pixels: its size and its timestamp."""

    width: int
    height: int
    pts: int
    time_base: fractions.Fraction


class Relay:
    """The WHEP viewers of one broadcast stream: `told` the manager's AddViewer and DropViewer, `put`
    each shown frame, `heard` what to tell the manager, `close` at the end."""

    def __init__(self, jpegs: JpegSlots, jpeg_quality: int) -> None:
        self.said: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broadcast", daemon=True)
        self.thread.start()
        # Never `watched`: the reader encodes the MJPEG viewers' JPEGs itself, into the same slots.
        self.broadcast = Broadcast(self.said.put, jpegs, jpeg_quality)

    @property
    def watched(self) -> bool:
        """Whether a WHEP viewer is connected (the reader draws the picture only for someone)."""
        return bool(self.broadcast.viewers)

    def told(self, message: AddViewer | DropViewer) -> None:
        asyncio.run_coroutine_threadsafe(self.broadcast.told(message), self.loop)

    def put(self, image: np.ndarray, seq: int, read_at: float) -> None:
        """A frame shown (BGR), for the viewers: copied, since the reader draws the next on the same canvas.
        H.264's 4:2:0 pictures have even sides: a source's odd last row or column is left out."""
        height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        stamp = Stamp(width, height, int(read_at / VIDEO_CLOCK), VIDEO_CLOCK)
        self.loop.call_soon_threadsafe(self.broadcast.put, stamp, image[:height, :width].copy(), seq, read_at)

    def heard(self) -> list[Any]:
        """What the viewers' side has said since last asked, for the manager."""
        messages = []
        with contextlib.suppress(queue.Empty):
            while True:
                messages.append(self.said.get_nowait())
        return messages

    def close(self) -> None:
        """Every viewer's connection ends, then the loop and its thread."""
        closed = asyncio.run_coroutine_threadsafe(self.broadcast.close(), self.loop)
        with contextlib.suppress(TimeoutError):
            closed.result(timeout=CLOSE_WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=1)
        if not self.thread.is_alive():
            self.loop.close()
