"""Every message that travels through the stream service's pipes, as a named type.

Three kinds of process speak to the manager (the thread of the gunicorn worker that owns the streams),
each over a pipe of its own, and only in small messages: frames and JPEGs go through shared memory
(shared_frames.py). A message is pickled by the pipe, so each is a plain frozen dataclass of numbers,
strings, lists and numpy arrays.

- A stream's reader (reader.py) or a call (call.py) says `Opened`, `FrameRead`, `Ended`, `Failed`; a
  call also `Answer`, `NewRing` and `Sent`. It is told `Draw`, `SetFilter`, `Watched` and `Stop`.
- A detection worker (detector.py) says `Ready`, then answers each `Detect` with `Found` or `Gone`. It
  is told `Forget` (a stream's frames are gone) and `Stop`.
"""

from dataclasses import dataclass
from typing import Any

# A face as the detection workers find it (detector.py) and as the reader draws it (tracks.py's
# overlay): a dict whose "box" is (left, top, right, bottom) in the pixels of the stream's frames.
Face = dict[str, Any]
Corners = tuple[int, int, int, int]


# -- from a reader or a call to the manager -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """The source opened: its first frame is in the ring."""

    width: int
    height: int
    fps: float


@dataclass(frozen=True, slots=True)
class FrameOut:
    """The frame that went out: its number, when it was read, and whether its JPEG is in the JPEG slots
    (only while someone watches)."""

    seq: int
    read_at: float
    encoded: bool


@dataclass(frozen=True, slots=True)
class FrameRead:
    """Frame `seq` is in the ring; `cut`: it starts a new shot. `out`: the frame that went out meanwhile,
    if any (a call sends its frames back itself, and says `Sent`)."""

    seq: int
    cut: bool
    out: FrameOut | None


@dataclass(frozen=True, slots=True)
class Ended:
    """A file without loop reached its end, or a call is over."""

    message: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The source could not be opened or stopped sending frames."""

    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A call's SDP answer to the browser's offer."""

    sdp: str


@dataclass(frozen=True, slots=True)
class NewRing:
    """A call's frames are from now on in the ring `name` (its first frame, or a new size)."""

    width: int
    height: int
    name: str


@dataclass(frozen=True, slots=True)
class Sent:
    """A call's frame went back to the caller, `latency` seconds after it came."""

    latency: float


# -- from the manager to a reader or a call -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draw:
    """The faces to draw (tracks.py's overlay), as followed up to the detection of frame `seq`."""

    faces: list[Face]
    seq: int


@dataclass(frozen=True, slots=True)
class SetFilter:
    """The privacy filter switched live: None, "blur-unknown" or "blur-all"."""

    filter: str | None


@dataclass(frozen=True, slots=True)
class Watched:
    """Whether someone watches the video: the reader draws and encodes JPEGs only then."""

    watched: bool


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop now (to a reader, a call or a detection worker)."""


# -- between the manager and a detection worker ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """A detection worker loaded its models: it takes frames from now on."""


@dataclass(frozen=True, slots=True)
class Detect:
    """Find the faces of frame `seq` in the ring `ring` (frames of `shape`, height x width). Describe only
    faces that overlap none of the `known` boxes; with `thumbnails`, also crop each described face for
    the store; `private`: a privacy filter, find every face that may be one."""

    stream: str
    ring: str
    shape: tuple[int, int]
    seq: int
    known: list[Corners]
    thumbnails: bool
    private: bool


@dataclass(frozen=True, slots=True)
class Found:
    """The faces of frame `seq` of `stream` (detector.py's detect_faces)."""

    stream: str
    seq: int
    faces: list[Face]


@dataclass(frozen=True, slots=True)
class Gone:
    """Frame `seq` of `stream` was overwritten (or its ring let go) before it could be read."""

    stream: str
    seq: int


@dataclass(frozen=True, slots=True)
class Forget:
    """A stream's frame ring `ring` is gone: let its shared memory go."""

    ring: str


FromReader = Opened | FrameRead | Ended | Failed | Answer | NewRing | Sent
ToReader = Draw | SetFilter | Watched | Stop
FromDetector = Ready | Found | Gone
ToDetector = Detect | Forget | Stop
