"""The proposal detector (YuNet proposes, HOG confirms in windows) next to HOG's whole scan, on real photos
and real video frames."""

import cv2
import numpy as np
import pytest

from facerec.vision.boxes import Box, iou
from facerec.vision.faces import analyse_photo, find_frame_faces, find_proposed_faces
from facerec.vision.images import decode_image, face_floor
from tests.support.faces import FACES, photo

# A face found by both detectors: boxes overlapping at IoU >= 0.5 (the benchmark's "same face"), and
# descriptors within 0.2 (the windows' image pyramids differ from the whole scan's, so boxes and
# descriptors move a little: 0.03-0.17 on these photos; 0.6 separates people).
SAME_FACE_IOU = 0.5
SAME_FACE_DISTANCE = 0.2
SERVICE = {"min_face_px": 100, "small_face_px": 40}  # the service's defaults (facerec/service/config.py)

AGREEMENT_PHOTOS = [
    "fr_examples/obama/obama-1080p.jpg",  # 1080p
    "fr_examples/_unlabeled_group/obama_and_biden.jpg",  # a group photo, 3 faces
    "deepface_tests/_unlabeled_group/couple.jpg",  # a group photo, 3.6 MP
    "deepface_tests/person_img8/img49.jpg",  # 12.6 MP
    "facenet_pytorch/kate_siegel/1.jpg",
    "openface_examples/lennon/lennon-1.jpg",
    "face_recognition_test_images/obama3.jpg",
]


def faces_of(models, data, detector, **settings):
    return analyse_photo(models, data, detector=detector, **{**SERVICE, **settings})[1]


def inside(x, y, box):
    return box.left <= x <= box.right and box.top <= y <= box.bottom


@pytest.mark.parametrize("name", AGREEMENT_PHOTOS)
def test_proposals_find_the_faces_of_the_whole_scan(models, name):
    proposed, scanned = faces_of(models, photo(name), "proposals"), faces_of(models, photo(name), "hog")
    assert scanned and len(proposed) == len(scanned)
    for face in scanned:
        twin = max(proposed, key=lambda f: iou(f.box, face.box))
        assert iou(twin.box, face.box) >= SAME_FACE_IOU
        assert np.linalg.norm(twin.descriptor - face.descriptor) <= SAME_FACE_DISTANCE


def test_a_non_face_yunet_proposes_is_rejected_by_hog(models):
    """Behind George Clooney, YuNet proposes a blurred figure in the background (score 0.8); HOG finds
    no face there, so only his face is kept."""
    data = photo("deepface_tests/person_img38/img41.jpg")
    decoded = decode_image(data, 100, exact=False)
    sx, sy = decoded.scale
    proposed = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h, _ in models.proposer.propose(decoded.pixels, 100 / sx)]
    background = [p for p in proposed if inside(p[0] + p[2] / 2, p[1] + p[3] / 2, Box(1600, 150, 800, 900))]
    assert background, "YuNet no longer proposes the background figure: pick another photo for this test"
    faces = faces_of(models, data, "proposals")
    assert len(faces) == 1 and faces[0].box.left < 1500  # his face, left of the figure
    x, y, w, h = background[0]
    assert not any(inside(x + w / 2, y + h / 2, f.box) for f in faces)


def test_a_small_face_yunet_misses_is_found_by_the_whole_scan_of_a_small_photo(models):
    """On a 0.23 MP photo (the whole scan is cheap), HOG in YuNet's windows misses the 43 px face of a man
    in the background behind the actress; the whole scan, which a small photo always gets, finds it (so
    would YuNet alone, which is sure of it: here only HOG's confirmations are looked at)."""
    data = photo("celeb8/Jennifer_Lawrence/082_2251d7b7.jpg")
    decoded = decode_image(data, 100, small_face_px=40, exact=False)
    windows_only = find_proposed_faces(
        models, decoded.pixels, decoded.scale, decoded.min_face_px, describe=False, sure_score=1
    )
    missed = Box(85, 42, 43, 44)
    assert windows_only is not None and not any(iou(f.box, missed) >= SAME_FACE_IOU for f in windows_only)
    assert any(iou(f.box, missed) >= SAME_FACE_IOU for f in faces_of(models, data, "proposals"))


@pytest.mark.parametrize("width, height, min_face_px", [(4000, 12, 100), (60, 40, 2000), (1, 1, 40)])
def test_proposals_on_images_thinner_than_the_reduction(models, width, height, min_face_px):
    """YuNet's copy is reduced by whole blocks first: never past a side of one pixel."""
    assert models.proposer.propose(np.full((height, width, 3), 128, np.uint8), min_face_px, 0) == []


def test_a_photo_of_many_faces_falls_back_to_the_whole_scan(models):
    """25 LFW photos in a grid (1250x1250): windows around 25 faces would scan more than half of what
    the whole scan does, so the whole scan runs, and both detectors answer the same faces of HOG's (the
    proposal detector adds those YuNet is sure of and HOG turned down)."""
    tiles = [cv2.imread(str(p)) for p in sorted((FACES / "lfw10").rglob("*.jpg"))[:25]]
    grid = np.vstack([np.hstack(tiles[i : i + 5]) for i in range(0, 25, 5)])
    data = cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    decoded = decode_image(data, 100, exact=False)
    assert find_proposed_faces(models, decoded.pixels, decoded.scale, 100, describe=False) is None
    proposed, scanned = faces_of(models, data, "proposals"), faces_of(models, data, "hog")
    assert len(scanned) >= 15 and [f.box for f in proposed if f.detector == "hog"] == [f.box for f in scanned]
    assert all(f.detector == "cnn" for f in proposed[len(scanned) :])


