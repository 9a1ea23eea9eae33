"""How well facerec groups faces into people, on every labelled set in ../shared/data/faces/.

    make bench-people

Each set is `<set>/<identity>/<file>`; folders starting with `_` are unlabelled and skipped. A photo's
largest face carries its folder's identity; its other faces (people in the background) are stored too
but left out of the scores. Descriptors come from facerec.vision.faces with faces of 40 px or more,
computed once and cached in bench/.cache/ (keyed by the dlib build).

Per set, the faces go into a real FaceStore (SQLite under a temporary folder) photo by photo in two
orders: shuffled (seed 0), and chronological: EXIF DateTimeOriginal where a photo has one, else by
file name (the name alone, not its folder: "1.jpg" of every identity before "10.jpg"). Scored:

- incremental: the people as placed on arrival (POST /faces' path);
- re-clustered: after POST /people/recluster's path;
- textbook 0.6: scikit-learn's average linkage over Euclidean distances, cut at 0.6;
- complete 0.75: the other textbook, complete linkage cut at 0.75;
- jAlbum: every match within 0.36 merged transitively, what jAlbum's client does.

Pairwise precision, recall and F1 over labelled faces (two faces are a predicted pair when in one
person), people per identity (distinct people among its placed faces), share of faces left unknown,
pairs of identities merged; what the share threshold means on each set; the paths and the algorithms
pooled over the sets. Then a re-cluster of 100 k faces (real descriptors plus jittered copies) in a
store service, with /similar's latency meanwhile against idle. And a scripted user who names each
album through the API (bench/labelling.py): the actions it takes, per 100 faces. Prints tables and
writes bench/people-results.json. `--parts quality,labelling,100k` (the default) chooses among them.
"""

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from labelling import label_album  # noqa: E402  (bench/labelling.py, beside this script)

from facerec.service.config import DEFAULTS  # noqa: E402
from facerec.vision.faces import Models, analyse_photo  # noqa: E402
from store_service.people import clusters  # noqa: E402
from store_service.store import FaceStore  # noqa: E402
from tests.support.services import Service, running  # noqa: E402

FACES = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "faces"
CACHE = REPO / "bench" / ".cache"
RESULTS = REPO / "bench" / "people-results.json"
JALBUM_DISTANCE = 0.36  # jAlbum's max-distance, merged transitively
MERGED = 0.1  # two identities count as merged when one person holds at least this share of each
PATHS = (
    "incremental shuffled",
    "incremental chronological",
    "re-clustered shuffled",
    "re-clustered chronological",
    "textbook 0.6",
    "complete 0.75",
    "jAlbum 0.36",
)
STORE_SETTINGS = {"PEOPLE_RECLUSTER_AFTER": 0}  # the quality part's store (--low-quality adds to it)
BIG = 100_000  # faces in the timing run
IDLE_QUERIES = 500  # /similar queries of the idle baseline
JITTER = 0.15  # length of the noise added to each copy: within one person's spread (about 0.4 apart)
EXIF_DATE = 0x9003  # DateTimeOriginal
# Most of these web photos are small: at the service's default of 100 px half of celeb5's faces are
# not found at all. 40 px finds them (MIN_FACE_PX goes down to 20).
MIN_FACE_PX = 40


# ---- descriptors ----------------------------------------------------------------------------------


def labelled_sets():
    return sorted(
        d for d in FACES.iterdir() if d.is_dir() and any(p.is_dir() and not p.name.startswith("_") for p in d.iterdir())
    )


def faces_of_set(folder, models):
    """[{"photo", "identity" (None for a background face), "descriptor", "when"}] of a labelled set."""
    out = []
    for identity in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in sorted(identity.iterdir()):
            try:
                _, found = analyse_photo(models, path.read_bytes(), MIN_FACE_PX)
            except Exception as e:  # noqa: BLE001 (a file the pipeline refuses is reported and skipped)
                print(f"  skipped {path.name}: {type(e).__name__}", file=sys.stderr)
                continue
            largest = max(range(len(found)), key=lambda i: found[i].box.width * found[i].box.height, default=None)
            for i, face in enumerate(found):
                out.append(
                    {
                        "photo": f"{identity.name}/{path.name}",
                        "identity": identity.name if i == largest else None,
                        "descriptor": face.descriptor.tolist(),
                        "when": taken_at(path),
                        "quality": face.quality,
                        "detector": face.detector,
                    }
                )
    return out


