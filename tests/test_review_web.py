"""Naming an album on the people page, in a real browser (Debian's chromium, driven by Playwright),
against both services as real gunicorn processes and real photos: the unknown faces queue ("is this
X?" answered yes and no with the keys), a suggested pair of people merged, people found by name, a
face moved to another person in one step, an album of 2,000 people a page at a time.

Each step leaves a screenshot in tests/screenshots/ for a person to look at.
"""

import sqlite3

import pytest
import requests

from store_service.store import FaceStore
from tests.support.browser import opened, screenshot
from tests.support.faces import FACES, descriptors
from tests.support.services import Service, running, service_env

ALBUM = {
    "Barack Obama": ["obama/obama.jpg", "obama/obama1.jpg", "obama/obama2.jpg", "obama/obama3.jpg"],
    "Joe Biden": ["biden/biden.jpg", "biden/biden2.jpg"],
    "Kit Harington": ["kit_harington/john1.jpeg", "kit_harington/john2.jpeg"],
}
# One more photo of each of two of them, sent after the album was grouped and named.
LATER = {"Kit Harington": "kit_harington/johnsnow_test1.jpg", "Barack Obama": "obama/obama_small.jpg"}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """Both services; faces arrive strictly (none joins or pairs on arrival: the later photos lie 0.24 and
    0.41 from their people), so they wait as unknown faces until someone answers for them."""
    env = service_env(tmp_path_factory, DETECT_WORKERS=1, PEOPLE_JOIN_DISTANCE=0.2, PEOPLE_PAIR_DISTANCE=0.2)
    store, detect = Service("store", env), Service("detect", env)
    env.update(FACEREC_STORE_URL=store.url, FACEREC_DETECT_URL=detect.url, FACEREC_CORS_ORIGINS=store.url)
    with running(store, detect):
        yield store, detect


@pytest.fixture(scope="module")
def album(services):
    """{name: person ID} and {name: the later photo's face ID}: the album sent, re-clustered, named;
    then the later photos."""
    store, detect = services
    for photos in ALBUM.values():
        for relative in photos:
            send(detect, relative)
    call(store, "POST", "/people/recluster")
    people = {}
    for name, photos in ALBUM.items():
        (face,) = send(detect, photos[0])  # posted again: answered as stored, with its person
        people[name] = face["person"]
        call(store, "PATCH", f"/people/{face['person']}", {"name": name})
    later = {}
    for name, relative in LATER.items():
        (face,) = send(detect, relative)
        assert face["person"] is None
        later[name] = face["id"]
    return people, later


