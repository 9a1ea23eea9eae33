"""Where the person is in a video frame: MediaPipe Selfie Segmentation, run by onnxruntime, its mask
smoothed over time and at its edges.

Two networks (models/README.md): the general one looks at 256x256, the landscape one at 256x144. A frame
is shown to the one whose shape it is nearer (squeezing a 16:9 frame into a square loses half the
detail across, and a square frame in the landscape network loses the head's top and the shoulders).

The raw mask flickers along the outline, where the network hesitates: in the test clip's longest shot,
0.14 % of the pixels a frame flip side and flip back the next frame (1.6 % flip, most because the
performer moves). It is smoothed over time at the network's resolution (cheap: 37 k pixels) by a running
mean that follows a pixel fast where it changes a lot (the person moved) and slowly where it only
wavers, which halves that flicker (0.07 %) and leaves the mask within 0.3 % of the raw one's pixels;
then softened at its edge by a small blur before it is scaled to the frame (bench/segmentation.py).
"""

from pathlib import Path

import cv2
import numpy as np
import onnxruntime

MODELS = Path(__file__).resolve().parents[2] / "models"  # models/README.md: source, licence, SHA-256
GENERAL = "selfie_segmentation.onnx"
LANDSCAPE = "selfie_segmentation_landscape.onnx"
# Frames at least this wide for their height go to the landscape network: 16:9 (1.78) does, 4:3 (1.33)
# and portrait frames do not (about halfway between the two networks' shapes, 1.0 and 1.78).
WIDE = 1.5
# Time smoothing, per pixel of the network's mask (probabilities 0..1): the new value's weight is
# STEADY where it moved less than SETTLED since the last frame (wavering: the outline's flicker) and
# rises to 1 where it moved by MOVED or more (an edge that moves over a pixel changes it by 0.8-1).
# Of the settings tried on the clip's longest shot, (0.5, 0.1, 0.5) removed a fifth of the flicker,
# these half, (0.15, 0.25, 0.8) a little more but lagged behind the raw mask more (0.36 % of pixels).
STEADY = 0.3
SETTLED = 0.3
MOVED = 0.8
# The mask's edge is blurred over this many of the network's pixels (at 640x360, 2.5 frame pixels
# each): no hard cut-out line, and single lost hair strands fade instead of ending in a step.
EDGE_PX = 3


class Segmenter:
    """Person masks of one video's frames, in order (the time smoothing remembers the last frame).

    `models_dir` holds the two ONNX files; `steady` is the weight of a new mask where it only wavers
    (1.0: no time smoothing), `edge_px` the edge blur (0: none). A session runs on the calling thread."""

    def __init__(self, models_dir: Path = MODELS, steady: float = STEADY, edge_px: int = EDGE_PX):
        self.models_dir, self.steady, self.edge_px = Path(models_dir), steady, edge_px
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._previous: np.ndarray | None = None

    def probabilities(self, frame: np.ndarray) -> np.ndarray:
        """The network's raw mask of a BGR frame: float32 (h, w) at the network's size, 0..1."""
        height, width = frame.shape[:2]
        name = LANDSCAPE if width >= WIDE * height else GENERAL
        session = self._session(name)
        _, size_h, size_w, _ = session.get_inputs()[0].shape
        small = cv2.resize(frame, (size_w, size_h), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) * (1 / 255)
        return session.run(None, {"input": rgb[None]})[0][0, :, :, 0]

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """The smoothed person mask of the next frame: float32 (height, width) of the frame, 0..1."""
        raw = self.probabilities(frame)
        smoothed = smooth_in_time(raw, self._previous, self.steady)
        self._previous = smoothed
        if self.edge_px:
            smoothed = cv2.GaussianBlur(smoothed, (0, 0), self.edge_px / 2)
        height, width = frame.shape[:2]
        return cv2.resize(smoothed, (width, height), interpolation=cv2.INTER_LINEAR)

    def forget(self) -> None:
        """A new shot or a new size: the next mask owes nothing to the last."""
        self._previous = None

    def _session(self, name: str) -> onnxruntime.InferenceSession:
        if name not in self._sessions:
            path = self.models_dir / name
            if not path.is_file():
                raise RuntimeError(f"the segmentation model {path} is missing (models/README.md)")
            options = onnxruntime.SessionOptions()
            # One thread: two are slower on this network (2.8 ms vs more), and the stream's process has
            # its own core at most.
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            self._sessions[name] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self._sessions[name]


def smooth_in_time(raw: np.ndarray, previous: np.ndarray | None, steady: float) -> np.ndarray:
    """`raw` pulled towards `previous` where it only wavers (see STEADY, SETTLED, MOVED)."""
    if previous is None or previous.shape != raw.shape or steady >= 1:
        return raw
    change = np.abs(raw - previous)
    weight = np.clip((change - SETTLED) * (1 / (MOVED - SETTLED)), 0, 1) * (1 - steady) + steady
    return previous + weight * (raw - previous)
