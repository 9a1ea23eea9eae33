"""The stream service's parts without processes: following faces, which frame is shown with which faces
(the privacy filter's promise), and frames in shared memory."""

import dataclasses
import uuid

import numpy as np
import pytest

from facerec.vision.boxes import Box
from stream_service import drawing, showing
from stream_service.messages import DrawnFace, FoundFace
from stream_service.shared_frames import FRAME_SLOTS, FrameRing
from stream_service.showing import Shown
from stream_service.tracks import DESCRIPTORS, LOST_AFTER, Tracks


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def face(corners, descriptor=None):
    return FoundFace(Box.from_corners(*corners), descriptor)


def test_a_moving_face_keeps_its_track_and_is_described_a_few_times():
    clock, rng = Clock(), np.random.default_rng(0)
    tracks, person = Tracks(clock), rng.normal(size=128).astype(np.float32) * 0.05
    ids, described = set(), 0
    for step in range(20):
        box = (100 + 15 * step, 50, 180 + 15 * step, 130)  # 15 px a detection: IoU 0.68, or a jump
        known = tracks.known_boxes()
        new, ended = tracks.update(
            [face(box, None if Box.from_corners(*box) in known else person + rng.normal(size=128) * 0.01)]
        )
        described += len(new)
        assert not ended
        ids |= set(tracks.live)
        clock.now += 0.25
    assert len(ids) == 1 and described == DESCRIPTORS
    # Gone longer than LOST_AFTER: it has left; back again, it is a new face.
    clock.now += LOST_AFTER + 0.1
    _, ended = tracks.update([])
    assert [t.id for t in ended] == list(ids) and not tracks.live
    tracks.update([face((0, 0, 80, 80))])
    assert set(tracks.live) != ids


def test_someone_else_in_the_same_place_is_a_new_face_and_a_cut_ends_all():
    clock = Clock()
    tracks = Tracks(clock)
    a, b = np.zeros(128, np.float32), np.full(128, 0.1, np.float32)  # 1.13 apart
    tracks.update([face((10, 10, 90, 90), a), face((300, 10, 380, 90))])
    first = set(tracks.live)
    clock.now += 0.3
    _, ended = tracks.update([face((12, 10, 92, 90), b), face((302, 10, 382, 90))])
    assert len(ended) == 1 and len(set(tracks.live) - first) == 1  # the far one stayed, the other is new
    assert len(tracks.cut()) == 2 and not tracks.live


def test_without_a_filter_a_frame_shows_at_once_with_the_newest_faces_of_its_shot():
    shown, frame = Shown(None, 0.5), np.zeros((4, 4, 3), np.uint8)
    assert shown.next(0, frame, 0.0, False)[3] == []
    shown.faces_of(0, ["a"])
    assert shown.next(1, frame, 0.0, False)[3] == ["a"]
    assert shown.next(2, frame, 0.0, True)[3] == []  # a cut: the old shot's faces are not drawn on it


def test_with_a_filter_a_frame_waits_for_a_detection_of_it_or_later_in_its_shot(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(showing.time, "monotonic", lambda: now[0])
    shown, frame = Shown("blur-unknown", 0.5), np.zeros((4, 4, 3), np.uint8)
    assert shown.next(0, frame, 0.0, False) is None  # nothing detected yet: it waits
    a = DrawnFace(1, Box(0, 0, 2, 2), "unknown", "unknown", True)
    shown.faces_of(1, [a])
    out = shown.next(1, frame, 0.0, False)
    assert out[0] == 0 and out[3] == [
        dataclasses.replace(a, spread=True)
    ]  # frame 0 is covered by the detection of frame 1
    # A cut at frame 3: a detection of frame 3 does not cover frame 2 (its faces may be gone).
    shown.faces_of(3, [])
    assert shown.next(2, frame, 0.0, False)[0] == 1
    assert shown.next(3, frame, 0.0, True) is None  # frame 2 waits: no detection of its shot after it
    # Once the frame after it is covered, frame 2 is dropped to catch up: never shown with the wrong faces.
    assert shown.next(4, frame, 0.0, False)[0] == 3


def test_between_two_detections_a_face_is_blurred_where_it_was_where_it_went_and_between(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(showing.time, "monotonic", lambda: now[0])
    shown, frame = Shown("blur-unknown", 0.5), np.zeros((200, 300, 3), np.uint8)
    moving, leaving, coming = (
        DrawnFace(t, box, "unknown", "unknown", True)
        for t, box in ((1, Box(10, 10, 40, 40)), (2, Box(200, 100, 40, 40)), (3, Box(100, 100, 40, 40)))
    )
    shown.faces_of(0, [moving, leaving])
    assert shown.next(0, frame, 0.0, False)[0] == 0
    shown.faces_of(4, [dataclasses.replace(moving, box=Box(70, 30, 40, 40)), coming])
    seq, _, _, faces = shown.next(1, frame, 0.0, False)  # between the detections of frames 0 and 4
    assert seq == 1
    assert sorted((f.track, f.box.corners(), f.spread) for f in faces) == [
        (1, (10, 10, 110, 70), False),  # the box spanning both places
        (2, (200, 100, 240, 140), True),  # found once only: a wider margin
        (3, (100, 100, 140, 140), True),
    ]
    # A face found once is blurred with a margin of half its size: a face that moved that far is covered.
    picture = frame.copy()
    picture[90:150, 180:260] = np.indices((60, 80)).sum(axis=0)[..., None] % 2 * 255  # a sharp pattern
    out = drawing.annotate(picture, [f for f in faces if f.track == 2], 30)
    detail = lambda image: np.abs(np.diff(image[80:160, 180:260].astype(int), axis=1)).mean()  # noqa: E731
    assert detail(out) < 0.1 * detail(picture)


def test_with_a_filter_a_frame_no_detection_covers_in_time_is_blurred_all_over(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(showing.time, "monotonic", lambda: now[0])
    shown, frame = Shown("blur-all", 0.5), np.zeros((4, 4, 3), np.uint8)
    assert shown.next(0, frame, 0.0, False) is None
    now[0] = 0.51
    seq, _, _, faces = shown.next(1, frame, 0.0, False)
    assert (seq, faces) == (0, None)  # None: blurred all over


def test_the_frame_ring_gives_back_each_frame_until_it_is_overwritten():
    name = f"facerec-test-{uuid.uuid4().hex[:8]}"
    ring = FrameRing(name, (6, 8), create=True)
    reader_side = FrameRing(name, (6, 8))
    try:
        frames = [np.full((6, 8, 3), i, np.uint8) for i in range(FRAME_SLOTS + 1)]
        for i, frame in enumerate(frames):
            ring.put(i, frame, float(i))
        assert reader_side.get(0) is None  # its slot holds frame FRAME_SLOTS now
        got, t = reader_side.get(FRAME_SLOTS)
        assert (got == FRAME_SLOTS).all() and t == FRAME_SLOTS
        assert reader_side.get(FRAME_SLOTS + 1) is None  # not read yet
    finally:
        reader_side.close()
        ring.close(unlink=True)
    with pytest.raises(FileNotFoundError):
        FrameRing(name, (6, 8))
