"""A scripted user names a whole album through the store's API, using only what the service shows.

The album's faces go into a real store (its Flask app over a SQLite file: the API's own routes) photo by
photo, shuffled, and are re-clustered. The user recognises a person by the faces the service shows
them (the identity most of its labelled faces have) and a face by its own identity, and:

1. answers every merge suggestion (GET /people/<id>/suggestions): merge or not-same;
2. names each person the list shows (PATCH), or, when a person of that name exists already and was
   not suggested, merges it into that one;
3. moves each face placed with the wrong person to the right one (PUT /faces/<id>/person);
4. answers the suggestions of every unknown face (GET /faces?person=none): yes, or no and the next;
   a face none of whose suggestions is right is named by hand (POST /people or PUT).

Each is one action. Faces of people in the background (no identity) are skipped: nobody can name them.
At the end every labelled face must be with the person named as its identity.
"""

import hashlib
import tempfile

from store_service import create_app

BOX = {"left": 0, "top": 0, "width": 100, "height": 100}


def label_album(faces: list[dict], order: list[int]) -> dict:
    """{"faces", "actions", "per_100", "by_kind", "named_by_hand", "unlabelled"} for one album."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": True, "DATA_DIR": folder, "PEOPLE_RECLUSTER_AFTER": 0})
        try:
            client = app.test_client()
            truth = _store(client, faces, order)
            user = _User(client, truth)
            user.answer_merges()
            user.name_people()
            user.move_misplaced()
            user.answer_unknown()
            unlabelled = user.unlabelled()
        finally:
            app.extensions["face_store"].close()
    actions = sum(user.actions.values())
    return {
        "faces": len(truth),
        "actions": actions,
        "per_100": round(100 * actions / len(truth), 2),
        "by_kind": user.actions,
        "named_by_hand": user.by_hand,
        "unlabelled": unlabelled,
    }


def _store(client, faces, order):
    """Every face stored photo by photo in `order`, then re-clustered; {face ID: identity} of the labelled."""
    photos = {}
    for k in order:
        photos.setdefault(faces[k]["photo"], []).append(k)
    truth = {}
    for photo, members in photos.items():
        sha = hashlib.sha256(photo.encode()).hexdigest()  # as the detect service names a photo
        body = {
            "photo_sha256": sha,
            # with its quality, as the detect service sends it: a low-quality face founds no person
            "faces": [
                {"descriptor": faces[k]["descriptor"], "box": BOX, "quality": faces[k]["quality"]} for k in members
            ],
        }
        stored = _ok(client.post("/faces", json=body))["faces"]
        truth.update({s["id"]: faces[k]["identity"] for k, s in zip(members, stored) if faces[k]["identity"]})
    _ok(client.post("/people/recluster"))
    return truth


def _ok(response):
    assert response.status_code < 300, response.json
    return response.json


class _User:
    """What a user does on the page, one API call an action; `truth` is what they recognise."""

    def __init__(self, client, truth):
        self.client, self.truth = client, truth
        self.actions = {"merge": 0, "not-same": 0, "name": 0, "move": 0, "remove": 0, "yes": 0, "no": 0, "by hand": 0}
        self.by_hand = 0

    def act(self, kind, method, path, body=None):
        self.actions[kind] += 1
        return _ok(self.client.open(path, method=method, json=body))

    def people(self):
        listed, page = [], 1
        while True:
            body = _ok(self.client.get(f"/people?page={page}&hidden=true"))
            listed += body["people"]
            if len(listed) >= body["total"]:
                return listed
            page += 1

    def identity(self, person):
        """Who the user sees in a person: the identity most of its labelled faces have (None: strangers)."""
        faces = [
            self.truth[f["id"]] for f in _ok(self.client.get(f"/people/{person}"))["faces"] if f["id"] in self.truth
        ]
        return max(set(faces), key=faces.count) if faces else None

    def named(self, identity):
        found = _ok(self.client.get("/people", query_string={"q": identity, "hidden": "true"}))["people"]
        return next((p["id"] for p in found if p["name"] == identity), None)

    def answer_merges(self):
        for person in self.people():
            seen = set()
            while self._exists(person["id"]):  # merged into another meanwhile: that one answers
                pending = [
                    s
                    for s in _ok(self.client.get(f"/people/{person['id']}/suggestions"))["suggestions"]
                    if s["person"] not in seen
                ]
                if not pending:
                    break
                other = pending[0]
                mine, theirs = self.identity(person["id"]), self.identity(other["person"])
                if mine is None or theirs is None:
                    seen.add(other["person"])  # strangers: nobody can say; next
                elif mine == theirs:
                    self.merge_into(person["id"], other["person"])
                else:
                    self.act("not-same", "POST", f"/people/{person['id']}/not-same", {"person": other["person"]})

    def _exists(self, person):
        return self.client.get(f"/people/{person}").status_code == 200

    def name_people(self):
        for person in self.people():
            identity = self.identity(person["id"])
            if identity is None or person["name"] == identity:
                continue
            holder = self.named(identity)
            if holder is None:
                self.act("name", "PATCH", f"/people/{person['id']}", {"name": identity})
            else:
                self.merge_into(holder, person["id"])

    def merge_into(self, holder, person):
        """Merge `person` into `holder`. When a photo shows both (the 409 names it: a stranger placed
        with one, or a photo of two pictures of one person), the user removes that photo's face from
        `person` first, as the page shows it, and merges again: two actions more."""
        while (answer := self.client.post(f"/people/{holder}/merge", json={"people": [person]})).status_code == 409:
            self.actions["merge"] += 1
            photo = answer.json["message"].split()[1]  # "photo <sha256> shows more than one of these people"
            face = next(f["id"] for f in _ok(self.client.get(f"/photos/{photo}"))["faces"] if f["person"] == person)
            self.act("remove", "POST", f"/people/{person}/faces/{face}/remove")
        _ok(answer)
        self.actions["merge"] += 1

    def move_misplaced(self):
        for person in self.people():
            for face in _ok(self.client.get(f"/people/{person['id']}"))["faces"]:
                identity = self.truth.get(face["id"])
                if identity is not None and identity != person["name"]:
                    self.put_with(face["id"], identity, "move")

    def put_with(self, face, identity, kind):
        holder = self.named(identity)
        if holder is None:
            self.act(kind, "POST", "/people", {"name": identity, "faces": [face]})
        else:
            self.clear_photo(face, holder)
            self.act(kind, "PUT", f"/faces/{face}/person", {"person": holder})

    def clear_photo(self, face, holder):
        """A stranger of the face's photo placed with `holder` is removed from them first (the 409 says
        which face): one photo shows a person once."""
        photo = _ok(self.client.get(f"/faces/{face}"))["photo_sha256"]
        for other in _ok(self.client.get(f"/photos/{photo}"))["faces"]:
            if other["person"] == holder and other["id"] != face:
                self.act("remove", "POST", f"/people/{holder}/faces/{other['id']}/remove")

    def answer_unknown(self):
        after = ""
        while True:
            page = _ok(self.client.get("/faces", query_string={"person": "none", "after": after, "limit": 200}))
            for face in page["faces"]:
                if face["id"] in self.truth:
                    self.answer_face(face["id"], self.truth[face["id"]])
            if page["next"] is None:
                return
            after = page["next"]

    def answer_face(self, face, identity):
        while suggestions := _ok(self.client.get(f"/faces/{face}/suggestions"))["suggestions"]:
            first = suggestions[0]
            if first["name"] == identity:
                self.act("yes", "PUT", f"/faces/{face}/person", {"person": first["person"]})
                return
            self.act("no", "POST", f"/faces/{face}/not-person", {"person": first["person"]})
        self.by_hand += 1
        self.put_with(face, identity, "by hand")

    def unlabelled(self):
        """Labelled faces not with the person named as their identity."""
        person = {}
        for listed in self.people():
            for face in _ok(self.client.get(f"/people/{listed['id']}"))["faces"]:
                person[face["id"]] = listed["name"]
        return sum(person.get(face) != identity for face, identity in self.truth.items())