def taken_at(path):
    """The sort key of the chronological order: (EXIF date or "~" after every date, file name)."""
    try:
        with Image.open(path) as image:
            date = image.getexif().get(EXIF_DATE) or image.getexif().get_ifd(0x8769).get(EXIF_DATE)
    except OSError:
        date = None
    return [str(date) if date else "~", path.name]


def all_faces():
    models = Models()
    # Keyed by the dlib build and the vision library's code (how faces are found, described and rated),
    # so a cache of another pipeline is never read.
    code = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((REPO / "facerec" / "vision").glob("*.py"))))
    cache = CACHE / f"faces-{models.build.replace(' ', '_')}-{code.hexdigest()[:12]}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    sets = {}
    for folder in labelled_sets():
        print(f"describing {folder.name} ...", file=sys.stderr)
        sets[folder.name] = faces_of_set(folder, models)
    CACHE.mkdir(exist_ok=True)
    cache.write_text(json.dumps(sets))
    return sets


# ---- scores ---------------------------------------------------------------------------------------


def pair_counts(identities, persons):
    """(true positives, predicted pairs, true pairs) over the labelled faces; None persons are alone."""
    labelled = [(i, p) for i, p in zip(identities, persons) if i is not None]
    tp = predicted = true = 0
    for a in range(len(labelled)):
        for b in range(a + 1, len(labelled)):
            same_id = labelled[a][0] == labelled[b][0]
            same_p = labelled[a][1] is not None and labelled[a][1] == labelled[b][1]
            tp += same_id and same_p
            predicted += same_p
            true += same_id
    return tp, predicted, true


def scores(identities, persons):
    tp, predicted, true = pair_counts(identities, persons)
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    labelled = [(i, p) for i, p in zip(identities, persons) if i is not None]
    per_identity = {}
    for i, p in labelled:
        per_identity.setdefault(i, set()).update([] if p is None else [p])
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "people_per_identity": round(float(np.mean([len(s) for s in per_identity.values()])), 2),
        "unknown": round(sum(p is None for _, p in labelled) / len(labelled), 3),
        "counts": [int(tp), int(predicted), int(true)],
        "merged": merged(labelled),
    }


def merged(labelled):
    """Pairs of identities that one person holds a real part of: at least 2 faces and MERGED of each."""
    size, held = {}, {}
    for i, p in labelled:
        size[i] = size.get(i, 0) + 1
        if p is not None:
            held.setdefault(p, {}).setdefault(i, 0)
            held[p][i] += 1
    pairs = set()
    for counts in held.values():
        big = sorted(i for i, c in counts.items() if c >= 2 and c >= MERGED * size[i])
        pairs.update(f"{a} + {b}" for k, a in enumerate(big) for b in big[k + 1 :])
    return sorted(pairs)


def pooled(counts):
    """Precision, recall and F1 of the pairs of several sets together."""
    tp, predicted, true = (sum(c[k] for c in counts) for k in range(3))
    precision, recall = tp / predicted if predicted else 1.0, tp / true
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def share_figures(identities, vectors, distance=0.6):
    """What PEOPLE_CLUSTER_SHARE means on a set: the share of pairs within `distance` among the faces of
    one identity (the lowest, the median), between the faces of two identities (the highest, also among
    identities of 10 faces or more), and from one face to the other faces of its own identity (the share
    of faces under 0.4) or to another identity (the highest)."""
    labelled = [k for k, i in enumerate(identities) if i is not None]
    names = np.array([identities[k] for k in labelled])
    near = distances(vectors[labelled]) <= distance
    people = [np.flatnonzero(names == n) for n in sorted(set(names))]
    within = [near[np.ix_(p, p)][np.triu_indices(len(p), 1)].mean() for p in people if len(p) > 1]
    between = [(near[np.ix_(p, q)].mean(), min(len(p), len(q))) for i, p in enumerate(people) for q in people[i + 1 :]]
    own, other = [], []
    for p in (p for p in people if len(p) > 2):
        for k in p:
            own.append((near[k, p].sum() - 1) / (len(p) - 1))
            other.append(max(near[k, q].mean() for q in people if q is not p))
    return {
        "same_lowest": round(min(within), 3),
        "same_median": round(float(np.median(within)), 3),
        "different_highest": round(max(b for b, _ in between), 3),
        "different_highest_10": round(max((b for b, n in between if n >= 10), default=0), 3),
        "face_own_under_share": round(sum(o < DEFAULTS["PEOPLE_CLUSTER_SHARE"] for o in own) / max(len(own), 1), 3),
        "face_other_highest": round(max(other, default=0), 3),
    }


