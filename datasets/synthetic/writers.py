"""File writers of the synthetic world, in the real datasets' formats (docs/method.md §8.3, §8.4).

- Human3.6M training data as SPIN/BOA's `h36m_train.npz`: `imgname` (relative to the H36M root), `center`,
  `scale`, `part` [24, 3], `S` [24, 4], `pose` [72], `shape` [10], and `has_smpl` as this project's Human3.6M
  preprocessing. Each generated unit (a subject's action seen by
  all cameras) is first saved as a part file; `assemble_h36m_npz` concatenates the parts in a fixed order.
- Raw 3DPW: `imageFiles/<seq>/image_%05d.jpg` and `sequenceFiles/<split>/<seq>.pkl`, a protocol-2 pickle readable
  with `encoding='latin1'` holding per-person lists exactly as the real files (`pw3d_sequence_dict`).

Every file that marks a unit as finished (a part npz, a pkl) is written to a temporary name in the same folder
and renamed into place, so an interrupted run never leaves a half-written file that counts as done.
"""
from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from utils.io import savez_atomic, write_bytes_atomic

JPEG_QUALITY = 92  # the real datasets ship JPEGs; 92 keeps compression artefacts mild
H36M_KEYS = ("imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl")


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Encode an RGB uint8 image [H, W, 3] as JPEG at `path` (folders created)."""
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, (rgb.shape, rgb.dtype)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 [H, W] or [H, W, 3] (RGB) image losslessly as PNG (folders created)."""
    assert image.dtype == np.uint8 and image.ndim in (2, 3), (image.shape, image.dtype)
    img = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


# ------------------------------------------------------------------------------------------------------------------
# Human3.6M
# ------------------------------------------------------------------------------------------------------------------


def h36m_image_name(subject: str, action: str, camera: str, frame: int) -> str:
    """`images/S1_Walking_1.54138969_000001.jpg`: the original extractor's naming (frame numbers from 1)."""
    return f"images/{subject}_{action}.{camera}_{frame:06d}.jpg"


def h36m_arrays(
    imgname: Sequence[str], center: np.ndarray, scale: np.ndarray, part: np.ndarray, S: np.ndarray,
    pose: np.ndarray, shape: np.ndarray,
) -> dict[str, np.ndarray]:
    """The `h36m_train.npz` arrays with the original's shapes and dtypes, checked, plus `has_smpl` (all 1: every
    synthetic frame has its SMPL parameters), as this project's Human3.6M preprocessing writes.

    Args:
        imgname: N names relative to the H36M root.
        center: [N, 2] box centre, pixels. scale: [N] box side / 200.
        part: [N, 24, 3] 2D joints (x, y, conf) in the 24-joint GT layout, pixels.
        S: [N, 24, 4] 3D joints (x, y, z, conf) in the camera frame, metres, root-centred.
        pose: [N, 72] SMPL axis-angle with the root in the camera frame. shape: [N, 10] betas.
    """
    n = len(imgname)
    arrays = {"imgname": np.asarray(imgname, dtype=str), "center": np.asarray(center, dtype=np.float64),
              "scale": np.asarray(scale, dtype=np.float64), "part": np.asarray(part, dtype=np.float64),
              "S": np.asarray(S, dtype=np.float64), "pose": np.asarray(pose, dtype=np.float64),
              "shape": np.asarray(shape, dtype=np.float64), "has_smpl": np.ones(n)}
    expected = {"imgname": (n,), "center": (n, 2), "scale": (n,), "part": (n, 24, 3), "S": (n, 24, 4),
                "pose": (n, 72), "shape": (n, 10), "has_smpl": (n,)}
    for key, shp in expected.items():
        assert arrays[key].shape == shp, (key, arrays[key].shape, shp)
    return arrays


def assemble_h36m_npz(parts: Sequence[Path], out: Path) -> int:
    """Concatenate part files (in the given order) into one `h36m_*.npz`; returns the number of frames."""
    loaded = [np.load(p) for p in parts]
    arrays = {k: np.concatenate([d[k] for d in loaded]) for k in H36M_KEYS}
    savez_atomic(out, arrays)
    return len(arrays["imgname"])


# ------------------------------------------------------------------------------------------------------------------
# 3DPW
# ------------------------------------------------------------------------------------------------------------------


def pw3d_image_path(pw3d_root: Path, sequence: str, frame: int) -> Path:
    """`<root>/imageFiles/<seq>/image_%05d.jpg`."""
    return pw3d_root / "imageFiles" / sequence / f"image_{frame:05d}.jpg"


def pw3d_sequence_path(pw3d_root: Path, sequence: str, split: str = "test") -> Path:
    """`<root>/sequenceFiles/<split>/<seq>.pkl`."""
    return pw3d_root / "sequenceFiles" / split / f"{sequence}.pkl"


def pw3d_sequence_dict(
    sequence: str, poses: Sequence[np.ndarray], betas: Sequence[np.ndarray], trans: Sequence[np.ndarray],
    poses2d: Sequence[np.ndarray], joint_positions: Sequence[np.ndarray], genders: Sequence[str],
    campose_valid: Sequence[np.ndarray], cam_poses: np.ndarray, cam_intrinsics: np.ndarray,
) -> dict:
    """A 3DPW sequence dict with the real files' containers, shapes and dtypes (per-person lists, float64).

    Args:
        poses: per person [N, 72] SMPL axis-angle, root orientation in the WORLD frame.
        betas: per person [10]. trans: per person [N, 3] metres, world.
        poses2d: per person [N, 3, 18] OpenPose COCO-18 (x, y, conf) rows.
        joint_positions: per person [N, 72] = 24 SMPL joints x (x, y, z), world, metres.
        genders: per person 'm' or 'f'. campose_valid: per person [N] bool.
        cam_poses: [N, 4, 4] world -> camera (OpenCV axes). cam_intrinsics: [3, 3].
    """
    n = len(cam_poses)
    people = len(poses)
    assert all(len(x) == people for x in (betas, trans, poses2d, joint_positions, genders, campose_valid))
    assert set(genders) <= {"m", "f"}, genders
    out = {
        "sequence": sequence,
        "betas": [np.asarray(b, dtype=np.float64).reshape(10) for b in betas],
        "poses": [np.asarray(p, dtype=np.float64).reshape(n, 72) for p in poses],
        "trans": [np.asarray(t, dtype=np.float64).reshape(n, 3) for t in trans],
        "poses2d": [np.asarray(p, dtype=np.float64).reshape(n, 3, 18) for p in poses2d],
        "jointPositions": [np.asarray(j, dtype=np.float64).reshape(n, 72) for j in joint_positions],
        "genders": [str(g) for g in genders],
        "campose_valid": [np.asarray(v, dtype=bool).reshape(n) for v in campose_valid],
        "cam_poses": np.asarray(cam_poses, dtype=np.float64).reshape(n, 4, 4),
        "cam_intrinsics": np.asarray(cam_intrinsics, dtype=np.float64).reshape(3, 3),
        "img_frame_ids": np.arange(n, dtype=np.int64),
    }
    return out


def write_pw3d_sequence(pw3d_root: Path, data: dict, split: str = "test") -> Path:
    """Pickle a sequence dict (protocol 2, as the real files) atomically; returns the pkl path."""
    path = pw3d_sequence_path(pw3d_root, data["sequence"], split)
    write_bytes_atomic(path, pickle.dumps(data, protocol=2))
    return path

