"""A broadcast call published over WHIP (RFC 9725): the stream service (real gunicorn and call processes)
offers the call's H.264 to a WHIP endpoint run here with aiortc, which decodes what arrives."""

import asyncio

import numpy as np
import pytest
import requests

from tests.support.calls import Caller, until
from tests.support.services import Service, free_port, running, service_env
from tests.support.streams import start, state, stop, tiny
from tests.support.waiting import eventually
from tests.support.whip import WhipEndpoint

WHIP_WAIT = 10  # seconds an endpoint has to answer (STREAM_WHIP_WAIT): aiortc's answer takes far less, loaded or not
TOKEN = "s3cret-Token.42"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The store and the stream service (one detection worker), an endpoint having WHIP_WAIT s to answer."""
    env = service_env(tmp_path_factory, STREAM_WORKERS=1, STREAM_MEDIA_DIR="/", STREAM_WHIP_WAIT=WHIP_WAIT)
    store, stream = Service("store", env), Service("stream", env)
    env["FACEREC_STORE_URL"] = store.url
    with running(store, stream):
        yield stream


def publish(service, call_id, url, token=TOKEN):
    return requests.post(f"{service.url}/streams/{call_id}/publish", json={"url": url, "token": token}, timeout=60)


def publication(service, call_id):
    return state(service, {"id": call_id})["publication"]


def unpublish(service, call_id):
    return requests.delete(f"{service.url}/streams/{call_id}/publish", timeout=10)


async def published_and_unpublished(service, clip_frames, endpoint):
    caller = await Caller(clip_frames).call(service, broadcast=True)
    url = f"{endpoint.url}?room=7"
    response = await asyncio.to_thread(publish, service, caller.id, url)
    assert response.status_code == 201, response.text
    assert response.json()["publication"]["url"] == url and response.json()["publication"]["error"] is None
    method, path, headers = endpoint.requests[0]
    assert (method, path) == ("POST", "/whip/endpoint?room=7")
    assert headers["Content-Type"] == "application/sdp" and headers["Authorization"] == f"Bearer {TOKEN}"

    # The call's video arrives at the endpoint: frames of the clip (boxes and all), at the caller's size.
    await until(lambda: endpoint.frames >= 30, "30 frames at the WHIP endpoint")
    image = endpoint.last.to_ndarray(format="bgr24")
    assert image.shape == (360, 640, 3) and image.std() > 20
    assert min(np.mean((tiny(image) - tiny(f)) ** 2) for f in clip_frames) < 150
    await until(lambda: publication(service, caller.id)["state"] == "publishing", "the publication's state")
    shown = await asyncio.to_thread(requests.get, f"{service.url}/streams/{caller.id}", timeout=10)
    assert shown.json()["publication"] == {"url": url, "state": "publishing", "error": None}
    assert TOKEN not in shown.text
    again = await asyncio.to_thread(publish, service, caller.id, url)
    assert again.status_code == 409 and "published already" in again.json()["message"]

    # Publishing stops: the session's resource is DELETEd, with the token; the call goes on.
    assert (await asyncio.to_thread(unpublish, service, caller.id)).status_code == 200
    await until(lambda: len(endpoint.deleted()) == 1, "the DELETE when publishing stops")
    session, headers = endpoint.deleted()[0]
    assert session.startswith("/whip/session/") and headers["Authorization"] == f"Bearer {TOKEN}"
    assert not endpoint.sessions
    assert await asyncio.to_thread(publication, service, caller.id) is None
    assert (await asyncio.to_thread(unpublish, service, caller.id)).status_code == 404

    # Published again, then the caller hangs up: the call ends, and its publication's resource is DELETEd.
    response = await asyncio.to_thread(publish, service, caller.id, endpoint.url, None)
    assert response.status_code == 201, response.text
    frames = endpoint.frames
    await until(lambda: endpoint.frames >= frames + 30, "30 more frames at the endpoint")
    await caller.pc.close()
    await until(lambda: len(endpoint.deleted()) == 2, "the DELETE when the broadcast ends")
    path, headers = endpoint.deleted()[1]
    assert path != session and "Authorization" not in headers and not endpoint.sessions
    return caller.id


def test_a_broadcast_is_published_over_whip_and_its_session_deleted_when_it_stops_or_ends(service, clip_frames):
    with WhipEndpoint() as endpoint:
        call_id = asyncio.run(published_and_unpublished(service, clip_frames, endpoint))
    eventually(lambda: requests.get(f"{service.url}/streams/{call_id}", timeout=10).status_code == 404, "call gone")
    eventually(lambda: not requests.get(f"{service.url}/health", timeout=10).json()["readers"], "its process gone")


async def refused_and_unanswered(service, clip_frames):
    caller = await Caller(clip_frames).call(service, broadcast=True)
    with WhipEndpoint("refuse") as refusing, WhipEndpoint("silent") as silent:
        refused = await asyncio.to_thread(publish, service, caller.id, refusing.url)
        assert refused.status_code == 422 and refused.json()["success"] is False
        assert "refused" in refused.json()["message"] and "403" in refused.json()["message"]
        assert "this stream key may not publish" in refused.json()["message"]
        shown = await asyncio.to_thread(publication, service, caller.id)
        assert shown["state"] == "failed" and "403" in shown["error"]

        unanswered = await asyncio.to_thread(publish, service, caller.id, silent.url)
        assert unanswered.status_code == 422
        assert f"did not answer within {WHIP_WAIT} s" in unanswered.json()["message"]

        nobody = await asyncio.to_thread(publish, service, caller.id, f"http://127.0.0.1:{free_port()}/whip")
        assert nobody.status_code == 422 and "cannot be reached" in nobody.json()["message"]

    # A media server that drops the session: the publication fails saying so, its resource is DELETEd.
    with WhipEndpoint() as dropping:
        assert (await asyncio.to_thread(publish, service, caller.id, dropping.url)).status_code == 201
        await until(lambda: dropping.frames >= 15, "15 frames at the endpoint")
        dropping.end_sessions()
        await until(lambda: len(dropping.deleted()) == 1, "the DELETE of a dropped session")
        await until(lambda: publication(service, caller.id)["state"] == "failed", "the dropped publication failed")
        assert "the connection to the media server closed" in publication(service, caller.id)["error"]

    # The call played on throughout, and still does.
    back = caller.back
    await until(lambda: caller.back >= back + 30, "30 more frames of the call back to its caller")
    assert (await asyncio.to_thread(state, service, {"id": caller.id}))["state"] == "playing"
    await caller.pc.close()


def test_a_refused_or_unanswered_offer_is_a_clear_422_a_dropped_session_a_failure_and_the_call_plays_on(
    service, clip_frames
):
    asyncio.run(refused_and_unanswered(service, clip_frames))


BAD_BODIES = [
    None,
    {},
    {"url": 5},
    {"url": "ftp://127.0.0.1/whip"},
    {"url": "file:///etc/passwd"},
    {"url": "http://"},
    {"url": "http:///whip"},
    {"url": "http://127.0.0.1:99999/whip"},
    {"url": "http://user:password@127.0.0.1/whip"},
    {"url": "http://127.0.0.1/wh ip"},
    {"url": "http://127.0.0.1/" + "a" * 2100},
    {"url": "http://127.0.0.1/whip", "token": "a\r\nX-Injected: 1"},
    {"url": "http://127.0.0.1/whip", "token": 7},
    {"url": "http://127.0.0.1/whip", "other": 1},
]


def test_only_a_broadcast_call_is_published_and_only_to_an_http_url(service):
    stream = start(service, loop=True)
    try:
        for body in BAD_BODIES:
            response = requests.post(f"{service.url}/streams/{stream['id']}/publish", json=body, timeout=10)
            assert response.status_code == 400, body
            assert response.json()["success"] is False and response.json()["message"], body
        plain = publish(service, stream["id"], "http://127.0.0.1/whip")
        assert plain.status_code == 409 and "broadcast" in plain.json()["message"]
        assert unpublish(service, stream["id"]).status_code == 404
        assert state(service, stream)["publication"] is None and state(service, stream)["state"] == "playing"
    finally:
        stop(service, stream)
    assert publish(service, "nosuch", "http://127.0.0.1/whip").status_code == 404