def ratio_figures(identities, vectors):
    """What PEOPLE_SPREAD_RATIO means on a set: each labelled face's spread ratio (clusters.spread_ratio)
    to each identity of SPREAD_FACES or more (its own without it): for its own identity the median, the
    99th percentile and the share above the setting; the effective dimension k that a chi-square law
    with the own ratios' mean and variance has, and that law's 99th percentile; for other identities
    the lowest, the 1st percentile and the share within the setting."""
    labelled = [k for k, i in enumerate(identities) if i is not None]
    names = np.array([identities[k] for k in labelled])
    v = vectors[labelled].astype(np.float64)
    judged = [n for n in sorted(set(names)) if np.count_nonzero(names == n) >= clusters.SPREAD_FACES]
    own, other = [], []
    for n in judged:
        for k in range(len(v)):
            mine = (names == n) & (np.arange(len(v)) != k)
            centre = v[mine].mean(axis=0)
            spread = np.mean(np.sum((v[mine] - centre) ** 2, axis=1))
            ratio = float(clusters.spread_ratio(np.sum((v[k] - centre) ** 2), spread, np.count_nonzero(mine)))
            (own if names[k] == n else other).append(ratio)
    if not own:
        return None
    own, other, limit = np.array(own), np.array(other), DEFAULTS["PEOPLE_SPREAD_RATIO"]
    k = 2 * own.mean() ** 2 / own.var()
    return {
        "own_median": round(float(np.median(own)), 2),
        "own_p99": round(float(np.percentile(own, 99)), 2),
        "own_above": round(float(np.mean(own > limit)), 3),
        "dimension": round(float(k), 1),
        "chi2_p99": round(float(chi2_quantile(2.326, k)), 2),
        "other_lowest": round(float(other.min()), 2) if len(other) else None,
        "other_p1": round(float(np.percentile(other, 1)), 2) if len(other) else None,
        "other_within": round(float(np.mean(other <= limit)), 4) if len(other) else None,
    }


def chi2_quantile(z, k):
    """The quantile of chi-square / k with k degrees of freedom at the normal quantile z (Wilson and
    Hilferty's approximation, within 1 % here)."""
    return (1 - 2 / (9 * k) + z * np.sqrt(2 / (9 * k))) ** 3


# ---- the store's two paths, and jAlbum's ----------------------------------------------------------


def through_store(faces, order):
    """(persons after incremental placement, persons after a re-cluster), per face, in the input's order."""
    photos = {}
    for k in order:
        photos.setdefault(faces[k]["photo"], []).append(k)
    box = {"left": 0, "top": 0, "width": 100, "height": 100}
    with tempfile.TemporaryDirectory() as folder:
        store = FaceStore(os.path.join(folder, "faces.sqlite3"), settings=STORE_SETTINGS)
        ids = {}
        for photo, members in photos.items():
            stored = store.add_faces(
                photo,
                [{"descriptor": faces[k]["descriptor"], "box": box, "quality": faces[k]["quality"]} for k in members],
                0.36,
                1,
            )
            ids.update({k: s["id"] for k, s in zip(members, stored)})
        incremental = persons_in(store, ids, len(faces))
        store.people.recluster()
        reclustered = persons_in(store, ids, len(faces))
        store.close()
    return incremental, reclustered


def persons_in(store, ids, n):
    person = dict(store.db.execute("SELECT id, person_id FROM faces"))
    return [person[ids[k]] for k in range(n)]


def distances(vectors):
    return np.linalg.norm(vectors[:, None] - vectors[None], axis=2)


def transitive(vectors, distance):
    """Union of every pair within `distance`: jAlbum's grouping."""
    return groups(distances(vectors) <= distance)


