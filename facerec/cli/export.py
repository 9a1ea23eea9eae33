"""`facerec export DIR`: the store's people as a labelled dataset of face crops.

DIR/<person>/ holds one crop per face (DIR/_unknown/ the faces of no person), DIR/montages/<person>.jpg
a grid of a person's best faces, DIR/annotations.json and .csv every face's source, time, box,
landmarks, person, ID and quality. Everything comes from the store's API; a crop is cut from the
original photo or video frame when its file is where ingest found it and unchanged (same SHA-256),
else it is the store's thumbnail of the face. Exporting again replaces what the last export wrote.
"""

import csv
import heapq
import json
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from facerec.vision.images import ImageError, decode_image

from .http import Refused, ServiceClient
from .ingest import sha256_of
from .video import VideoError, frames

UNKNOWN = "_unknown"
MONTAGES = "montages"
ANNOTATIONS = ("annotations.json", "annotations.csv")
MANIFEST = ".facerec-export.json"  # what the last export wrote, so the next one can replace it
STAGING = ".facerec-export-new"
# A quarter of the face's side around it: the hair and chin are in the crop, as on the thumbnails.
MARGIN = 0.25
CROP_JPEG_QUALITY = 92
MONTAGE_FACES, MONTAGE_COLUMNS, TILE_PX = 25, 5, 128
FACES_PAGE, PEOPLE_PAGE = 1000, 200  # the most the store's API gives at once
COLUMNS = [
    "id",
    "person",
    "source",
    "source_sha256",
    "time",
    "box_left",
    "box_top",
    "box_width",
    "box_height",
    "quality",
    "landmarks",
]


def all_people(store: ServiceClient) -> dict[int, str | None]:
    """{person ID: name or None}, hidden people included."""
    people, page = {}, 1
    while True:
        answer = store.get("/people", params={"hidden": "true", "limit": PEOPLE_PAGE, "page": page})
        people.update({p["id"]: p["name"] for p in answer["people"]})
        if len(people) >= answer["total"] or not answer["people"]:
            return people
        page += 1


def all_faces(store: ServiceClient) -> Iterator[dict[str, Any]]:
    """Every stored face, page by page in ID order."""
    after = None
    while True:
        answer = store.get("/faces", params={"limit": FACES_PAGE, **({"after": after} if after else {})})
        yield from answer["faces"]
        after = answer["next"]
        if after is None:
            return


def folder_names(people: dict[int, str | None]) -> dict[int, str]:
    """{person ID: folder name}: the name where it is a usable and unique one, else person-<ID>."""

    def usable(name):
        name = re.sub(r"[\x00-\x1f/\\]", "_", name or "").strip()[:100]  # a file name holds 255 bytes
        return None if not name or name.startswith(".") or name in (UNKNOWN, MONTAGES, *ANNOTATIONS) else name

    names = {p: usable(n) for p, n in people.items()}
    taken = [n.casefold() for n in names.values() if n]
    return {
        p: (n if taken.count(n.casefold()) == 1 else f"{n} ({p})") if n else f"person-{p}" for p, n in names.items()
    }


def crop_name(face: dict[str, Any]) -> str:
    """A crop's file name: where it comes from (file name, time in a video) and the face ID's start."""
    stem = os.path.splitext(os.path.basename(face.get("source") or ""))[0] or face["photo_sha256"][:12]
    stem = re.sub(r"[\x00-\x1f/\\]", "_", stem)[:80]
    at = f"_{face['time']:.3f}s" if face.get("time") is not None else ""
    return f"{stem}{at}_{face['id'][:12]}.jpg"


