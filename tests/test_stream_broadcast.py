"""A stream (a file played by its reader process) started with "broadcast": true, watched over WHEP by
aiortc viewers as well as over MJPEG: the frames its reader shows, encoded once in H.264 and relayed to
every viewer (stream_service/relay.py), from the stream service as real gunicorn and reader processes."""

import asyncio
import itertools
import os

import av
import cv2
import numpy as np
import pytest
import requests

from tests.support.calls import Viewer, until
from tests.support.faces import CLIP
from tests.support.services import Service, running, service_env
from tests.support.streams import SHOWN, start, state, stop, tiny, video
from tests.support.waiting import WAIT, eventually

CLIP_SECONDS = 9


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The store and the stream service as `live` has them, with room for two WHEP viewers a stream."""
    env = service_env(
        tmp_path_factory, STREAM_WORKERS=2, STREAM_PRIVACY_WAIT=2, STREAM_MEDIA_DIR="/", STREAM_MAX_VIEWERS=2
    )
    store = Service("store", env)
    stream = Service("stream", env)
    env["FACEREC_STORE_URL"] = store.url
    with running(store, stream):
        yield stream


def readers(service):
    return set(requests.get(f"{service.url}/health", timeout=10).json()["readers"])


def post_offer(service, stream_id, offer):
    return requests.post(
        f"{service.url}/streams/{stream_id}/whep", data=offer, headers={"Content-Type": "application/sdp"}, timeout=WAIT
    )


def assert_shows_the_clip(viewer, clip_frames):
    """The viewer's last decoded frame is a frame of the clip (boxes and all), at its size, not blank."""
    image = viewer.last.to_ndarray(format="bgr24")
    assert image.shape == clip_frames[0].shape
    assert float(image.std()) > 20
    assert min(np.mean((tiny(image) - tiny(f)) ** 2) for f in clip_frames) < 150


async def two_viewers_one_leaving_then_the_stream_deleted(service, stream, clip_frames):
    viewers = [Viewer(), Viewer()]
    for viewer in viewers:
        await viewer.watch(service, stream["id"])
    await until(lambda: all(v.frames >= 15 for v in viewers), "15 frames for each of two viewers")
    for viewer in viewers:
        assert_shows_the_clip(viewer, clip_frames)
    listed = await asyncio.to_thread(state, service, stream)
    assert listed["broadcast"] is True and listed["whep_viewers"] == 2

    # A third is one too many (STREAM_MAX_VIEWERS 2); MJPEG viewers still get the same stream.
    third = Viewer()
    await third.pc.setLocalDescription(await third.pc.createOffer())
    refused = await asyncio.to_thread(post_offer, service, stream["id"], third.pc.localDescription.sdp)
    assert refused.status_code == 409 and "STREAM_MAX_VIEWERS" in refused.json()["message"]
    await third.pc.close()
    parts = await asyncio.to_thread(lambda: list(itertools.islice(video(service, stream), 5)))
    assert all(picture.shape == clip_frames[0].shape for _, picture in parts)

    # One leaves: its connection ends, the other goes on.
    gone = await asyncio.to_thread(requests.delete, f"{service.url}{viewers[0].resource}", timeout=10)
    assert gone.status_code == 200
    await asyncio.wait_for(viewers[0].ended.wait(), WAIT)
    count = viewers[1].frames
    await until(lambda: viewers[1].frames >= count + 15, "the other's frames after one left")
    assert_shows_the_clip(viewers[1], clip_frames)

    # The stream is deleted: the reader closes the viewer's connection (one that vanished without a
    # goodbye would leave the viewer to find out when ICE's consent checks time out).
    await asyncio.to_thread(stop, service, stream)
    await asyncio.wait_for(viewers[1].ended.wait(), WAIT)
    assert viewers[1].goodbye
    for viewer in viewers:
        await viewer.pc.close()


