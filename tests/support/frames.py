"""What a test sees in a video frame: dlib's faces as the stream service looks for them, and how much of a
place's detail a picture of it kept."""

import cv2


def boxes_in(models, frame):
    """(left, top, right, bottom) of each face dlib finds in a frame, as the service looks for them
    (640 px wide, upsample 0)."""
    return [
        (max(r.left(), 0), max(r.top(), 0), r.right(), r.bottom())
        for r in models.detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 0)
    ]


# A face counts as blurred when less than this share of its own detail is left in the picture. The
# clip's faces, sent unblurred as JPEGs (quality 80), keep 0.48 to 0.98 of it (median 0.81, 85 faces);
# blurred by the filter, at most 0.05 (median 0.01).
DETAIL_LEFT = 0.2


def detail_left(picture, source, box, middle=True):
    """How much of the source's detail in `box` is left in the picture: the share of the source's
    Laplacian (its edges) that the picture's Laplacian follows, 1 unchanged, 0 for none of it.

    The picture's own edges that are not the source's count for nothing: a JPEG's blocks, or the border
    between two blurred areas, which the Laplacian's variance took for detail (a blurred face measured
    "50.7 of 23.3" where a neighbour's blur ended across it)."""
    left, top, right, bottom = box
    if middle:
        # The face's middle (eyes, nose, mouth): YuNet's boxes reach up into the hair.
        dx, dy = (right - left) // 5, (bottom - top) // 5
        left, top, right, bottom = left + dx, top + dy, right - dx, bottom - dy
    shown, own = (
        cv2.Laplacian(cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_BGR2GRAY), cv2.CV_64F)
        for image in (picture, source)
    )
    shown, own = shown - shown.mean(), own - own.mean()
    return float((shown * own).sum() / (own * own).sum())
