"""Where the faces of an image probably are, found fast by YuNet, a small CNN, on a reduced copy.

Proposals are candidates only: faces.py confirms each with dlib's HOG detector in a small window around
it, so that what facerec finds stays what dlib's detector accepts.
"""

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

# models/README.md: where the file comes from, its licence and its SHA-256.
MODEL = Path(__file__).resolve().parents[2] / "models" / "yunet_s_dynamic.onnx"
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
# YuNet's three heads see the image in cells of 8, 16 and 32 pixels; its input is padded to a multiple of 32.
STRIDES = (8, 16, 32)
# A proposed face: (left, top, width, height, score), in the pixels of the image it was proposed in.
Proposal = tuple[float, float, float, float, float]


class Proposer:
    """YuNet, loaded once per worker (a session runs on the calling thread)."""

    def __init__(self, path: str | Path = MODEL) -> None:
        if not Path(path).is_file():
            raise RuntimeError(f"the face proposal model {path} is missing (models/README.md)")
        options = onnxruntime.SessionOptions()
        # One thread: each worker has a core of its own and works on one image at a time.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def propose(self, rgb: np.ndarray, min_face_px: float, min_long_side: int = MIN_LONG_SIDE) -> list[Proposal]:
        """[(left, top, width, height, score)] of the likely faces of `min_face_px` or more in `rgb`,
        in its pixels, most likely first. `min_long_side`: the smallest image YuNet looks at."""
        height, width = rgb.shape[:2]
        long_side = max(width, height)
        scale = min(1.0, max(MIN_FACE_PROPOSED_PX / min_face_px, min_long_side / long_side))
        small = shrunk(rgb, scale)
        found = self._detect(small, width / small.shape[1], height / small.shape[0])
        if long_side * scale >= 2 * COARSE_LONG_SIDE:
            coarse = shrunk(small, COARSE_LONG_SIDE / max(small.shape[:2]))
            found += self._detect(coarse, width / coarse.shape[1], height / coarse.shape[0])
        return distinct(sorted(found, key=lambda box: -box[4]))

    def _detect(self, image: np.ndarray, sx: float, sy: float) -> list[Proposal]:
        """YuNet's proposals in `image` (RGB), in the pixels of an image `sx` by `sy` times as large."""
        height, width = image.shape[:2]
        # YuNet takes BGR pixel values 0-255, channels first, padded with black below and to the right.
        blob = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
        blob[0, :, :height, :width] = image[..., ::-1].transpose(2, 0, 1)
        boxes, scores = decode(self._session.run(None, {"input": blob}), blob.shape[3])
        keep = np.asarray(cv2.dnn.NMSBoxes(boxes, scores, MIN_SCORE, NMS_IOU), dtype=int).reshape(-1)
        return [(x * sx, y * sy, w * sx, h * sy, scores[i]) for i in keep for x, y, w, h in [boxes[i]]]


def shrunk(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` reduced by `scale` <= 1: averaged over blocks of whole pixels as far as they go (OpenCV's
    fast exact path; its general area resize costs ten times as much), then resized linearly by less than
    2, where nothing is lost between samples. Rows and columns past the last whole block are left out,
    which moves the rest by less than a block's width in the result: nothing a proposal notices."""
    height, width = image.shape[:2]
    block = max(1, min(int(1 / scale), width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if block > 1:
        image = image[: height - height % block, : width - width % block]
        image = cv2.resize(image, (width // block, height // block), interpolation=cv2.INTER_AREA)
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def decode(outputs: Sequence[np.ndarray], padded_width: int) -> tuple[list[list[float]], list[float]]:
    """YuNet's outputs (class, objectness, box and landmark heads at each stride, in that order) as the
    boxes [left, top, width, height] scoring MIN_SCORE or more, and their scores, as OpenCV decodes them."""
    boxes: list[list[float]] = []
    scores: list[float] = []
    for i, stride in enumerate(STRIDES):
        cls, obj, box = outputs[i][0, :, 0], outputs[i + 3][0, :, 0], outputs[i + 6][0]
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        cells = np.flatnonzero(score >= MIN_SCORE)
        row, col = np.divmod(cells, padded_width // stride)
        w, h = np.exp(box[cells, 2]) * stride, np.exp(box[cells, 3]) * stride
        cx, cy = (col + box[cells, 0]) * stride, (row + box[cells, 1]) * stride
        boxes += np.stack([cx - w / 2, cy - h / 2, w, h], axis=1).tolist()
        scores += score[cells].tolist()
    return boxes, scores


def distinct(boxes: list[Proposal]) -> list[Proposal]:
    """The boxes without those whose centre lies inside one kept before (the same face seen twice)."""
    kept: list[Proposal] = []
    for box in boxes:
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        if not any(k[0] <= cx <= k[0] + k[2] and k[1] <= cy <= k[1] + k[3] for k in kept):
            kept.append(box)
    return kept
