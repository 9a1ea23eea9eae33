"""With API keys on, the live page works in a real Chromium: it asks for the key once, gets it back as an
HttpOnly, SameSite cookie (facerec/service/session.py), and the MJPEG <img> and the EventSource carry it;
the key is in no URL the page requests."""

import pytest
import requests

from tests.support.browser import SCREENSHOTS
from tests.support.faces import CLIP
from tests.support.services import Service, running, service_env
from tests.support.waiting import WAIT

KEY = "living-room-key"


@pytest.fixture(scope="module")
def keyed_stream(tmp_path_factory):
    env = service_env(tmp_path_factory, STREAM_WORKERS=1, API_KEYS=KEY, STREAM_MEDIA_DIR=CLIP.parent)
    store = Service("store", env)
    stream = Service("stream", dict(env))
    stream.env["FACEREC_STORE_URL"] = store.url
    with running(store, stream):
        yield stream


def test_session_sets_an_httponly_strict_cookie_only_for_a_valid_key(keyed_stream):
    url = f"{keyed_stream.url}/session"
    wrong = requests.post(url, json={"key": "guess"}, timeout=10)
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    assert requests.post(url, json={}, timeout=10).status_code == 400
    right = requests.post(url, json={"key": KEY}, timeout=10)
    assert right.status_code == 204
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert requests.get(f"{keyed_stream.url}/streams", timeout=10).status_code == 401  # no cookie, no header
    assert requests.get(f"{keyed_stream.url}/streams", cookies=right.cookies, timeout=10).ok


def test_the_live_page_asks_for_the_key_once_and_plays(keyed_stream, browser):
    headers = {"X-API-Key": KEY}
    started = requests.post(
        f"{keyed_stream.url}/streams",
        json={"source": str(CLIP), "loop": True, "name": "Hall"},
        headers=headers,
        timeout=WAIT,
    )
    assert started.status_code == 201, started.text
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT * 1000)
    urls = []
    page.on("request", lambda request: urls.append(request.url))
    try:
        page.goto(keyed_stream.url)
        page.wait_for_selector("#key-form:not([hidden])")  # the page found it needs a key
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "live-key-asked.png")
        page.fill("#key", KEY)
        page.click("#key-form button")
        page.wait_for_selector("#key-form[hidden]", state="attached")
        page.wait_for_function("document.querySelector('.stream img.video')?.naturalWidth === 640")
        page.wait_for_selector(".events li")  # the EventSource got its events
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] == KEY
        assert page.evaluate("document.cookie") == ""  # no script reads it
        page.reload()  # asked once: a new visit plays without asking again
        page.wait_for_function("document.querySelector('.stream img.video')?.naturalWidth === 640")
        assert page.is_hidden("#key-form")
        assert any("/mjpeg" in u for u in urls) and any("/events" in u for u in urls)
        assert not [u for u in urls if KEY in u]
        page.screenshot(path=SCREENSHOTS / "live-key-playing.png", full_page=True)
    finally:
        context.close()
        requests.delete(f"{keyed_stream.url}/streams/{started.json()['id']}", headers=headers, timeout=10)
