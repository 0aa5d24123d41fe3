"""3DPW raw sequences -> `dataset_extras/3dpw_{seqidx}_{pid}.npz` (the "#PS" protocol of docs/method.md §8.3).

    python process_data.py --dataset 3dpw                                   # $DYNABOA_DATA/3dpw, split test
    DYNABOA_DATA=data/synthetic python process_data.py --dataset 3dpw --scale-factor 1.2

Reads `<root>/sequenceFiles/<split>/*.pkl` (latin1 pickles; real or synthetic, the same code) and writes one npz
per (sequence, person) with, for the frames where `campose_valid` is true:

- `imgname` `imageFiles/<seq>/image_%05d.jpg` (relative to the 3DPW root), `gender` 'm'/'f';
- `pose` [72] with the root rotated into the camera frame (`R_root <- R_cam R_root`), `shape` [10] (betas[:10]);
- `j3d` [49, 3]: the gendered SMPL 49 joints plus `trans`, world frame, metres;
- `j2d` [49, 3]: `j3d` through `cam_poses` and `cam_intrinsics`, pixels, confidence 1 (the GT 2D keypoints);
- `center`, `scale`: the tight box of `j2d`, `scale = max side / 200 x scale_factor` (1.0 as DynaBOA's script,
  1.2 as BOA's and SPIN's);
- `op_j2d` [49, 3]: `poses2d` (OpenPose COCO-18) in the BODY_25 slots [0..7, 9..18], MidHip left 0.

Sequence indices: a name in the fixed list `utils.constants.PW3D_TEST_SEQUENCES` gets its position there; other
names (the synthetic sequences, other splits) are sorted and numbered from len(list) on, so real and extra
sequences never share an index. The SMPL models come from the data root (`--data-root`, else `$DYNABOA_DATA`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from config import POSITIVE, DataPaths, option
from utils.constants import NUM_JOINTS, PW3D_TEST_SEQUENCES
from utils.io import restricted_load, savez_atomic
from utils.keypoints import keypoint_box

logger = logging.getLogger(__name__)

OP_SLOTS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # BODY_25 slot of each COCO-18 joint
GENDER_MODEL = {"m": "male", "f": "female"}
SMPL_CHUNK = 256  # frames per SMPL forward pass


def read_pw3d_sequence(path: Path) -> dict:
    """Load a 3DPW sequence pkl (real or synthetic) the way the real files must be read (latin1)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"3DPW sequence file {path} not found: get sequenceFiles/ from the 3DPW website "
            "(virtualhumans.mpi-inf.mpg.de/3DPW) or make a synthetic one with `python -m datasets.synthetic`")
    return restricted_load(path, "3DPW sequence file")  # numpy arrays, lists and strings only


def sequence_indices(names: Sequence[str]) -> list[tuple[int, str]]:
    """(index, name) pairs sorted by index: listed names keep their fixed index, the rest follow sorted by name."""
    fixed = {name: i for i, name in enumerate(PW3D_TEST_SEQUENCES)}
    known = [(fixed[n], n) for n in names if n in fixed]
    extra = sorted(n for n in names if n not in fixed)
    return sorted(known) + [(len(PW3D_TEST_SEQUENCES) + k, n) for k, n in enumerate(extra)]


