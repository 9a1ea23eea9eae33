"""`facerec ingest` and `facerec export` as a user runs them: a real folder (photos, a sub-folder, a broken
JPEG, a text file, the real video clip) through both services as real processes, killed half-way with
kill -9 and run again; then exported after a rename and a merge, and the crops checked to be the faces."""

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from itertools import combinations

import cv2
import dlib
import numpy as np
import pytest
import requests

from facerec.cli.ingest import FIRST_WINDOW, InFlightLimit
from facerec.cli.video import frames
from tests.support.faces import PEOPLE_PHOTOS, SHARED, photo, with_orientation
from tests.support.services import REPO, Service, running, service_env
from tests.support.waiting import eventually

CLIP = SHARED / "data" / "video" / "short_hamilton_clip.mp4"
# The clip's frames at 1 a second: the first frame at or after each whole second (29.97 frames a second).
CLIP_TIMES = [0.0, 1.001, 2.002, 3.003, 4.004, 5.005, 6.006, 7.007, 8.008, 9.009]
# These web photos and the clip's faces are small: 40 px faces are looked for (docs/detection.md).
MIN_FACE_PX = "40"


def facerec(*args, cwd, env, **kwargs):
    """The facerec command as a process (the same code as .venv/bin/facerec)."""
    return subprocess.Popen(
        [sys.executable, "-m", "facerec.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Both services, and the environment the facerec command runs in, pointed at them."""
    env = service_env(tmp_path_factory, DETECT_WORKERS=2, MIN_FACE_PX=MIN_FACE_PX)
    store, detect = Service("store", env), Service("detect", env)
    env.update(FACEREC_STORE_URL=store.url, FACEREC_DETECT_URL=detect.url, FACEREC_CORS_ORIGINS=store.url)
    cli_env = dict(env, FACEREC_STORE=store.url, FACEREC_DETECT=detect.url)
    with running(store, detect):
        yield store, detect, cli_env


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder as users have them: photos, a sub-folder, a turned photo (EXIF orientation 6), a broken
    JPEG, a text file, a text file named .jpg, and the real clip. Returns (working folder, "library")."""
    work = tmp_path_factory.mktemp("work")
    root = work / "library"
    (root / "sub").mkdir(parents=True)
    for person, paths in PEOPLE_PHOTOS.items():
        for path in paths:
            folder = root / "sub" if person == "madonna" else root
            (folder / f"{person}-{os.path.basename(path)}").write_bytes(photo(path))
    (root / "sub" / "obama-turned.jpg").write_bytes(
        with_orientation(photo("face_recognition_test_images/obama.jpg"), 6)
    )
    good = photo("face_recognition_test_images/biden.jpg")
    (root / "broken.jpg").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not a photo\n")
    (root / "sub" / "fake.jpg").write_text("a text file with a photo's name\n")
    shutil.copy(CLIP, root / "clip.mp4")
    return work, "library"


def database(stack):
    return sqlite3.connect(os.path.join(stack[2]["FACEREC_DATA_DIR"], "faces.sqlite3"))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_frames_are_sampled_once_a_second_and_found_again_by_time():
    sampled = list(frames(CLIP, fps=1))
    assert [t for t, _ in sampled] == CLIP_TIMES
    assert all(f.shape == (360, 640, 3) for _, f in sampled)  # full frame size
    again = dict(frames(CLIP, wanted={3.003, 8.008}))
    assert sorted(again) == [3.003, 8.008]
    assert np.array_equal(again[3.003], sampled[3][1]) and np.array_equal(again[8.008], sampled[8][1])
    assert len(list(frames(CLIP, fps=2))) == 19


def test_the_window_widens_while_answers_come_and_narrows_on_a_503():
    window = InFlightLimit(most=6)
    assert window.limit == FIRST_WINDOW
    for _ in range(3 * FIRST_WINDOW):  # answers taken with every slot in use
        for _ in range(window.limit):
            window.acquire()
        for _ in range(window.limit):
            window.release()
    assert window.limit == 6  # no wider than --jobs
    window.acquire()
    window.release(busy=True)
    assert window.limit == 5


def test_ingest_killed_half_way_then_run_again_stores_each_photo_and_frame_once(stack, library):
    store, detect, env = stack
    work, folder = library
    clip_sha = __import__("hashlib").sha256(CLIP.read_bytes()).hexdigest()
    first = facerec(
        "ingest", folder, "--json", "--jobs", "1", cwd=work, env=env
    )  # one at a time: a kill lands mid-clip

    def some_stored():  # kill -9 once some of the clip's frames are stored, not all
        stored = requests.get(f"{store.url}/photos", params={"source_sha256": clip_sha}, timeout=5).json()["photos"]
        return stored if len(stored) >= 3 or first.poll() is not None else None

    stored = eventually(some_stored, "some of the clip's frames stored", timeout=120, every=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 3 <= len(stored) < len(CLIP_TIMES), "the kill was meant to land in the middle of the clip"
    killed_lines = json_lines(first.stdout.read())

    second = facerec("ingest", folder, "--json", cwd=work, env=env)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 1, err  # two files failed
    lines = {line["path"]: line for line in json_lines(out)}
    path = os.path.join
    clip = lines[path(folder, "clip.mp4")]
    assert clip["status"] == "done" and clip["frames_stored_before"] >= 3
    assert clip["frames"] + clip["frames_stored_before"] == len(CLIP_TIMES)  # no frame sent twice
    assert lines[path(folder, "broken.jpg")]["status"] == "failed"
    assert (
        "422" in lines[path(folder, "broken.jpg")]["reason"]
        and "truncated" in lines[path(folder, "broken.jpg")]["reason"]
    )
    assert (
        lines[path(folder, "sub", "fake.jpg")]["status"] == "failed"
        and "415" in lines[path(folder, "sub", "fake.jpg")]["reason"]
    )
    assert lines[path(folder, "notes.txt")]["status"] == "ignored"
    photos = [p for p, line in lines.items() if line["kind"] == "photo" and line["status"] in ("done", "skipped")]
    assert len(photos) == sum(len(v) for v in PEOPLE_PHOTOS.values()) + 1
    done_before = {line["path"] for line in killed_lines if line["status"] == "done"}
    assert all(lines[p]["status"] == "skipped" for p in done_before)  # what the killed run finished is not sent again
    assert "failed: library/broken.jpg: 422" in err and "failed: library/sub/fake.jpg: 415" in err
    assert "2 failed, 1 ignored" in err

    db = database(stack)
    rows = db.execute("SELECT source, source_sha256, time FROM photos").fetchall()
    assert len(rows) == len(set(rows)) == len(photos) + len(CLIP_TIMES)  # every photo and frame once
    assert sorted(t for s, sha, t in rows if sha == clip_sha) == CLIP_TIMES
    assert {s for s, sha, t in rows if t is None} == set(photos)
    faces = db.execute("SELECT source, source_sha256, time FROM faces").fetchall()
    assert faces and all(
        s in photos or (s == path(folder, "clip.mp4") and sha == clip_sha and t in CLIP_TIMES) for s, sha, t in faces
    )
    # Each face's source is served, by the face and by its person.
    face_id, person = db.execute(
        "SELECT id, person_id FROM faces WHERE time IS NOT NULL AND person_id IS NOT NULL"
    ).fetchone()
    served = requests.get(f"{store.url}/faces/{face_id}", timeout=5).json()
    assert (
        served["source"] == path(folder, "clip.mp4")
        and served["source_sha256"] == clip_sha
        and served["time"] in CLIP_TIMES
    )
    assert len(served["landmarks"]) == 5
    in_person = {f["id"]: f for f in requests.get(f"{store.url}/people/{person}", timeout=5).json()["faces"]}
    assert in_person[face_id]["time"] == served["time"]

    third = facerec("ingest", folder, "--json", cwd=work, env=env)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 1 and "sent 0 photos and 0 video frames" in err
    assert db.execute("SELECT count(*) FROM photos").fetchone()[0] == len(rows)


def test_faces_of_one_video_frame_are_never_one_person(stack, library):
    """The cannot-link rule holds for a frame as for a photo: its faces share photo_sha256."""
    db = database(stack)
    clashes = db.execute(
        "SELECT photo_sha256, person_id FROM faces WHERE time IS NOT NULL AND person_id IS NOT NULL"
        " GROUP BY photo_sha256, person_id HAVING count(*) > 1"
    ).fetchall()
    per_frame = db.execute(
        "SELECT count(DISTINCT photo_sha256), count(DISTINCT time) FROM faces WHERE time IS NOT NULL"
    ).fetchone()
    assert clashes == [] and per_frame[0] == per_frame[1]


def descriptor_of_crop(models, crop_path, box, margin_box):
    """The descriptor of the face at `box` (photo pixels) within a crop cut at `margin_box`'s corner."""
    rgb = cv2.cvtColor(cv2.imread(str(crop_path)), cv2.COLOR_BGR2RGB)
    left, top = box["left"] - margin_box[0], box["top"] - margin_box[1]
    rect = dlib.rectangle(left, top, left + box["width"], top + box["height"])
    shape = models.predictor(rgb, rect)
    return np.array(models.encoder.compute_face_descriptor(rgb, shape))


def exported(out):
    annotations = json.loads((out / "annotations.json").read_text())
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    crops = {p.stem.rsplit("_", 1)[1]: p for p in out.rglob("*.jpg") if p.parent.name != "montages"}
    return annotations, folders, crops


def check_export(store, out, db):
    """The export matches the store: folders, one crop per face, annotations, montages."""
    people = {p["id"]: p for p in requests.get(f"{store.url}/people?hidden=true", timeout=5).json()["people"]}
    faces = db.execute(
        "SELECT id, person_id, source, source_sha256, time, box_left, box_top, box_width, box_height,"
        " quality FROM faces"
    ).fetchall()
    folder_of = {p: (people[p]["name"] or f"person-{p}") for p in people}
    annotations, folders, crops = exported(out)
    with_faces = {folder_of[f[1]] for f in faces if f[1] is not None}
    assert folders == with_faces | {"_unknown", "montages"}
    assert {p.stem for p in (out / "montages").iterdir()} == with_faces
    assert len(annotations) == len(faces) == len(crops)
    by_id = {a["id"]: a for a in annotations}
    for face, person, source, sha, t, left, top, width, height, quality in faces:
        a = by_id[face]
        assert set(a) == {"source", "source_sha256", "time", "box", "landmarks", "person", "id", "quality"}
        assert (a["source"], a["source_sha256"], a["time"], a["quality"]) == (source, sha, t, quality)
        assert a["box"] == {"left": left, "top": top, "width": width, "height": height}
        assert a["person"] == (folder_of[person] if person is not None else None)
        assert crops[face[:12]].parent.name == (a["person"] or "_unknown")
    for folder in with_faces:
        count = sum(1 for a in annotations if a["person"] == folder)
        tiles = min(count, 25)
        montage = cv2.imread(str(out / "montages" / f"{folder}.jpg"))
        assert montage.shape[:2] == (-(-tiles // 5) * 128, min(tiles, 5) * 128)
    rows = list(csv.DictReader((out / "annotations.csv").open()))
    assert [r["id"] for r in rows] == [a["id"] for a in annotations]
    return annotations, crops


def test_export_after_a_rename_and_a_merge_matches_the_store_and_crops_are_the_faces(stack, library, models, tmp_path):
    store, detect, env = stack
    work, _ = library
    db = database(stack)
    out = tmp_path / "dataset"
    run = facerec("export", str(out), cwd=work, env=env)
    assert run.wait(timeout=120) == 0, run.stderr.read()
    check_export(store, out, db)
    (out / "my notes.txt").write_text("mine\n")

    people = [p["id"] for p in requests.get(f"{store.url}/people", timeout=5).json()["people"]]
    assert len(people) >= 3
    biggest = people[0]
    assert requests.patch(f"{store.url}/people/{biggest}", json={"name": "Performer"}, timeout=5).ok
    # Two people to merge: any two that no photo shows together (else the store rightly answers 409).
    a, b = next(
        (a, b)
        for a, b in combinations(people[1:], 2)
        if requests.post(f"{store.url}/people/{a}/merge", json={"people": [b]}, timeout=5).ok
    )
    run = facerec("export", str(out), cwd=work, env=env)
    assert run.wait(timeout=120) == 0, run.stderr.read()
    annotations, crops = check_export(store, out, db)
    assert (out / "Performer").is_dir() and not (out / f"person-{biggest}").exists()
    assert not (out / f"person-{b}").exists() and (out / "my notes.txt").read_text() == "mine\n"

    # Each crop is its face, upright (the turned photo included): its descriptor, taken at the face's box
    # within the crop, is its stored face's.
    stored = {f: np.frombuffer(d, "<f4") for f, d in db.execute("SELECT id, descriptor FROM faces")}
    for a in annotations:
        box = a["box"]
        margin = round(0.25 * max(box["width"], box["height"]))
        corner = (max(0, box["left"] - margin), max(0, box["top"] - margin))
        d = descriptor_of_crop(models, crops[a["id"][:12]], box, corner)
        assert np.linalg.norm(d - stored[a["id"]]) < 0.3, a


def test_export_without_the_originals_uses_the_thumbnails(stack, tmp_path):
    store, detect, env = stack
    out = tmp_path / "dataset"
    run = facerec("export", str(out), "--sources", str(tmp_path / "elsewhere"), cwd=tmp_path, env=env)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    _, _, crops = exported(out)
    assert crops and all(cv2.imread(str(p)).shape[:2] == (112, 112) for p in crops.values())
    assert "from the original files: 0" in err


def test_export_refuses_a_folder_it_did_not_write(stack, tmp_path):
    _, _, env = stack
    (tmp_path / "theirs.txt").write_text("keep me\n")
    run = facerec("export", str(tmp_path), cwd=tmp_path, env=env)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2 and "did not write" in err and (tmp_path / "theirs.txt").exists()


def test_the_facerec_command_is_installed_next_to_python():
    command = os.path.join(os.path.dirname(sys.executable), "facerec")
    result = subprocess.run([command, "ingest", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--fps" in result.stdout


def test_ingest_says_at_once_when_the_services_are_not_there(tmp_path):
    run = facerec(
        "ingest",
        str(tmp_path),
        "--detect",
        "http://127.0.0.1:9",
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    _, err = run.communicate(timeout=60)
    assert run.returncode == 2 and "http://127.0.0.1:9 does not answer" in err and "make run" in err


def test_a_detect_service_that_answers_503_is_waited_out(tmp_path):
    """With MAX_QUEUE_SECONDS 0 a worker takes one photo at a time and answers 503 to the rest: ingest
    narrows its window, waits each Retry-After, and still sends every photo once."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        FACEREC_DATA_DIR=str(tmp_path / "data"),
        FACEREC_DETECT_WORKERS="1",
        FACEREC_MAX_QUEUE_SECONDS="0",
        FACEREC_MIN_FACE_PX=MIN_FACE_PX,
    )
    store, detect = Service("store", env), Service("detect", env)
    env["FACEREC_STORE_URL"] = store.url
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in PEOPLE_PHOTOS["ben"]:
        (folder / os.path.basename(path)).write_bytes(photo(path))
    with running(store, detect):
        run = facerec(
            "ingest", str(folder), "--json", "--store", store.url, "--detect", detect.url, cwd=tmp_path, env=env
        )
        out, err = run.communicate(timeout=300)
        stored = requests.get(f"{store.url}/health", timeout=5).json()["faces"]
    assert run.returncode == 0, err
    assert [line["status"] for line in json_lines(out)] == ["done"] * len(PEOPLE_PHOTOS["ben"])
    assert "busy (503)" in err and stored == len(PEOPLE_PHOTOS["ben"])
