"""A face the detector missed, drawn by hand on the people page in a real browser (Debian's chromium,
driven by Playwright), against both services as real gunicorn processes: the photo is dropped, a
rectangle dragged round the face, a name typed; the face comes back described, stored and named.

The detect service looks for faces of 250 px or more here, with HOG alone (no YuNet proposals, whose
sure faces would count), so the 186 px face of the photo is one it misses, as it misses a face under
a hat brim.
"""

import pytest
import requests

from tests.support.browser import SCREENSHOTS, TIMEOUT_MS
from tests.support.faces import FACES
from tests.support.services import Service, running, service_env

PHOTO = FACES / "fr_examples" / "kit_harington" / "john2.jpeg"  # 630 x 374
FACE = (284, 98, 186, 186)  # left, top, width, height: where the face is, in the photo's pixels


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    env = service_env(tmp_path_factory, DETECT_WORKERS=1, MIN_FACE_PX=250, SMALL_FACE_PX=0, DETECTOR="hog")
    store, detect = Service("store", env), Service("detect", env)
    env.update(FACEREC_STORE_URL=store.url, FACEREC_DETECT_URL=detect.url, FACEREC_CORS_ORIGINS=store.url)
    with running(store, detect):
        yield store, detect


def test_a_box_drawn_round_a_missed_face_adds_it_with_its_name(browser, services):
    store, _ = services
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(store.url)
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_selector("#status:has-text('0 faces in john2.jpeg.')")
        image = page.locator("#photo-img").bounding_box()
        scale = image["width"] / 630
        left, top, width, height = (v * scale for v in FACE)
        page.mouse.move(image["x"] + left, image["y"] + top)
        page.mouse.down()
        page.mouse.move(image["x"] + left + width / 2, image["y"] + top + height / 2)
        page.mouse.move(image["x"] + left + width, image["y"] + top + height)
        page.mouse.up()
        page.fill("#draw-name", "Kit Harington")
        page.click("#draw-form button[type=submit]")
        page.wait_for_selector('#status:has-text("Added Kit Harington\'s face.")')
        page.wait_for_selector(".box .label:has-text('Kit Harington')")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "review-5-drawn.png", full_page=True)
    finally:
        page.close()
    (person,) = requests.get(f"{store.url}/people", params={"q": "Kit"}, timeout=10).json()["people"]
    assert person["name"] == "Kit Harington" and person["count"] == 1
    face = requests.get(f"{store.url}/faces/{person['cover_face_id']}", timeout=10).json()
    assert face["detector"] == "manual"
    drawn = face["box"]
    assert abs(drawn["left"] - FACE[0]) <= 4 and abs(drawn["width"] - FACE[2]) <= 4  # the box as drawn
