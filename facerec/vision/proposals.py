"""Where the faces of an image probably are, found fast by OpenCV's YuNet, a small CNN, on a reduced copy.

Proposals are candidates only: faces.py confirms each with dlib's HOG detector in a small window around
it, so that what facerec finds stays what dlib's detector accepts.
"""

from pathlib import Path

import cv2

# models/README.md: where the file comes from, its licence and its SHA-256.
MODEL = Path(__file__).resolve().parents[2] / "models" / "yunet_s_640_640.onnx"
# YuNet proposes faces of 16 px reliably: the image it looks at is reduced as far as that allows for the
# smallest face wanted, but never below this long side (a fixed small size loses faces of big photos).
MIN_FACE_PROPOSED_PX = 16
MIN_LONG_SIDE = 480
# A second look at this long side, for faces too large for YuNet on the first image (a close portrait).
COARSE_LONG_SIDE = 240
# At a score of 0.5 YuNet proposed all but one of 202 faces of real photos (the one a HOG false positive),
# with a few false proposals a photo, which HOG then rejects; at 0.9 it missed 4-13 % of them.
MIN_SCORE = 0.5
NMS_IOU = 0.3


class Proposer:
    """YuNet, loaded once; one per thread (it keeps the size of the last image it saw)."""

    def __init__(self, path=MODEL):
        if not Path(path).is_file():
            raise RuntimeError(f"the face proposal model {path} is missing (models/README.md)")
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), MIN_SCORE, NMS_IOU, 5000)

    def propose(self, rgb, min_face_px, min_long_side=MIN_LONG_SIDE):
        """[(left, top, width, height, score)] of the likely faces of `min_face_px` or more in `rgb`,
        in its pixels, most likely first. `min_long_side`: the smallest image YuNet looks at."""
        height, width = rgb.shape[:2]
        long_side = max(width, height)
        scale = min(1.0, max(MIN_FACE_PROPOSED_PX / min_face_px, min_long_side / long_side))
        found = self._detect(rgb, scale)
        if long_side * scale >= 2 * COARSE_LONG_SIDE:
            found += self._detect(rgb, COARSE_LONG_SIDE / long_side)
        return distinct(sorted(found, key=lambda box: -box[4]))

    def _detect(self, rgb, scale):
        height, width = rgb.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        self._net.setInputSize(size)
        _, rows = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if rows is None:
            return []
        sx, sy = width / size[0], height / size[1]
        return [(x * sx, y * sy, w * sx, h * sy, float(score)) for x, y, w, h, *_, score in rows.tolist()]


def distinct(boxes):
    """The boxes without those whose centre lies inside one kept before (the same face seen twice)."""
    kept = []
    for box in boxes:
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        if not any(k[0] <= cx <= k[0] + k[2] and k[1] <= cy <= k[1] + k[3] for k in kept):
            kept.append(box)
    return kept
