"""Frames between processes through shared memory, never pickled.

A stream's reader writes every frame it reads into a ring of a few slots (`FrameRing`) and every
annotated JPEG it encodes into two slots (`JpegSlots`); detection workers and the web process read them
by sequence number. A slot holds its frame's sequence number, set to -1 while it is written: a reader
that copies a slot checks the number before and after, so a slot overwritten meanwhile reads as gone
(the newest frame wins), never as a torn frame.
"""

from collections.abc import Callable
from multiprocessing import shared_memory

import cv2
import numpy as np

FRAME_SLOTS = 8  # 8 frames: a worker has about a quarter of a second to copy the frame it was given
JPEG_SLOTS = 2


class _Slots:
    """`slots` byte areas of `size` bytes in one shared memory block, after a header per slot:
    sequence number, read time (time.monotonic() of the reader) and length."""

    def __init__(self, name: str, slots: int, size: int, create: bool) -> None:
        header = 24 * slots
        data = -(-header // 64) * 64  # the data starts 64-byte aligned
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=data + slots * size if create else 0)
        self.slots, self.size = slots, size
        self.seqs = np.ndarray((slots,), np.int64, self.shm.buf, 0)
        self.times = np.ndarray((slots,), np.float64, self.shm.buf, 8 * slots)
        self.lengths = np.ndarray((slots,), np.int64, self.shm.buf, 16 * slots)
        self.data = np.ndarray((slots, size), np.uint8, self.shm.buf, data)
        if create:
            self.seqs[:] = -1

    def _put(self, seq: int, data: np.ndarray, t: float) -> int:
        slot = seq % self.slots
        self.seqs[slot] = -1
        self.data[slot, : len(data)] = data
        self.times[slot], self.lengths[slot] = t, len(data)
        self.seqs[slot] = seq
        return slot

    def _get(self, seq: int, copy: Callable[[np.ndarray], np.ndarray] = np.copy) -> tuple[np.ndarray, float] | None:
        """(`copy` of the slot's bytes, read time), or None when that frame is gone."""
        slot = seq % self.slots
        if self.seqs[slot] != seq:
            return None
        data, t = copy(self.data[slot, : self.lengths[slot]]), float(self.times[slot])
        return (data, t) if self.seqs[slot] == seq else None

    def close(self, unlink: bool = False) -> None:
        del self.seqs, self.times, self.lengths, self.data  # numpy views pin the mapping
        self.shm.close()
        if unlink:
            self.shm.unlink()


class FrameRing(_Slots):
    """The last FRAME_SLOTS frames (BGR, height x width) of one stream."""

    def __init__(self, name: str, shape: tuple[int, ...], create: bool = False) -> None:
        self.shape = (shape[0], shape[1], 3)
        super().__init__(name, FRAME_SLOTS, int(np.prod(self.shape)), create)

    def put(self, seq: int, frame: np.ndarray, t: float) -> int:
        return self._put(seq, frame.reshape(-1), t)

    def slot(self, seq: int) -> np.ndarray:
        """The slot frame `seq` is to be written into (decoded straight into it); the slot reads as gone
        until `written`."""
        slot = seq % self.slots
        self.seqs[slot] = -1
        return self.data[slot].reshape(self.shape)

    def written(self, seq: int, t: float) -> np.ndarray:
        """Frame `seq` is in its slot, read at `t`: workers may read it now. Returns the frame."""
        slot = seq % self.slots
        self.times[slot], self.lengths[slot] = t, self.size
        self.seqs[slot] = seq
        return self.data[slot].reshape(self.shape)

    def get(self, seq: int, width: int | None = None) -> tuple[np.ndarray, float] | None:
        """(frame, read time) of frame `seq`, or None when it has been overwritten. With `width`, a frame
        wider than that comes shrunk to it, read from its slot without a full-size copy."""
        height, full_width = self.shape[:2]
        if width is None or full_width <= width:
            got = self._get(seq)
            return None if got is None else (got[0].reshape(self.shape), got[1])
        size = (width, max(1, round(height * width / full_width)))
        return self._get(seq, lambda data: cv2.resize(data.reshape(self.shape), size, interpolation=cv2.INTER_AREA))


class JpegSlots(_Slots):
    """The last JPEG_SLOTS annotated JPEGs of one stream, each at most `size` bytes."""

    def __init__(self, name: str, size: int, create: bool = False) -> None:
        super().__init__(name, JPEG_SLOTS, size, create)

    def put(self, seq: int, jpeg: np.ndarray, t: float) -> int:
        return self._put(seq, jpeg, t)

    def get(self, seq: int) -> tuple[bytes, float] | None:
        """(JPEG bytes, read time) of frame `seq`, or None when it has been overwritten."""
        got = self._get(seq)
        return None if got is None else (got[0].tobytes(), got[1])


def unlink(name: str) -> None:
    """Remove a block its creator left behind (a reader killed with -9); nothing if it is gone."""
    try:
        block = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    block.close()
    block.unlink()
