"""Every message that travels through the stream service's pipes, as a named type.

Three kinds of process speak to the manager (the thread of the gunicorn worker that owns the streams),
each over a pipe of its own, and only in small messages: frames and JPEGs go through shared memory
(shared_frames.py). A message is pickled by the pipe, so each is a plain frozen dataclass of numbers,
strings, lists and numpy arrays.

- A stream's reader (reader.py) or a call (call.py) says `Opened`, `FrameRead`, `Ended`, `Failed`; a
  call also `Answer`, `NewRing` and `Sent`, and a broadcast call `JpegOut`, `ViewerAnswer`,
  `ViewerLeft` and `Published`. It is told `Draw`, `SetFilter`, `SetBackground`, `Watched` and `Stop`;
  a broadcast call also `AddViewer` and `DropViewer` (broadcast.py), `Publish` and `Unpublish` (whip.py).
- A detection worker (detector.py) says `Ready`, then answers each `Detect` with `Found` or `Gone`. It
  is told `Forget` (a stream's frames are gone) and `Stop`.
"""

from dataclasses import dataclass

import numpy as np

from facerec.vision.boxes import Box

# -- the faces a message carries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundFace:
    """A face a detection worker found, in the pixels of the stream's frames. Described (`descriptor`)
    only when it is new to the manager; for a stream with "store": true, a described face also has its
    thumbnail (JPEG) and quality, as the store keeps them."""

    box: Box
    descriptor: np.ndarray | None
    thumbnail: bytes | None = None
    quality: float | None = None
    detector: str = "hog"  # how it was found (facerec/vision/faces.py FOUND_BY), as the store keeps it


@dataclass(frozen=True, slots=True)
class DrawnFace:
    """A face as the reader draws it: boxed and labelled in its kind's colour ("named", "person",
    "unknown"), or blurred; `spread`: blurred with a wider margin (found by only one of the two
    detections around the frame: it may have moved)."""

    track: int
    box: Box
    label: str
    kind: str
    blur: bool
    spread: bool = False


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


@dataclass(frozen=True, slots=True)
class JpegOut:
    """A broadcast call's frame `seq` is in the JPEG slots (with its read time), for its MJPEG viewers."""

    seq: int


@dataclass(frozen=True, slots=True)
class ViewerAnswer:
    """A broadcast call answered WHEP viewer `viewer`: its SDP answer, or None and why not."""

    viewer: str
    sdp: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ViewerLeft:
    """A WHEP viewer's connection closed."""

    viewer: str


@dataclass(frozen=True, slots=True)
class Published:
    """Publication `publication` of a broadcast call (whip.py) is now "connecting", "publishing" or
    "failed" (with why)."""

    publication: str
    state: str
    error: str | None


# -- from the manager to a reader or a call -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draw:
    """The faces to draw (tracks.py's overlay), as followed up to the detection of frame `seq`."""

    faces: list[DrawnFace]
    seq: int


@dataclass(frozen=True, slots=True)
class SetFilter:
    """The privacy filter switched live: None, "blur-unknown" or "blur-all"."""

    filter: str | None


@dataclass(frozen=True, slots=True)
class SetBackground:
    """The background filter switched live (backdrop.py): its kind, and what goes behind the person as
    backgrounds.py resolves it (None, ("colour", (b, g, r)) or ("image", path))."""

    kind: str | None
    background: tuple[str, object] | None


@dataclass(frozen=True, slots=True)
class AddViewer:
    """A WHEP viewer's SDP offer, for a broadcast call to answer."""

    viewer: str
    offer: str


@dataclass(frozen=True, slots=True)
class DropViewer:
    """A WHEP viewer is done (its DELETE)."""

    viewer: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish the broadcast to the WHIP endpoint `url` (with the bearer `token`, if any), which has
    `wait` seconds to answer; `publication` names it in the call's `Published`."""

    publication: str
    url: str
    token: str | None
    wait: float


@dataclass(frozen=True, slots=True)
class Unpublish:
    """Stop publication `publication`."""

    publication: str


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
    known: list[Box]
    thumbnails: bool
    private: bool


@dataclass(frozen=True, slots=True)
class Found:
    """The faces of frame `seq` of `stream` (detector.py's detect_faces)."""

    stream: str
    seq: int
    faces: list[FoundFace]


@dataclass(frozen=True, slots=True)
class Gone:
    """Frame `seq` of `stream` was overwritten (or its ring let go) before it could be read."""

    stream: str
    seq: int


@dataclass(frozen=True, slots=True)
class Forget:
    """A stream's frame ring `ring` is gone: let its shared memory go."""

    ring: str


FromReader = (
    Opened | FrameRead | Ended | Failed | Answer | NewRing | Sent | JpegOut | ViewerAnswer | ViewerLeft | Published
)
ToReader = Draw | SetFilter | SetBackground | Watched | Stop | AddViewer | DropViewer | Publish | Unpublish
FromDetector = Ready | Found | Gone
ToDetector = Detect | Forget | Stop