def groups(adjacent):
    """Connected components of a boolean adjacency matrix, as a label per face."""
    parent = list(range(len(adjacent)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(*np.nonzero(np.triu(adjacent, 1))):
        parent[root(a)] = root(b)
    return [root(i) for i in range(len(adjacent))]


def dbscan(vectors, eps, min_points=2):
    """DBSCAN: faces with min_points within eps (themselves included) are cores; noise stays unknown."""
    near = distances(vectors) <= eps
    core = near.sum(1) >= min_points
    labels = groups(near & core[:, None] & core[None, :])
    return [
        labels[i] if core[i] else next((labels[j] for j in np.flatnonzero(near[i] & core)), None)
        for i in range(len(vectors))
    ]


def chinese_whispers(vectors, distance, rounds=20, seed=0):
    """dlib's Chinese whispers: each face takes the label most of its neighbours within `distance` hold."""
    rng = np.random.default_rng(seed)
    d = distances(vectors)
    near = [np.flatnonzero((row <= distance) & (np.arange(len(d)) != i)) for i, row in enumerate(d)]
    labels = np.arange(len(vectors))
    for _ in range(rounds):
        for i in rng.permutation(len(vectors)):
            if len(near[i]):
                values, counts = np.unique(labels[near[i]], return_counts=True)
                labels[i] = values[np.argmax(counts)]
    return labels.tolist()


def linkage(vectors, photos, distance, share=None):
    """facerec's re-cluster (share of cross pairs within `distance`, one-photo constraint), without a store."""
    index = {}
    for i, p in enumerate(photos):
        index.setdefault(p, []).append(i)
    cannot = np.array([(a, b) for rows in index.values() for a in rows for b in rows if a < b], np.int64).reshape(-1, 2)
    share = DEFAULTS["PEOPLE_CLUSTER_SHARE"] if share is None else share
    labels = clusters.cluster(
        vectors,
        cannot,
        distance,
        share,
        DEFAULTS["PEOPLE_SPREAD_RATIO"],
        DEFAULTS["PEOPLE_NEIGHBOURS"],
        DEFAULTS["PEOPLE_EXACT_LIMIT"],
        DEFAULTS["PEOPLE_MIN_FACES"],
    )
    return [None if label == clusters.NO_CLUSTER else int(label) for label in labels]


def textbook(vectors, distance=0.6, linkage="average"):
    """The textbook: scikit-learn's average (or complete) linkage on precomputed Euclidean distances,
    cut at `distance`; a cluster of one face is no person, as in ours."""
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage=linkage, distance_threshold=distance
    ).fit_predict(distances(vectors))
    sizes = np.bincount(labels)
    return [int(label) if sizes[label] > 1 else None for label in labels]


ALGORITHMS = {
    "transitive 0.36 (jAlbum)": lambda v, p: transitive(v, 0.36),
    "transitive 0.5": lambda v, p: transitive(v, 0.5),
    "transitive 0.6": lambda v, p: transitive(v, 0.6),
    "DBSCAN 0.5": lambda v, p: dbscan(v, 0.5),
    "Chinese whispers 0.6": lambda v, p: chinese_whispers(v, 0.6),
    "avg linkage 0.5": lambda v, p: linkage(v, p, 0.5),
    "avg linkage 0.6 (chosen)": lambda v, p: linkage(v, p, 0.6),
}


# ---- the 100 k timing -----------------------------------------------------------------------------


def time_big(vectors):
    """A re-cluster of BIG faces in a real store service, twice (the first moves every face into a
    person, the second few): its seconds, and /similar's latency meanwhile, over HTTP, in all and while
    the store writes its changes, against idle before, between and after (other work on a shared machine
    comes and goes, so idle is measured around each); then the time to place one new face at that size
    (in-process add_faces)."""
    rng = np.random.default_rng(0)
    copies = vectors[rng.integers(len(vectors), size=BIG)]
    noise = rng.normal(size=copies.shape)
    copies = (copies + noise / np.linalg.norm(noise, axis=1, keepdims=True) * JITTER).astype("<f4")
    ids = [f"{i:064x}" for i in range(BIG)]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "faces.sqlite3")
        FaceStore(path).close()  # the schema
        db = sqlite3.connect(path)
        db.executemany(
            "INSERT INTO faces (id, descriptor, photo_sha256, box_left, box_top, box_width, box_height, created_at)"
            " VALUES (?, ?, ?, 0, 0, 100, 100, 'bench')",
            ((ids[i], v.tobytes(), f"photo{i}") for i, v in enumerate(copies)),
        )
        db.commit()
        db.close()
        env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=folder, FACEREC_PEOPLE_RECLUSTER_AFTER="0")
        with running(Service("store", env, quiet=True)) as (service,):  # on a free port: benches run side by side
            session = requests.Session()
            (worker,) = service.worker_pids()
            idle = [[similar_ms(session, service.url, ids, rng) for _ in range(IDLE_QUERIES)]]
            result = {"faces": BIG}
            for run in ("first", "again"):
                result[run] = under_recluster(session, service.url, ids, rng, worker)
                idle.append([similar_ms(session, service.url, ids, rng) for _ in range(IDLE_QUERIES)])
            result["idle"] = latency([ms for window in idle for ms in window])
            result["idle_windows"] = [latency(window) for window in idle]
        store = FaceStore(path, settings={"PEOPLE_RECLUSTER_AFTER": 0})
        place = []
        for i, v in enumerate(copies[:50] + 0.01):
            start = time.perf_counter()
            store.add_faces(
                f"new{i}", [{"descriptor": v, "box": {"left": 0, "top": 0, "width": 9, "height": 9}}], 0.36, 10
            )
            place.append(time.perf_counter() - start)
        store.close()
    result["add_faces_median_ms"] = round(1000 * float(np.median(place)), 2)
    return result


