"""Part `recall` of `make bench`: photos of a named person where no face is found, and faces found
where there are none, in process with the service's settings.

- Per labelled set of ../shared/data/faces (its group photos left out): the share of photos with no
  face found by facerec before the faces YuNet is sure of counted (only the faces HOG accepts), after
  (SURE_FACE_SCORE), by HOG's whole scan alone (DETECTOR hog) and by YuNet alone at SURE_FACE_SCORE.
- The 200 views of the photos without people (tests/photos/no_people): faces found per 100 photos,
  before and after.
"""

from pathlib import Path

from facerec.service.config import DEFAULTS
from facerec.vision.faces import MIN_PROPOSED_SHARE, Models, analyse_photo, is_sure
from facerec.vision.images import decode_image
from tests.support.no_people import no_people_views

SETTINGS = (DEFAULTS["MIN_FACE_PX"], DEFAULTS["MAX_IMAGE_PIXELS"], DEFAULTS["SMALL_FACE_PX"])
SURE = DEFAULTS["SURE_FACE_SCORE"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def recall_bench(faces_folder: Path) -> dict:
    """{"sets": {set: {"photos", and per pipeline the photos with no face}}, "no_people": {...}}."""
    models = Models()
    sets = {}
    for folder in sorted(p for p in faces_folder.iterdir() if p.is_dir()):
        photos = [
            p
            for p in sorted(folder.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.parent.name.startswith("_")
        ]
        if not photos:  # a set of group photos only: no named person
            continue
        missed = {"before": 0, "after": 0, "hog": 0, "yunet": 0}
        for path in photos:
            for pipeline, found in faces_by_pipeline(models, path.read_bytes()).items():
                missed[pipeline] += not found
        sets[folder.name] = {"photos": len(photos), "no_face": missed}
        print(f"recall: {folder.name} done", flush=True)
    return {"sure_face_score": SURE, "sets": sets, "no_people": false_faces(models)}


def faces_by_pipeline(models: Models, data: bytes) -> dict:
    """How many faces each pipeline finds in one photo."""
    _, faces = analyse_photo(models, data, *SETTINGS, "proposals", SURE)
    _, scanned = analyse_photo(models, data, *SETTINGS, "hog")
    return {
        "before": sum(f.detector == "hog" for f in faces),  # the cnn faces come after, never instead of HOG's
        "after": len(faces),
        "hog": len(scanned),
        "yunet": yunet_faces(models, data),
    }


def yunet_faces(models: Models, data: bytes) -> int:
    """YuNet's proposals at SURE_FACE_SCORE or more, of the sizes facerec looks for, on the image HOG scans."""
    photo = decode_image(data, *SETTINGS)
    wanted = photo.min_face_px / max(photo.scale)
    return sum(
        is_sure(p[4], SURE) and 1.075 * p[2] >= MIN_PROPOSED_SHARE * wanted
        for p in models.proposer.propose(photo.pixels, wanted)
    )


def false_faces(models: Models) -> dict:
    """Faces found in the photos without people, before and after the faces YuNet is sure of."""
    photos = before = after = 0
    for _, data in no_people_views():
        _, faces = analyse_photo(models, data, *SETTINGS, "proposals", SURE)
        photos, before, after = photos + 1, before + sum(f.detector == "hog" for f in faces), after + len(faces)
    return {"photos": photos, "faces_before": before, "faces_after": after}


def print_recall(report: dict) -> None:
    print(f"\nphotos of a named person with no face found (SURE_FACE_SCORE {report['sure_face_score']}):")
    print(f"  {'set':<30}{'photos':>7}{'before':>9}{'after':>9}{'HOG alone':>11}{'YuNet alone':>13}")
    for name, s in report["sets"].items():
        shares = [f"{100 * s['no_face'][k] / s['photos']:.1f} %" for k in ("before", "after", "hog", "yunet")]
        print(f"  {name:<30}{s['photos']:>7}{shares[0]:>9}{shares[1]:>9}{shares[2]:>11}{shares[3]:>13}")
    n = report["no_people"]
    print(
        f"photos without people: {n['photos']}, faces found per 100 photos: before"
        f" {100 * n['faces_before'] / n['photos']:.1f}, after {100 * n['faces_after'] / n['photos']:.1f}"
    )
