"""Video files as a stream of frames, sampled a few a second: a long film never sits in memory.

Ingest and export read frames the same way, so the frame export cuts a face from is the one ingest sent.
"""

from collections.abc import Iterator

import cv2
import numpy as np

EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class VideoError(ValueError):
    """Not a video OpenCV's FFmpeg backend can decode."""


def open_video(path: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise VideoError("not a video that FFmpeg can decode")
    return capture


def sampled_count(path: str, fps: float) -> int:
    """About how many frames `frames(path, fps)` yields (from the container's frame count and rate)."""
    capture = open_video(path)
    try:
        frames, rate = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if frames <= 0 or rate <= 0:
        return 0
    return int(frames / rate * fps) + 1


def frame_time(seconds: float) -> float:
    """A frame's time as stored and compared: seconds, to the millisecond."""
    return round(seconds, 3)


def frames(path: str, fps: float | None = None, wanted: set[float] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(time in seconds, BGR frame), in order: with `fps`, the first frame at or after each 1/fps
    seconds; with `wanted` (a set of times), only the frames at those times.

    Every frame is decoded (inter-coded video needs that), but only those yielded become pixels.
    """
    capture = open_video(path)
    try:
        due, last, index = 0.0, -1.0, 0
        rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
        while capture.grab():
            seconds = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            if seconds <= last:  # a container without usable timestamps: count frames instead
                seconds = index / rate
            last, index = seconds, index + 1
            if fps:
                if seconds + 1e-6 < due:
                    continue
                while due <= seconds + 1e-6:
                    due += 1 / fps
            t = frame_time(seconds)
            if wanted is not None and t not in wanted:
                continue
            ok, frame = capture.retrieve()
            if ok:
                yield t, frame
    finally:
        capture.release()