def project(points: np.ndarray, cam_poses: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """World points through world->camera poses and intrinsics to pixels.

    Args:
        points: [N, J, 3] metres, world frame.
        cam_poses: [N, 4, 4] world -> camera.
        intrinsics: [3, 3].
    Returns:
        [N, J, 2] pixels.
    """
    assert points.ndim == 3 and points.shape[2] == 3 and cam_poses.shape == (len(points), 4, 4), points.shape
    cam = np.einsum("nij,nkj->nki", cam_poses[:, :3, :3], points) + cam_poses[:, None, :3, 3]
    pix = np.einsum("ij,nkj->nki", intrinsics, cam)
    return pix[..., :2] / pix[..., 2:3]


def root_to_camera(poses: np.ndarray, cam_rot: np.ndarray) -> np.ndarray:
    """Rotate the root of SMPL poses into the camera frame: R_root <- R_cam R_root.

    Args:
        poses: [N, 72] axis-angle. cam_rot: [N, 3, 3] world -> camera rotations.
    Returns:
        [N, 72] float64 copy with a new root.
    """
    assert poses.shape[1] == 72 and cam_rot.shape == (len(poses), 3, 3), (poses.shape, cam_rot.shape)
    out = np.array(poses, dtype=np.float64)
    root = Rotation.from_rotvec(out[:, :3]).as_matrix()
    out[:, :3] = Rotation.from_matrix(cam_rot @ root).as_rotvec()
    return out


def coco18_to_op_j2d(poses2d: np.ndarray) -> np.ndarray:
    """3DPW `poses2d` [N, 3, 18] -> [N, 49, 3] with the 18 joints in their BODY_25 slots (raw confidence)."""
    assert poses2d.ndim == 3 and poses2d.shape[1:] == (3, 18), poses2d.shape
    out = np.zeros((len(poses2d), NUM_JOINTS, 3))
    out[:, OP_SLOTS] = np.transpose(poses2d, (0, 2, 1))
    return out


def smpl_joints(model: torch.nn.Module, poses: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """The 49 joints [N, 49, 3] (metres, no translation) of `poses` [N, 72] with one `betas` [10]."""
    out = []
    for start in range(0, len(poses), SMPL_CHUNK):
        pose = torch.as_tensor(poses[start: start + SMPL_CHUNK], dtype=torch.float32)
        shape = torch.as_tensor(betas[:10], dtype=torch.float32).expand(len(pose), 10)
        with torch.no_grad():
            res = model(betas=shape, body_pose=pose[:, 3:], global_orient=pose[:, :3], pose2rot=True)
        out.append(res.joints.numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_JOINTS, 3), dtype=np.float32)


def person_arrays(data: dict, pid: int, models: dict, scale_factor: float) -> dict[str, np.ndarray]:
    """The npz arrays of person `pid` of one sequence dict (frames with campose_valid only)."""
    valid = np.asarray(data["campose_valid"][pid], dtype=bool)
    frames = np.flatnonzero(valid)
    gender = str(data["genders"][pid])
    poses = np.asarray(data["poses"][pid], dtype=np.float64)[valid]
    betas = np.asarray(data["betas"][pid], dtype=np.float64)[:10]
    trans = np.asarray(data["trans"][pid], dtype=np.float64)[valid]
    cam_poses = np.asarray(data["cam_poses"], dtype=np.float64)[valid]
    j3d = smpl_joints(models[GENDER_MODEL.get(gender, "female")], poses, betas) + trans[:, None].astype(np.float32)
    j2d = np.concatenate((project(j3d.astype(np.float64), cam_poses, np.asarray(data["cam_intrinsics"])),
                          np.ones((len(frames), NUM_JOINTS, 1))), axis=2)
    center, scale, _ = keypoint_box(j2d, conf_threshold=0.0, scale_factor=scale_factor)
    seq = data["sequence"]
    return {
        "imgname": np.array([f"imageFiles/{seq}/image_{i:05d}.jpg" for i in frames], dtype=str),
        "gender": np.array([gender] * len(frames), dtype=str),
        "center": center.astype(np.float64),
        "scale": scale.astype(np.float64),
        "pose": root_to_camera(poses, cam_poses[:, :3, :3]).astype(np.float32),
        "shape": np.tile(betas, (len(frames), 1)).astype(np.float32),
        "j3d": j3d.astype(np.float32),
        "j2d": j2d.astype(np.float32),
        "op_j2d": coco18_to_op_j2d(np.asarray(data["poses2d"][pid], dtype=np.float64)[valid]),
    }


def preprocess_pw3d(
    root: Path, out_dir: Path, paths: DataPaths, split: str = "test", scale_factor: float = 1.0
) -> list[Path]:
    """Convert every sequence of `<root>/sequenceFiles/<split>`; returns the npz files written."""
    from models.smpl import build_smpl

    seq_dir = Path(root) / "sequenceFiles" / split
    pkls = {p.stem: p for p in sorted(seq_dir.glob("*.pkl"))}
    if not pkls:
        raise FileNotFoundError(
            f"no 3DPW sequence files (*.pkl) in {seq_dir}: download 3DPW's sequenceFiles from "
            "virtualhumans.mpi-inf.mpg.de/3DPW, or write a synthetic world with `python -m datasets.synthetic`")
    models = {name: build_smpl(paths, name) for name in ("male", "female")}
    written = []
    for idx, name in sequence_indices(list(pkls)):
        data = read_pw3d_sequence(pkls[name])
        for pid in range(len(data["poses"])):
            out = Path(out_dir) / f"3dpw_{idx}_{pid}.npz"
            arrays = person_arrays(data, pid, models, scale_factor)
            savez_atomic(out, arrays)
            written.append(out)
            logger.info("%s person %d -> %s (%d frames)", name, pid, out.name, len(arrays["imgname"]))
    return written


@dataclass
class PW3DConfig:
    """Options of `process_data.py --dataset 3dpw`."""

    root: Path | None = option("3DPW root (None: $DYNABOA_DATA/3dpw or $PW3D_ROOT)", None)
    out: Path | None = option("output folder (None: <data root>/dataset_extras)", None)
    split: str = option("sequenceFiles/<split> to convert", "test")
    scale_factor: float = option("box enlargement: 1.0 as DynaBOA's script, 1.2 as BOA/SPIN", 1.0, check=POSITIVE)


CONFIG = PW3DConfig  # what process_data.py reads the options into


def run(args: PW3DConfig, data_root: Path | None = None) -> int:
    """Convert the split; returns 0."""
    paths = DataPaths.from_root(data_root)
    root = args.root if args.root is not None else paths.pw3d_root
    out_dir = args.out if args.out is not None else paths.dataset_extras
    written = preprocess_pw3d(root, out_dir, paths, args.split, args.scale_factor)
    logger.info("wrote %d files to %s", len(written), out_dir)
    return 0