def test_two_whep_viewers_watch_a_broadcast_stream_one_leaving_stops_none_and_deleting_it_ends_all(
    service, clip_frames
):
    before = readers(service)
    stream = start(service, loop=True, broadcast=True)
    (reader,) = readers(service) - before
    asyncio.run(two_viewers_one_leaving_then_the_stream_deleted(service, stream, clip_frames))
    eventually(lambda: not os.path.exists(f"/proc/{reader}"), "the stream's reader process gone")


async def watched_to_its_end(service, stream):
    viewer = Viewer()
    await viewer.watch(service, stream["id"])
    await until(lambda: viewer.frames >= 15, "15 frames of the stream")
    await asyncio.wait_for(viewer.ended.wait(), WAIT + 2 * CLIP_SECONDS)
    assert viewer.goodbye
    await viewer.pc.close()


def test_a_broadcast_stream_whose_file_ends_ends_its_whep_viewer(service, clip_frames, tmp_path):
    # The clip twice: 18 s, time for a viewer to join on a busy machine before the file ends.
    path = tmp_path / "twice.mp4"
    height, width = clip_frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height))
    for frame in clip_frames + clip_frames:
        writer.write(frame)
    writer.release()
    stream = start(service, source=str(path), broadcast=True)
    asyncio.run(watched_to_its_end(service, stream))
    assert state(service, stream)["state"] == "ended"
    stop(service, stream)


def test_broadcast_is_true_or_false_and_a_plain_stream_is_not_sent_over_whep(service):
    listed = requests.get(f"{service.url}/streams", timeout=10).json()["streams"]
    bad = requests.post(f"{service.url}/streams", json={"source": str(CLIP), "broadcast": "yes"}, timeout=WAIT)
    assert bad.status_code == 400 and bad.json()["success"] is False
    assert requests.get(f"{service.url}/streams", timeout=10).json()["streams"] == listed
    stream = start(service, loop=True)
    try:
        assert stream["broadcast"] is False
        refused = post_offer(service, stream["id"], "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
        assert refused.status_code == 409 and "broadcast" in refused.json()["message"]
    finally:
        stop(service, stream)


async def one_viewer(service, stream):
    viewer = Viewer()
    await viewer.watch(service, stream["id"])
    await until(lambda: viewer.frames >= 15, "15 frames of the stream")
    await viewer.pc.close()
    return viewer


def test_a_broadcast_stream_of_odd_width_and_height_is_sent_without_its_last_column_and_row(
    service, clip_frames, tmp_path
):
    # H.264 (4:2:0) takes even sides only: 641x361 goes out as 640x360. OpenCV's writer rounds the size
    # itself, so the file is written with PyAV, losslessly (FFV1).
    path = tmp_path / "odd.mkv"
    frames = clip_frames[:60]
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=30)
        video.width, video.height, video.pix_fmt = 641, 361, "yuv444p"
        for frame in frames:
            odd = cv2.copyMakeBorder(frame, 0, 1, 0, 1, cv2.BORDER_REPLICATE)
            out.mux(video.encode(av.VideoFrame.from_ndarray(odd, format="bgr24")))
        out.mux(video.encode())
    stream = start(service, source=str(path), loop=True, broadcast=True)
    try:
        assert (stream["width"], stream["height"]) == (641, 361)
        viewer = asyncio.run(one_viewer(service, stream))
        assert_shows_the_clip(viewer, frames)
    finally:
        stop(service, stream)


def test_the_watch_page_plays_a_broadcast_stream_over_whep_in_chromium(service, browser):
    stream = start(service, loop=True, broadcast=True)
    page = browser.new_page()
    try:
        page.set_default_timeout(WAIT * 1000)
        page.goto(f"{service.url}/watch/{stream['id']}")
        shown = page.wait_for_function(SHOWN).json_value()
        assert shown == {"how": "webrtc", "width": 640}  # chromium decodes H.264: the page watches over WHEP
        assert state(service, stream)["whep_viewers"] == 1
        page.close()  # its pagehide deletes its resource
        page = None
        eventually(lambda: state(service, stream)["whep_viewers"] == 0, "the page's viewer gone")
    finally:
        if page is not None:
            page.close()
        stop(service, stream)