def crop(pixels: np.ndarray, box: dict[str, int]) -> np.ndarray | None:
    """The box with MARGIN around it, within the picture (BGR)."""
    m = round(MARGIN * max(box["width"], box["height"]))
    height, width = pixels.shape[:2]
    x0, y0 = max(0, box["left"] - m), max(0, box["top"] - m)
    x1, y1 = min(width, box["left"] + box["width"] + m), min(height, box["top"] + box["height"] + m)
    return pixels[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else None


def original_crops(faces: list[dict[str, Any]], root: str) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
    """(face, crop) for the faces of one source, cut from the original file; none when the file is not
    found, or is not the file ingest read (its SHA-256 differs)."""
    first = faces[0]
    path = os.path.join(root, first.get("source") or "")  # an absolute source stays as it is
    if not first.get("source") or not os.path.isfile(path) or sha256_of(path) != first["source_sha256"]:
        return
    if first.get("time") is None:
        with open(path, "rb") as f:
            rgb = decode_image(f.read()).pixels  # upright, full resolution: the boxes' pixels
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for face in faces:
            yield face, crop(bgr, face["box"])
        return
    by_time: dict[float, list[dict[str, Any]]] = {}
    for face in faces:
        by_time.setdefault(face["time"], []).append(face)
    for t, frame in frames(path, wanted=set(by_time)):
        for face in by_time[t]:
            yield face, crop(frame, face["box"])


def pictures(
    store: ServiceClient, faces: list[dict[str, Any]], root: str
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, str]]:
    """(face, picture or None, "original", "thumbnail" or "missing") for each face of one source."""
    done = set()
    try:
        for face, picture in original_crops(faces, root):
            if picture is not None:
                done.add(face["id"])
                yield face, picture, "original"
    except (OSError, ImageError, VideoError):
        pass  # unreadable now: the rest come from thumbnails
    for face in faces:
        if face["id"] not in done:
            picture = thumbnail(store, face["id"])
            yield face, picture, "missing" if picture is None else "thumbnail"