@pytest.mark.parametrize(
    "width, height, floor", [(250, 250, 40), (640, 480, 40), (1000, 1000, 71.6), (1920, 1080, 100)]
)
def test_small_photos_are_searched_for_smaller_faces(width, height, floor):
    assert face_floor(100, 40, width, height) == pytest.approx(floor, abs=0.1)
    assert face_floor(100, 0, width, height) == 100  # SMALL_FACE_PX 0: the same floor everywhere
    assert face_floor(50, 40, width, height) <= 50  # never above MIN_FACE_PX


def test_a_small_group_photo_yields_its_small_faces(models):
    data = photo("dlib_faces/_unlabeled_group/2007_007763.jpg")  # 500x375, faces of 43-52 px
    small = faces_of(models, data, "proposals")
    assert len(small) >= 2 and all(f.box.width < 100 for f in small)
    assert faces_of(models, data, "proposals", small_face_px=0) == []  # the original's 100 px cut


def clip_frames(wanted):
    """The clip's frames at the indices `wanted`, by index."""
    video, out = cv2.VideoCapture(str(FACES.parent / "video" / "short_hamilton_clip.mp4")), {}
    for index in range(max(wanted) + 1):
        frame = video.read()[1]
        if index in wanted:
            out[index] = frame
    return out


@pytest.fixture(scope="module")
def frames():
    return list(clip_frames(range(0, 275, 30)).values())  # one a second


def test_frame_faces_are_described_like_the_same_frame_as_a_photo(models, frames):
    found = 0
    for frame in frames:
        faces = find_frame_faces(models, frame)
        as_photo = analyse_photo(models, cv2.imencode(".png", frame)[1].tobytes(), 40, detector="hog")[1]
        for face in faces:
            assert 0 <= face.box.left and face.box.left + face.box.width <= frame.shape[1]
            twins = [f for f in as_photo if iou(f.box, face.box) >= SAME_FACE_IOU]
            if twins:  # a face both find is the same face, described alike
                assert np.linalg.norm(twins[0].descriptor - face.descriptor) <= SAME_FACE_DISTANCE
                found += 1
    assert found >= 5


def test_frame_faces_without_description(models, frames):
    described = [find_frame_faces(models, f) for f in frames]
    bare = [find_frame_faces(models, f, describe=False) for f in frames]
    assert [[f.box for f in fs] for fs in bare] == [[f.box for f in fs] for fs in described]
    assert all(f.descriptor is None and f.thumbnail is None and len(f.landmarks) == 5 for fs in bare for f in fs)
    assert all(f.descriptor.shape == (128,) for fs in described for f in fs)


def test_faces_of_the_frame_before_are_followed_not_described_again(models):
    """A stream passes the faces of the frame before as `known`: the performer, found and described when
    he appears, is found in the next frames at about the same box, and not described again."""
    clip = clip_frames(range(100, 106))
    first = find_frame_faces(models, clip[100])
    assert len(first) == 1 and first[0].descriptor is not None
    known = [first[0].box]
    for index in range(101, 106):
        followed = find_frame_faces(models, clip[index], known=known)
        confirmed = find_frame_faces(models, clip[index], describe=False)
        assert len(followed) == len(confirmed) == 1
        assert followed[0].descriptor is None and len(followed[0].landmarks) == 5
        assert iou(followed[0].box, confirmed[0].box) >= SAME_FACE_IOU  # YuNet's box in dlib's proportions
        known = [followed[0].box]
    assert find_frame_faces(models, clip[105], known=[])[0].descriptor is not None  # unknown: described


def test_hog_does_not_look_again_at_a_known_face(models):
    """A dark shot of the audience: YuNet proposes five dim, blurred faces and HOG confirms none, so on its
    own the frame has no face. One known from the frame before (as a stream knows a face that turns away
    or falls into shadow) is followed without HOG's look."""
    frame = clip_frames([60])[60]
    x, y, w, h, _ = models.proposer.propose(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 40, 0)[0]
    face = Box(round(x), round(y), round(w), round(h))
    assert find_frame_faces(models, frame) == []
    followed = [f for f in find_frame_faces(models, frame, known=[face]) if iou(f.box, face) >= SAME_FACE_IOU]
    assert len(followed) == 1 and followed[0].descriptor is None


def test_a_photo_stored_by_the_whole_scan_keeps_its_ids_when_posted_again(models, tmp_path):
    """A photo stored before the detector changed, posted again: the proposals' faces differ a little from
    the whole scan's (boxes and descriptors), yet the store answers with the faces and IDs it holds."""
    from store_service.store import FaceStore

    data = photo("fr_examples/_unlabeled_group/obama_and_biden.jpg")
    sha256 = decode_image(data).sha256

    def post(store, faces):
        return store.add_faces(sha256, [{"descriptor": f.descriptor, "box": f.box.to_json()} for f in faces], 0.36, 100)

    store = FaceStore(str(tmp_path / "faces.sqlite3"))
    try:
        before = post(store, faces_of(models, data, "hog"))
        proposed = faces_of(models, data, "proposals")
        assert {f.descriptor.tobytes() for f in proposed}.isdisjoint(  # the descriptors did change
            {f.descriptor.tobytes() for f in faces_of(models, data, "hog")}
        )
        again = post(store, proposed)
        assert sorted(f["id"] for f in again) == sorted(f["id"] for f in before) and len(store) == 3
        assert not any(f["created"] for f in again)
    finally:
        store.close()
