"""The 3DPW test stream from `dataset_extras/3dpw_{seq}_{pid}.npz` (docs/method.md §8.3), real or synthetic.

Tracks are concatenated in the original's order (sequence index, then person id; the original's key
`seq*10 + pid` is used as a tuple so ids of 10 or more still sort). Keypoints that drive adaptation:
- `smpl_j2d` (default, the "#PS" protocol of the paper): the projected ground-truth joints, confidence 1;
- `op_j2d` (the estimated-2D protocol): the file's OpenPose COCO-18 detections, mapped into both joint blocks
  (`utils.keypoints.to_j49`), confidence binarised at 0.3 as the internet path (or, with `confidence="weights"`, the
  detector's confidence kept as the joint's weight above 0.3), and the box taken from the confident detections (the
  ground-truth box would leak ground truth); frames with fewer than two confident joints keep the file's box;
- `mp_j2d` (the "MediaPipe 2D" protocol): the embedded detector run on the frames as the internet path runs it, with
  its world landmarks (`StreamItem.landmarks`), from the side files of `python -m datasets.preprocess.mediapipe3dpw`
  (`datasets.mediapipe_protocol`: misses stay misses, their crop is the track's last detected box).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from datasets.base import StreamItem, crop_item
from datasets.mediapipe_protocol import load_track
from datasets.preprocess.pw3d import OP_SLOTS  # BODY_25 slot of each COCO-18 joint in op_j2d
from utils.keypoints import CONF_THRESHOLD, confidence_weights, keypoint_box, to_j49

FILE_PATTERN = re.compile(r"^3dpw_(\d+)_(\d+)\.npz$")
FRAME_PATTERN = re.compile(r"image_(\d+)\.\w+$")  # imageFiles/<seq>/image_%05d.jpg
# The keypoint protocols of a 3DPW stream, spelled here only: projected ground truth (the paper's #PS) and the file's
# detections; the benchmark names them "GT 2D" and "estimated 2D".
GT_KEYPOINTS, DETECTED_KEYPOINTS, MEDIAPIPE_KEYPOINTS = "smpl_j2d", "op_j2d", "mp_j2d"
KEYPOINT_SOURCES = (GT_KEYPOINTS, DETECTED_KEYPOINTS, MEDIAPIPE_KEYPOINTS)
PROTOCOL_NAMES = {"GT 2D": GT_KEYPOINTS, "estimated 2D": DETECTED_KEYPOINTS, "MediaPipe 2D": MEDIAPIPE_KEYPOINTS}


def list_track_files(npz_dir: Path) -> list[Path]:
    """The `3dpw_{seq}_{pid}.npz` files in stream order."""
    if not npz_dir.is_dir():
        raise FileNotFoundError(
            f"{npz_dir} not found: it holds the preprocessed 3DPW tracks (the original release's dataset_extras, "
            "or `python process_data.py --dataset 3dpw`; for the synthetic world `python -m datasets.synthetic`)")
    files = [p for p in npz_dir.iterdir() if FILE_PATTERN.match(p.name)]
    if not files:
        raise FileNotFoundError(f"no 3dpw_<seq>_<pid>.npz files in {npz_dir}")
    return sorted(files, key=lambda p: tuple(int(g) for g in FILE_PATTERN.match(p.name).groups()))


def detected_keypoints(op_j2d: np.ndarray, confidence: str = "binary") -> np.ndarray:
    """[N, 49, 3] op_j2d (COCO-18 in BODY_25 slots) -> [N, 49, 3] in both blocks, each joint's confidence turned into
    its weight (`utils.keypoints.confidence_weights`: 0 at or under 0.3; above it 1 or the confidence itself)."""
    return confidence_weights(to_j49(op_j2d[:, OP_SLOTS], "coco18"), confidence, CONF_THRESHOLD)


class PW3DStream(torch.utils.data.Dataset):
    """All tracks of a preprocessed 3DPW split as one stream of `StreamItem`s.

    Args:
        npz_dir: folder of `3dpw_{seq}_{pid}.npz` files.
        pw3d_root: the 3DPW root that `imgname` is relative to.
        img_res: crop size of the model.
        keypoints: `smpl_j2d`, `op_j2d` or `mp_j2d` (see the module docstring).
        confidence: `binary` or `weights`: how the detections' confidences weigh the joints (`op_j2d`, `mp_j2d`).
    """

    def __init__(self, npz_dir: Path, pw3d_root: Path, img_res: int, keypoints: str = GT_KEYPOINTS,
                 confidence: str = "binary") -> None:
        if keypoints not in KEYPOINT_SOURCES:
            raise ValueError(f"keypoints must be one of {KEYPOINT_SOURCES}, got {keypoints!r}")
        self.root, self.img_res = Path(pw3d_root), img_res
        self.files = list_track_files(Path(npz_dir))
        cols: dict[str, list] = {k: [] for k in ("imgname", "center", "scale", "pose", "shape", "gender", "kp",
                                                 "world")}
        self.tracks: list[tuple[str, int]] = []
        for path in self.files:
            data = np.load(path)
            n = len(data["imgname"])
            seq, pid = FILE_PATTERN.match(path.name).groups()
            self.tracks += [(f"3dpw_{seq}", int(pid))] * n
            center, scale = data["center"].astype(np.float64), data["scale"].astype(np.float64)
            if keypoints == DETECTED_KEYPOINTS:
                kp = detected_keypoints(data[DETECTED_KEYPOINTS], confidence)
                det_center, det_scale, valid = keypoint_box(kp, CONF_THRESHOLD)  # the joints of nonzero weight
                center = np.where(valid[:, None], det_center, center)
                scale = np.where(valid, det_scale, scale)
            elif keypoints == MEDIAPIPE_KEYPOINTS:
                kp, center, scale, world = load_track(path, center, scale, confidence)
            else:
                kp = data["j2d"]
            if keypoints != MEDIAPIPE_KEYPOINTS:
                world = np.full((n, 1, 1), np.nan)  # no landmarks
            for key, value in (("imgname", data["imgname"]), ("center", center), ("scale", scale),
                               ("pose", data["pose"]), ("shape", data["shape"]), ("gender", data["gender"]),
                               ("kp", kp), ("world", world)):
                cols[key].append(np.asarray(value))
        self.cols = {k: np.concatenate(v) for k, v in cols.items()}

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> StreamItem:
        c = self.cols
        imgname = str(c["imgname"][index])
        image, kp, size = crop_item(self.root, imgname, c["center"][index], float(c["scale"][index]),
                                    c["kp"][index], self.img_res)
        match = FRAME_PATTERN.search(imgname)
        gt = {"pose": c["pose"][index].astype(np.float32), "betas": c["shape"][index][:10].astype(np.float32),
              "gender": str(c["gender"][index])}
        world = c["world"][index]
        landmarks = None if np.isnan(world).all() else torch.from_numpy(world.astype(np.float32))
        return StreamItem(index, image, kp, self.tracks[index], imgname, c["center"][index],
                          float(c["scale"][index]), size, int(match[1]) if match else -1, gt, landmarks)
