"""What a test sees in a video frame: dlib's faces as the stream service looks for them, and how sharp a
place is."""

import cv2


def boxes_in(models, frame):
    """(left, top, right, bottom) of each face dlib finds in a frame, as the service looks for them
    (640 px wide, upsample 0)."""
    return [
        (max(r.left(), 0), max(r.top(), 0), r.right(), r.bottom())
        for r in models.detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 0)
    ]


def sharpness(image, box):
    left, top, right, bottom = box
    if box != (0, 0, 640, 360):
        # The face's middle (eyes, nose, mouth): a box's rim may hold where a blurred area ends, a sharp
        # edge that says nothing of the face, and YuNet's boxes reach up into the hair.
        dx, dy = (right - left) // 5, (bottom - top) // 5
        left, top, right, bottom = left + dx, top + dy, right - dx, bottom - dy
    grey = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_BGR2GRAY)
    return cv2.Laplacian(grey, cv2.CV_64F).var()
