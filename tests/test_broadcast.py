"""One call, many viewers: a caller (aiortc, sending the real clip) starts a call with "broadcast":
true; viewers watch it over WHEP (aiortc, as OBS or a browser's player would) and as MJPEG, from the
stream service as real gunicorn and call processes."""

import asyncio
import itertools

import numpy as np
import requests

from tests.support.calls import Caller, Viewer, until
from tests.support.streams import SHOWN, calls, start, state, stop, tiny, video
from tests.support.waiting import WAIT, eventually


async def a_broadcast(service, clip_frames):
    caller = await Caller(clip_frames).call(service, broadcast=True)
    call_id = caller.id

    # What is not a WHEP offer is refused, and the call goes on.
    url = f"{service.url}/streams/{call_id}/whep"
    bad = await asyncio.to_thread(requests.post, url, data="v=0", headers={"Content-Type": "text/plain"}, timeout=10)
    assert bad.status_code == 415
    garbage = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=nonsense\r\n"
    bad = await asyncio.to_thread(
        requests.post, url, data=garbage, headers={"Content-Type": "application/sdp"}, timeout=WAIT
    )
    assert bad.status_code in (400, 422) and bad.json()["success"] is False

    viewers = [Viewer() for _ in range(3)]
    for viewer in viewers:
        await viewer.watch(service, call_id)
    await until(lambda: all(v.frames >= 15 for v in viewers), "15 frames for each of three viewers")
    # Each gets the call's video: a frame of the clip (boxes and all), at the caller's size.
    clip_tiny = [tiny(f) for f in clip_frames]
    for viewer in viewers:
        image = viewer.last.to_ndarray(format="bgr24")
        assert image.shape == (360, 640, 3)
        assert min(np.mean((tiny(image) - t) ** 2) for t in clip_tiny) < 150
    listed = (await asyncio.to_thread(requests.get, f"{service.url}/streams/{call_id}", timeout=10)).json()
    assert listed["broadcast"] is True and listed["whep_viewers"] == 3

    # MJPEG viewers get the same call.
    parts = await asyncio.to_thread(lambda: list(itertools.islice(video(service, {"id": call_id}), 5)))
    assert all(picture.shape == (360, 640, 3) for _, picture in parts)

    # One viewer leaves: its connection ends, the other two go on.
    gone = await asyncio.to_thread(requests.delete, f"{service.url}{viewers[0].resource}", timeout=10)
    assert gone.status_code == 200
    await asyncio.wait_for(viewers[0].ended.wait(), WAIT)
    counts = [v.frames for v in viewers[1:]]
    await until(
        lambda: all(v.frames >= c + 15 for v, c in zip(viewers[1:], counts)), "the others' frames after one left"
    )
    again = await asyncio.to_thread(requests.delete, f"{service.url}{viewers[0].resource}", timeout=10)
    assert again.status_code == 404

    # The caller hangs up: every viewer's video ends.
    await caller.pc.close()
    for viewer in viewers[1:]:
        await asyncio.wait_for(viewer.ended.wait(), WAIT)
    for viewer in viewers:
        await viewer.pc.close()
    return call_id


def test_three_whep_viewers_watch_one_call_one_leaving_stops_none_and_hanging_up_ends_all(live, clip_frames):
    _, service = live
    call_id = asyncio.run(a_broadcast(service, clip_frames))
    eventually(
        lambda: requests.get(f"{service.url}/streams/{call_id}", timeout=10).status_code == 404, "the call forgotten"
    )
    eventually(
        lambda: not requests.get(f"{service.url}/health", timeout=10).json()["readers"], "the call's process gone"
    )


def test_whep_is_for_broadcast_calls_only(live):
    _, service = live
    stream = start(service, loop=True)
    try:
        response = requests.post(
            f"{service.url}/streams/{stream['id']}/whep",
            data="v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            headers={"Content-Type": "application/sdp"},
            timeout=10,
        )
        assert response.status_code == 409 and "broadcast" in response.json()["message"]
    finally:
        stop(service, stream)
    assert requests.post(f"{service.url}/streams/nosuch/whep", data="v=0", timeout=10).status_code in (404, 415)


def test_the_watch_page_plays_a_broadcast_call_from_chromium(live, camera_browser):
    _, service = live
    caller = camera_browser.new_page()
    caller.set_default_timeout(WAIT * 1000)
    watcher = None
    try:
        caller.goto(service.url)
        caller.check("#call-broadcast")
        caller.click("#call-start")
        caller.wait_for_function("document.querySelector('#call-video').videoWidth > 0")
        (call,) = calls(service)
        assert call["broadcast"] is True
        watcher = camera_browser.new_page()
        watcher.set_default_timeout(WAIT * 1000)
        watcher.goto(f"{service.url}/watch/{call['id']}")
        shown = watcher.wait_for_function(SHOWN).json_value()
        assert shown["width"] > 0
        if shown["how"] == "webrtc":  # chromium decodes H.264: the page watches over WHEP
            eventually(lambda: state(service, call)["whep_viewers"] == 1, "the page a WHEP viewer")
            watcher.close()  # its pagehide deletes its resource
            watcher = None
            eventually(lambda: state(service, call)["whep_viewers"] == 0, "the page's viewer gone")
    finally:
        if watcher is not None:
            watcher.close()
        caller.close()
    eventually(lambda: not calls(service), "the call gone after the caller's tab closed")