def send(detect, relative):
    with open(FACES / "fr_examples" / relative, "rb") as photo:
        response = requests.post(f"{detect.url}/detect", files={"image": photo}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["faces"]


def call(store, method, path, body=None):
    response = requests.request(method, f"{store.url}{path}", json=body, timeout=60)
    assert response.ok, response.text
    return response.json()


def wait_status(page, text):
    page.wait_for_function("text => document.querySelector('#status').textContent === text", arg=text)


def test_the_unknown_faces_queue_answered_yes_then_no_with_the_keys(browser, services, album):
    store, _ = services
    people, later = album
    with opened(browser, f"{store.url}/#/unknown") as page:
        # Newest first: Obama's small photo, then Kit's; each asked about its own person.
        page.wait_for_selector("#ask:has-text('Is this Barack Obama?')")
        assert page.locator(".faces .face").count() == 2
        screenshot(page, "review-1-unknown")
        page.keyboard.press("y")
        wait_status(page, "Yes: Barack Obama.")
        assert call(store, "GET", f"/faces/{later['Barack Obama']}")["person"] == people["Barack Obama"]
        page.wait_for_selector("#ask:has-text('Is this Kit Harington?')")
        assert page.locator(".faces .face").count() == 1
        page.keyboard.press("n")
        wait_status(page, "Not Kit Harington.")
        suggested = call(store, "GET", f"/faces/{later['Kit Harington']}/suggestions")["suggestions"]
        assert people["Kit Harington"] not in [s["person"] for s in suggested]
        assert call(store, "GET", f"/faces/{later['Kit Harington']}")["person"] is None
        page.wait_for_selector("#ask:not(:has-text('Kit Harington'))")
        screenshot(page, "review-2-rejected")
        # Named by hand instead: the name typed finds the person, in one step.
        page.fill("#question .name-input", "kit harington")
        page.click("#question .name-form button")
        wait_status(page, "Named kit harington.")
        assert call(store, "GET", f"/faces/{later['Kit Harington']}")["person"] == people["Kit Harington"]
        page.wait_for_selector("#queue-empty")


def test_a_suggested_pair_merged_with_the_y_key(browser, services, album):
    store, _ = services
    people, _ = album
    obama = people["Barack Obama"]
    faces = [f["id"] for f in call(store, "GET", f"/people/{obama}")["faces"]]
    split = call(store, "POST", "/people", {"faces": faces[:2], "name": None})["id"]  # as a re-cluster may
    with opened(browser, f"{store.url}/#/same") as page:
        page.wait_for_selector("#ask:has-text('Are these the same person?')")
        pair = page.locator("#question .person .name").all_inner_texts()
        assert sorted(pair) == ["Barack Obama", "Unnamed"]
        screenshot(page, "review-3-same")
        page.keyboard.press("y")
        wait_status(page, "Merged Unnamed into Barack Obama.")
        assert len(call(store, "GET", f"/people/{obama}")["faces"]) == len(faces)
        assert requests.get(f"{store.url}/people/{split}", timeout=10).status_code == 404


def test_people_found_by_name_and_a_face_moved_in_one_step(browser, services, album):
    store, _ = services
    people, _ = album
    with opened(browser, f"{store.url}/#/") as page:
        page.locator(".person").first.wait_for()
        page.fill("#search", "bid")
        page.wait_for_function("document.querySelectorAll('.person').length === 1")
        assert page.locator(".person .name").inner_text() == "Joe Biden"
        page.fill("#search", "")
        page.wait_for_function("document.querySelectorAll('.person').length === 3")
        page.goto(f"{store.url}/#/people/{people['Kit Harington']}")
        face = page.locator(".face").first
        face.wait_for()
        moved = call(store, "GET", f"/people/{people['Kit Harington']}")["faces"][0]["id"]
        face.locator(".name-input").fill("Joe Biden")
        face.locator(".name-form button").click()
        wait_status(page, "Moved to Joe Biden.")
        assert call(store, "GET", f"/faces/{moved}")["person"] == people["Joe Biden"]
        screenshot(page, "review-4-moved")
        page.click("#undo")
        wait_status(page, "Undone.")
        assert call(store, "GET", f"/faces/{moved}")["person"] == people["Kit Harington"]


PEOPLE = 2_000  # an album of this many people, as PhotoPrism's and Immich's users report them


@pytest.fixture(scope="module")
def big_album(tmp_path_factory):
    """A store of PEOPLE named people of 2 faces each (random descriptors, written straight into its
    database before it starts: the page is what is tested, not the placing)."""
    env = service_env(tmp_path_factory)
    path = f"{env['FACEREC_DATA_DIR']}/faces.sqlite3"
    FaceStore(path).close()  # the schema
    vectors = descriptors(2 * PEOPLE, seed=21)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO people (id, name, created_at) VALUES (?, ?, 'test')",
            [(p, f"Person {p:04d}") for p in range(1, PEOPLE + 1)],
        )
        db.executemany(
            "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height,"
            " created_at, person_id) VALUES (?, ?, ?, 0, 0, 100, 100, 'test', ?)",
            [(f"{k:064x}", v.astype("<f4").tobytes(), f"photo{k}", k // 2 + 1) for k, v in enumerate(vectors)],
        )
    with running(Service("store", env)) as (store,):
        yield store


def test_two_thousand_people_a_page_at_a_time_and_anyone_found_by_name(browser, big_album):
    with opened(browser, f"{big_album.url}/#/") as page:
        page.locator(".person").first.wait_for()
        assert page.locator(".person").count() == 60 and page.inner_text(".pager").startswith("Page 1 of 34")
        page.fill("#search", "person 1999")
        page.wait_for_function("document.querySelectorAll('.person').length === 1")
        assert page.locator(".person .name").inner_text() == "Person 1999"
        page.locator(".person a").click()
        page.wait_for_function("document.querySelector('#name')?.value === 'Person 1999'")
        screenshot(page, "review-6-found")