def under_recluster(session, url, ids, rng, worker):
    """POST /people/recluster's answer, and the latency of /similar queries sent one after another until
    it came: all of them, and ("write") those sent after the re-cluster's process (a child of the store's
    `worker`) exited, while the store wrote its plan."""
    done = []
    post = threading.Thread(target=lambda: done.append(post_json(f"{url}/people/recluster")))
    post.start()
    watch = threading.Thread(target=wait_for_children, args=(worker,))
    watch.start()
    during, writing = [], []
    while post.is_alive():
        (during if watch.is_alive() else writing).append(similar_ms(session, url, ids, rng))
    post.join()
    watch.join()
    return {**done[0], **latency(during + writing), "write": latency(writing) if writing else None}


def wait_for_children(pid):
    """Return once the process has had a child and has none left (its re-cluster started and ended)."""
    seen = False
    while True:
        children = psutil.Process(pid).children()
        seen = seen or bool(children)
        if seen and not children:
            return
        time.sleep(0.01)


def similar_ms(session, url, ids, rng):
    """Milliseconds of one GET /faces/<id>/similar for a random stored face."""
    start = time.perf_counter()
    session.get(f"{url}/faces/{ids[rng.integers(len(ids))]}/similar", timeout=600).raise_for_status()
    return (time.perf_counter() - start) * 1000


def post_json(url):
    """POST on a session of its own (a requests session is not for two threads at once); the JSON answer."""
    with requests.Session() as session:
        answer = session.post(url, timeout=1200)
        answer.raise_for_status()
        return answer.json()


def latency(ms):
    return {
        "queries": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(np.max(ms)), 1),
    }


# ---- the run --------------------------------------------------------------------------------------


def main(parts):
    sets = all_faces()
    results = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()}-core"}
    print(f"People, {results['date']}, {results['machine']} machine, load average {os.getloadavg()}")
    if "quality" in parts:
        results.update(quality(sets))
        print_quality(results)
    if "labelling" in parts:
        results["labelling"] = {
            name: label_album(faces, np.random.default_rng(0).permutation(len(faces)).tolist())
            for name, faces in sets.items()
            if any(f["identity"] for f in faces)
        }
        print_labelling(results["labelling"])
    if "100k" in parts:
        every = np.array([f["descriptor"] for faces in sets.values() for f in faces], np.float32)
        results["100k"] = time_big(every)
        print_big(results["100k"])
    print(f"load average at the end {os.getloadavg()}")
    RESULTS.write_text(json.dumps(results, indent=1))