def tile(picture: np.ndarray) -> np.ndarray:
    """The picture within TILE_PX × TILE_PX, ratio kept, on grey."""
    out = np.full((TILE_PX, TILE_PX, 3), 64, np.uint8)
    scale = TILE_PX / max(picture.shape[:2])
    small = cv2.resize(
        picture,
        (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    y, x = (TILE_PX - small.shape[0]) // 2, (TILE_PX - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def montage(tiles: list[np.ndarray]) -> np.ndarray:
    rows = -(-len(tiles) // MONTAGE_COLUMNS)
    columns = min(len(tiles), MONTAGE_COLUMNS)
    grid = np.full((rows * TILE_PX, columns * TILE_PX, 3), 32, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, MONTAGE_COLUMNS)
        grid[r * TILE_PX : (r + 1) * TILE_PX, c * TILE_PX : (c + 1) * TILE_PX] = t
    return grid


def annotation(face: dict[str, Any], person: str | None) -> dict[str, Any]:
    return {
        "source": face.get("source"),
        "source_sha256": face.get("source_sha256"),
        "time": face.get("time"),
        "box": face["box"],
        "landmarks": face.get("landmarks"),
        "person": person,
        "id": face["id"],
        "quality": face.get("quality"),
    }


def export(store: ServiceClient, out_dir: str, root: str = ".", progress: tqdm | None = None) -> dict[str, int]:
    """Write the dataset into `out_dir`; returns {"faces", "people", "unknown", "original", "thumbnail",
    "missing"}: how many crops came from the originals, from thumbnails, and faces with no picture."""
    check_target(out_dir)
    people = folder_names(all_people(store))
    faces = list(all_faces(store))
    if progress is not None:
        progress.reset(total=len(faces))
    staging = os.path.join(out_dir, STAGING)
    shutil.rmtree(staging, ignore_errors=True)  # left by an export that was killed
    for subfolder in (UNKNOWN, MONTAGES):
        os.makedirs(os.path.join(staging, subfolder))

    by_source: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for face in faces:
        by_source.setdefault((face.get("source"), face.get("source_sha256") or face["photo_sha256"]), []).append(face)
    counts = {"faces": len(faces), "people": 0, "unknown": 0, "original": 0, "thumbnail": 0, "missing": 0}
    # folder -> heap of (quality, id, tile): a montage's faces
    best: dict[str, list[tuple[float, str, np.ndarray]]] = {}
    annotations = []
    for group in by_source.values():
        for face, picture, where in pictures(store, group, root):
            folder = people.get(face["person"])  # every face the API answers has a person (or null)
            counts[where] += 1
            if picture is not None:
                os.makedirs(os.path.join(staging, folder or UNKNOWN), exist_ok=True)
                cv2.imwrite(
                    os.path.join(staging, folder or UNKNOWN, crop_name(face)),
                    picture,
                    [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY],
                )
                if folder:
                    keep_best(best.setdefault(folder, []), face, picture)
            counts["unknown"] += folder is None
            annotations.append(annotation(face, folder))
            if progress is not None:
                progress.update(1)
    for folder, heap in best.items():
        tiles = [t for _, _, t in sorted(heap, reverse=True)]
        cv2.imwrite(os.path.join(staging, MONTAGES, folder + ".jpg"), montage(tiles), [cv2.IMWRITE_JPEG_QUALITY, 90])
    annotations.sort(key=lambda a: (a["person"] is None, a["person"] or "", a["source"] or "", a["time"] or 0, a["id"]))
    write_annotations(staging, annotations)
    replace_previous(out_dir, staging)
    counts["people"] = len({a["person"] for a in annotations if a["person"]})
    return counts


def keep_best(heap: list[tuple[float, str, np.ndarray]], face: dict[str, Any], picture: np.ndarray) -> None:
    """Keep the MONTAGE_FACES best faces (quality, then ID) of a person as tiles."""
    item = (face.get("quality") or 0.0, face["id"], tile(picture))
    if len(heap) < MONTAGE_FACES:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


def thumbnail(store: ServiceClient, face_id: str) -> np.ndarray | None:
    try:
        data = store.get(f"/faces/{face_id}/thumbnail.jpg")
    except Refused:  # a face stored before faces had thumbnails
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def write_annotations(folder: str, annotations: list[dict[str, Any]]) -> None:
    with open(os.path.join(folder, ANNOTATIONS[0]), "w", encoding="utf-8") as f:
        json.dump(annotations, f, indent=1, ensure_ascii=False)
    with open(os.path.join(folder, ANNOTATIONS[1]), "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for a in annotations:
            box = a["box"]
            writer.writerow(
                [
                    a["id"],
                    a["person"] or "",
                    a["source"] or "",
                    a["source_sha256"] or "",
                    "" if a["time"] is None else a["time"],
                    box["left"],
                    box["top"],
                    box["width"],
                    box["height"],
                    "" if a["quality"] is None else a["quality"],
                    "" if a["landmarks"] is None else json.dumps(a["landmarks"]),
                ]
            )


def check_target(out_dir: str) -> None:
    """Export writes into a new or empty folder, or one it wrote before (it replaces only what it wrote)."""
    if os.path.isdir(out_dir) and not os.path.exists(os.path.join(out_dir, MANIFEST)):
        if set(os.listdir(out_dir)) - {STAGING}:
            raise FileExistsError(
                f"{out_dir} holds files that facerec export did not write; choose a new or empty folder"
            )
    os.makedirs(out_dir, exist_ok=True)


def replace_previous(out_dir: str, staging: str) -> None:
    """Remove what the last export wrote, move the new export in its place, and note what it wrote."""
    manifest = os.path.join(out_dir, MANIFEST)
    previous = set()
    if os.path.exists(manifest):
        with open(manifest, encoding="utf-8") as f:
            previous = {os.path.basename(name) for name in json.load(f)["written"]}
    written = sorted(os.listdir(staging))
    clashes = [n for n in written if n not in previous and os.path.exists(os.path.join(out_dir, n))]
    if clashes:
        raise FileExistsError(f"{out_dir} already holds {', '.join(clashes[:3])}, which facerec export did not write")
    for name in previous:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    for name in written:
        os.rename(os.path.join(staging, name), os.path.join(out_dir, name))
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump({"written": written}, f, indent=1, ensure_ascii=False)
    os.rmdir(staging)
