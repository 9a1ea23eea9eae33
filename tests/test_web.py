"""The people page in a real browser: Debian's chromium, driven by Playwright, against both services as
real gunicorn processes. Photos of real people go in through the drop zone; the faces are boxed and
named; a person is renamed, two are merged, a face is removed (undone, and removed again); after a
reload every correction is kept; a hidden person leaves the grid until hidden people are shown.

Each step leaves a screenshot in tests/screenshots/ for a person to look at.
"""

import os
import re

import pytest
import requests

from tests.support.browser import opened, screenshot
from tests.support.faces import FACES

# Photos of three people, several each, so that each person's faces make a person of their own.
PHOTOS = {
    "obama": ["fr_examples/obama/obama.jpg", "fr_examples/obama/obama2.jpg", "fr_examples/obama/obama3.jpg"],
    "biden": ["fr_examples/biden/biden.jpg", "fr_examples/biden/biden2.jpg"],
    "kit": ["fr_examples/kit_harington/john1.jpeg", "fr_examples/kit_harington/john2.jpeg"],
}


@pytest.fixture
def page(browser, services):
    with opened(browser, services[0].url) as page:
        yield page


def upload(page, relative):
    """Drop one photo on the page and wait until its faces are shown."""
    name = os.path.basename(relative)
    page.set_input_files("#file", str(FACES / relative))
    page.wait_for_function("name => document.querySelector('#status').textContent.endsWith(` in ${name}.`)", arg=name)


def people(store):
    return requests.get(f"{store.url}/people?limit=100", timeout=10).json()["people"]


def person_card(page, person):
    return page.locator(f'.person:has(a[href="#/people/{person["id"]}"])')


def test_upload_rename_merge_remove_and_reload(page, services):
    store, _ = services
    for relative in [p for photos in PHOTOS.values() for p in photos]:
        upload(page, relative)
    # The last photo's face is boxed on the face and named with its person.
    box = page.locator(".box")
    assert box.count() == 1
    image, framed = page.locator("#photo-img").bounding_box(), box.bounding_box()
    assert image["x"] < framed["x"] and framed["x"] + framed["width"] < image["x"] + image["width"]
    assert page.locator(".box .label").inner_text() not in ("", "Unknown")
    screenshot(page, "1-uploaded")

    # The grid shows each person with a thumbnail of their cover face.
    before = people(store)
    assert len(before) >= 3
    page.wait_for_function(
        "[...document.querySelectorAll('.person img')].every(i => i.complete && i.naturalWidth === 112)"
    )
    screenshot(page, "2-people")

    # Rename the person with the most faces (Obama's three).
    biggest = max(before, key=lambda p: p["count"])
    person_card(page, biggest).locator("a").click()
    page.fill("#name", "Barack Obama")
    page.click("text=Rename")
    page.wait_for_selector("#status:has-text('Renamed to Barack Obama.')")
    screenshot(page, "3-renamed")

    # Merge two other people into one.
    page.click("text=← All people")
    a, b = [p for p in before if p["id"] != biggest["id"]][:2]
    person_card(page, a).locator(".pick").check()
    person_card(page, b).locator(".pick").check()
    page.click("#merge")
    page.wait_for_selector("#status:has-text('Merged 2 people into one.')")
    screenshot(page, "4-merged")

    # Remove one face from the renamed person.
    person_card(page, biggest).locator("a").click()
    faces = page.locator(".face")
    faces.first.wait_for()
    count = faces.count()
    faces.first.locator(".remove").click()
    page.wait_for_selector("#status:has-text('Face removed.')")
    assert page.locator(".face").count() == count - 1
    # Undo takes the removal back; removed again, it stays removed.
    page.click("#undo")
    page.wait_for_selector("#status:has-text('Undone.')")
    assert page.locator(".face").count() == count
    faces.first.locator(".remove").click()
    page.wait_for_selector("#status:has-text('Face removed.')")
    assert page.locator(".face").count() == count - 1
    screenshot(page, "5-removed")

    # After a reload, all of it is still there.
    page.reload()
    page.goto(f"{store.url}/#/")
    page.locator(".person").first.wait_for()
    after = {p["id"]: p for p in people(store)}
    assert after[biggest["id"]]["name"] == "Barack Obama" and after[biggest["id"]]["count"] == count - 1
    (merged,) = [after[p["id"]] for p in (a, b) if p["id"] in after]  # the first selected stays
    assert merged["count"] == a["count"] + b["count"]
    assert person_card(page, after[biggest["id"]]).locator(".name").inner_text() == "Barack Obama"
    assert re.fullmatch(rf"{count - 1} faces?", person_card(page, after[biggest["id"]]).locator(".count").inner_text())
    assert page.locator(".person").count() == len(after) == len(before) - 1
    screenshot(page, "6-reloaded")

    # Hidden, a person leaves the grid, and comes back with "Show hidden people".
    person_card(page, merged).locator("a").click()
    page.click("#hide")
    page.wait_for_selector("#status:has-text('Hidden.')")
    page.click("text=← All people")
    page.locator(".person").first.wait_for()
    assert person_card(page, merged).count() == 0
    page.check("#show-hidden")
    person_card(page, merged).wait_for()
    assert "hidden" in person_card(page, merged).get_attribute("class")
    screenshot(page, "7-hidden")


def enter_key(page, service, key):
    page.wait_for_selector("#key-form:not([hidden])")
    assert service in page.inner_text("#key-label")
    page.fill("#key", key)
    page.click("text=Use this key")


def test_with_keys_the_page_asks_each_service_for_its_own(browser, keyed_services):
    store, _ = keyed_services
    with opened(browser, store.url) as page:
        enter_key(page, "store", "store-key")
        page.wait_for_selector("text=No people yet")
        page.set_input_files("#file", str(FACES / PHOTOS["obama"][0]))
        enter_key(page, "detect service", "detect-key")
        for relative in PHOTOS["obama"]:
            upload(page, relative)
        assert page.locator(".box").count() == 1
        # Thumbnails come with the key too (fetched, since an <img> cannot send it).
        page.wait_for_function("document.querySelector('.person img')?.naturalWidth === 112")
        screenshot(page, "8-keys")