def quality(sets):
    """Per set, our paths, the textbook and jAlbum; the paths and the algorithms pooled over the sets."""
    results = {"sets": {}}
    counts = {name: [] for name in ALGORITHMS}
    for name, faces in sets.items():
        identities = [f["identity"] for f in faces]
        if len({i for i in identities if i}) < 2 or not pair_counts(identities, identities)[2]:
            continue  # no two faces of one person: nothing to score
        vectors = np.array([f["descriptor"] for f in faces], np.float32)
        shuffled = np.random.default_rng(0).permutation(len(faces)).tolist()
        chronological = sorted(range(len(faces)), key=lambda k: faces[k]["when"])
        row = {"faces": len(faces), "identities": len({i for i in identities if i})}
        orders = {"shuffled": shuffled, "chronological": chronological}
        stored = {order_name: through_store(faces, order) for order_name, order in orders.items()}
        for order_name, (incremental, reclustered) in stored.items():
            row[f"incremental {order_name}"] = scores(identities, incremental)
            row[f"re-clustered {order_name}"] = scores(identities, reclustered)
        row["HOG's faces"] = hog_faces(faces, orders, stored)
        row["shares"] = share_figures(identities, vectors)
        row["ratios"] = ratio_figures(identities, vectors)
        row["textbook 0.6"] = scores(identities, textbook(vectors))
        row["complete 0.75"] = scores(identities, textbook(vectors, 0.75, "complete"))
        row["jAlbum 0.36"] = scores(identities, transitive(vectors, JALBUM_DISTANCE))
        results["sets"][name] = row
        photos = [f["photo"] for f in faces]
        for algorithm, run in ALGORITHMS.items():
            counts[algorithm].append(pair_counts(identities, run(vectors, photos)))
    results["pooled"] = {path: pooled([row[path]["counts"] for row in results["sets"].values()]) for path in PATHS}
    results["algorithms"] = {name: pooled(rows) for name, rows in counts.items()}
    return results


def hog_faces(faces, orders, stored):
    """Our paths scored on the faces HOG found, {path: (F1 when they alone are stored, F1 among every
    face found, `stored`)}: whether the faces only YuNet finds (detector "cnn") group HOG's worse."""
    hog = [k for k, f in enumerate(faces) if f["detector"] == "hog"]
    if len(hog) == len(faces):
        return {}
    alone = [faces[k] for k in hog]
    identities = [f["identity"] for f in alone]
    among = [f["identity"] if f["detector"] == "hog" else None for f in faces]
    position = {k: i for i, k in enumerate(hog)}
    out = {}
    for order_name, order in orders.items():
        alone_paths = through_store(alone, [position[k] for k in order if k in position])
        for way, a, b in zip(("incremental", "re-clustered"), alone_paths, stored[order_name]):
            out[f"{way} {order_name}"] = (scores(identities, a)["f1"], scores(among, b)["f1"])
    return out


