"""The "MediaPipe 2D" keypoints of a 3DPW-format track (`keypoints="mp_j2d"`), from the side files that
`python -m datasets.preprocess.mediapipe3dpw` writes next to `dataset_extras/`.

The detector's 33 landmarks are mapped into both joint blocks as the internet path maps them (`utils.keypoints.to_j49`,
layout `mediapipe33`), each confidence turned into a weight (binarised at 0.3, or the confidence itself with
`confidence="weights"`), and the box is the internet path's: the tight box of the confident joints enlarged 1.2
times. A frame without a detection of this person keeps no keypoint (no update) and no landmarks; its crop, which
the evaluation still needs, is the track's last detected box (before the track's first detection: its first
detected box; a track never detected keeps its file's box, the only place ground truth shapes a crop).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.keypoints import CONF_THRESHOLD, confidence_weights, keypoint_box, to_j49

SIDE_DIR = "dataset_extras_mediapipe"
BOX_FACTOR = 1.2  # the internet path's box enlargement (datasets/preprocess/internet.py)


def side_dir(npz_dir: Path) -> Path:
    """Where the MediaPipe side files of a `dataset_extras/` folder are."""
    return Path(npz_dir).parent / SIDE_DIR


def carried_boxes(center: np.ndarray, scale: np.ndarray, valid: np.ndarray, fallback_center: np.ndarray,
                  fallback_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the frames without a valid one: the last valid box before them, else the first valid one after the
    track's start, else (no valid box at all) the fallback."""
    if not valid.any():
        return fallback_center.astype(np.float64), fallback_scale.astype(np.float64)
    center, scale = center.astype(np.float64).copy(), scale.astype(np.float64).copy()
    first = int(np.argmax(valid))
    last = first
    for i in range(len(valid)):
        if valid[i]:
            last = i
        else:
            center[i], scale[i] = center[last], scale[last]
    return center, scale


def load_track(npz_path: Path, file_center: np.ndarray, file_scale: np.ndarray, confidence: str = "binary"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints [N, 49, 3] pixels + weight, center [N, 2], scale [N], world [N, 33, 4] with NaN for misses) of one
    track from its side file."""
    path = side_dir(Path(npz_path).parent) / Path(npz_path).name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the MediaPipe 2D protocol needs `python -m "
                                f"datasets.preprocess.mediapipe3dpw --data-root {Path(npz_path).parent.parent}`")
    with np.load(path) as data:
        mp, world, matched = data["mp_j2d"], data["mp_world"].astype(np.float64), data["matched"].astype(bool)
    kp = confidence_weights(to_j49(mp, "mediapipe33"), confidence, CONF_THRESHOLD)
    kp[~matched] = 0.0
    center, scale, valid = keypoint_box(kp, CONF_THRESHOLD, BOX_FACTOR)
    center, scale = carried_boxes(center, scale, valid & matched, file_center, file_scale)
    world[~matched] = np.nan
    return kp, center, scale, world
