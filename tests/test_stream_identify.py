"""POST /people/identify, the route a stream asks who each face is, over HTTP against a real store.

Two people are built around a real face descriptor `c`: A's three faces near c + 0.4 e1, B's near
c - 0.4 e1 (e1, e2 orthonormal; 0.8 apart, so neither joins the other). A face at c + x e1 + y e2 lies
sqrt((0.4 - x)^2 + y^2) from A and sqrt((0.4 + x)^2 + y^2) from B: the open-set rule (PEOPLE_JOIN_DISTANCE
0.6, PEOPLE_MARGIN 0.05) answers A only when it is within 0.6 of A and 0.05 nearer A than B.
"""

import numpy as np
import pytest
import requests

from tests.support.services import Service, running, service_env

HALF_APART = 0.4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with running(Service("store", service_env(tmp_path_factory))) as (service,):
        yield service


def directions(count, seed=14):
    """`count` orthonormal directions of the descriptor space."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(128, count)))
    return q.T


def post_face(store, photo, descriptor):
    body = {
        "photo_sha256": f"{photo:064x}",
        "faces": [{"descriptor": descriptor.tolist(), "box": {"left": 0, "top": 0, "width": 100, "height": 100}}],
    }
    response = requests.post(f"{store.url}/faces", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["faces"][0]


def identify(store, *descriptors):
    body = {"descriptors": [d.tolist() for d in descriptors]}
    response = requests.post(f"{store.url}/people/identify", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["faces"]


def test_identify_answers_a_person_only_when_clearly_them(store, people_faces):
    c = people_faces["madonna"][0][1].astype(np.float64)
    e1, e2, *jitter = directions(8)
    # Three faces each, 0.01 from their centre in directions of their own (one photo each).
    a_faces = [c + HALF_APART * e1 + 0.01 * j for j in jitter[:3]]
    b_faces = [c - HALF_APART * e1 + 0.01 * j for j in jitter[3:]]
    for i, face in enumerate(a_faces + b_faces):
        post_face(store, i, face)
    assert requests.post(f"{store.url}/people/recluster", timeout=60).ok
    a = identify(store, a_faces[0])[0]["person"]
    people = requests.get(f"{store.url}/people", timeout=10).json()["people"]
    assert len(people) == 2 and [p["count"] for p in people] == [3, 3] and a is not None
    assert requests.patch(f"{store.url}/people/{a}", json={"name": "Ann"}, timeout=10).ok
    faces_before = requests.get(f"{store.url}/health", timeout=10).json()["faces"]

    def at(x, y):
        return c + x * e1 + y * e2

    clearly_a, beyond_margin, within_margin, far = identify(
        store,
        at(0.35, 0.0),  # 0.05 from A, 0.75 from B
        at(0.06, 0.3),  # 0.45 from A, 0.55 from B: 0.10 nearer A, beyond the margin
        at(0.01, 0.3),  # 0.49 from A, 0.51 from B: 0.02 nearer A, within the margin: not clearly A
        at(0.0, 0.8),  # 0.89 from both
    )
    assert (clearly_a["person"], clearly_a["name"]) == (a, "Ann") and clearly_a["distance"] == pytest.approx(
        0.05, abs=0.01
    )
    assert (beyond_margin["person"], beyond_margin["name"]) == (a, "Ann")
    assert beyond_margin["distance"] == pytest.approx(0.453, abs=0.01)
    assert (within_margin["person"], within_margin["name"]) == (None, None)
    assert within_margin["distance"] == pytest.approx(0.492, abs=0.01)  # near A, yet unknown: the margin
    assert far["person"] is None and (far["distance"] is None or far["distance"] > 0.6)
    # Read only: nothing was stored, no one was paired.
    assert requests.get(f"{store.url}/health", timeout=10).json()["faces"] == faces_before