def print_quality(results):
    print("Precision / recall / F1; people per identity; unknown share")
    print("| set (faces, identities) | path | P | R | F1 | people/identity | unknown | merged |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in results["sets"].items():
        for path in PATHS:
            s = row[path]
            print(
                f"| {name} ({row['faces']}, {row['identities']}) | {path} | {s['precision']:.3f} | {s['recall']:.3f} "
                f"| {s['f1']:.3f} | {s['people_per_identity']} | {s['unknown']:.1%} | {', '.join(s['merged']) or '-'} |"
            )
    print(
        "\nShares of face pairs within 0.6: same person (lowest, median), two people (highest; among people of"
        " 10+ faces), one face to its own person (share under PEOPLE_CLUSTER_SHARE) and to another (highest)"
    )
    print(
        "| set | same: lowest | same: median | two people: highest | of 10+ faces | face: own under | face: other highest |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in results["sets"].items():
        f = row["shares"]
        print(
            f"| {name} | {f['same_lowest']:.2f} | {f['same_median']:.2f} | {f['different_highest']:.2f} "
            f"| {f['different_highest_10']:.2f} | {f['face_own_under_share']:.1%} | {f['face_other_highest']:.2f} |"
        )
    print(
        f"\nSpread ratios (PEOPLE_SPREAD_RATIO {DEFAULTS['PEOPLE_SPREAD_RATIO']}) of each face to the identities of"
        f" {clusters.SPREAD_FACES}+ faces: to its own (median, 99th percentile, share above the setting; the chi-square"
        " law's effective dimension and 99th percentile), to another (lowest, 1st percentile, share within)"
    )
    print(
        "| set | own: median | own: p99 | own: above | dimension | chi-square p99 | other: lowest | other: p1 | other: within |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in results["sets"].items():
        if f := row["ratios"]:
            print(
                f"| {name} | {f['own_median']} | {f['own_p99']} | {f['own_above']:.1%} | {f['dimension']} | {f['chi2_p99']} "
                f"| {f['other_lowest']} | {f['other_p1']} | {f['other_within']:.2%} |"
            )
    print("\nOurs beside the textbooks (average linkage at 0.6, complete at 0.75), per set: precision / F1")
    print(
        "| set | arriving shuffled | arriving file order | re-clustered | textbook 0.6 | complete 0.75 | merged: ours"
        " | merged: textbook |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, row in results["sets"].items():
        pf = {path: f"{row[path]['precision']:.3f} / {row[path]['f1']:.3f}" for path in PATHS}
        ours = sorted({m for path in PATHS[:4] for m in row[path]["merged"]})
        print(
            f"| {name} | {pf['incremental shuffled']} | {pf['incremental chronological']} | {pf['re-clustered shuffled']}"
            f" | {pf['textbook 0.6']} | {pf['complete 0.75']} | {', '.join(ours) or '-'} | {', '.join(row['textbook 0.6']['merged']) or '-'} |"
        )
    print("\nHOG's faces, F1 when they alone are stored → among every face found, where YuNet found more:")
    print("| set | arriving shuffled | arriving file order | re-clustered |\n|---|---|---|---|")
    for name, row in results["sets"].items():
        if hog := row["HOG's faces"]:
            cells = [f"{hog[p][0]:.3f} → {hog[p][1]:.3f}" for p in PATHS[:3]]
            print(f"| {name} | {' | '.join(cells)} |")
    print("\n| path (pooled over the sets) | P | R | F1 |\n|---|---|---|---|")
    for path, s in results["pooled"].items():
        print(f"| {path} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
    print("\n| algorithm (pooled over the sets) | P | R | F1 |\n|---|---|---|---|")
    for name, s in results["algorithms"].items():
        print(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")


def print_labelling(labelling):
    print("\nA scripted user names each album through the API (bench/labelling.py), faces shuffled (seed 0):")
    print(
        "| set | labelled faces | actions | per 100 faces | merge | not-same | name | move | remove | yes | no | by hand"
        " | unlabelled |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in labelling.items():
        k = r["by_kind"]
        print(
            f"| {name} | {r['faces']} | {r['actions']} | {r['per_100']} | {k['merge']} | {k['not-same']} | {k['name']} "
            f"| {k['move']} | {k['remove']} | {k['yes']} | {k['no']} | {k['by hand']} | {r['unlabelled']} |"
        )


def print_big(big):
    print(
        f"\nRe-cluster of {big['faces']:,} faces in the store service, /similar meanwhile (ms, over HTTP, one query at a time):"
    )
    print(
        "| | seconds | people | unknown | changed | queries | p50 | p99 | max | p99 / idle p99 |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    idle = big["idle"]
    print(f"| idle (all) | | | | | {idle['queries']} | {idle['p50_ms']} | {idle['p99_ms']} | {idle['max_ms']} | 1 |")
    for name, window in zip(("before", "between", "after"), big["idle_windows"]):
        print(
            f"| idle {name} | | | | | {window['queries']} | {window['p50_ms']} | {window['p99_ms']} | {window['max_ms']} | |"
        )
    for run in ("first", "again"):
        r = big[run]
        print(
            f"| {run} re-cluster | {r['seconds']} | {r['people']} | {r['unknown']} | {r['changed']} | {r['queries']} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['p99_ms'] / idle['p99_ms']:.2f} |"
        )
        if w := r["write"]:
            print(
                f"| {run}: its write | | | | | {w['queries']} | {w['p50_ms']} | {w['p99_ms']} | {w['max_ms']} "
                f"| {w['p99_ms'] / idle['p99_ms']:.2f} |"
            )
    print(f"A new face placed at that size: {big['add_faces_median_ms']} ms (median add_faces)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", default="quality,labelling,100k", help="quality, labelling and/or 100k, comma-separated"
    )
    parser.add_argument(
        "--low-quality", type=float, help="the quality part's PEOPLE_LOW_QUALITY (default: the service's)"
    )
    args = parser.parse_args()
    if args.low_quality is not None:
        STORE_SETTINGS["PEOPLE_LOW_QUALITY"] = args.low_quality
    main(args.parts.split(","))
