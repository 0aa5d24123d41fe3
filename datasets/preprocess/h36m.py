"""Human3.6M (official release layout) -> frame images and the training npz of the source domain.

    python process_data.py --dataset h36m --root /data/h36m                  # S1 S5 S6 S7 S8, 4 cameras, step 5
    python process_data.py --dataset h36m --protocol2 --step 5               # S9 S11, camera 60457274

Reads, for each subject `S*` under the root:
- `Videos/<Action>.<camera>.mp4`,
- `MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf` (variable `Pose`, (1, N, 64): 32 joints x (x, y) pixels),
- `MyPoseFeatures/D3_Positions_mono/<Action>.<camera>.cdf` (`Pose`, (1, N, 96): 32 joints x (x, y, z) mm, camera
  frame),
- optionally the MoSh fits `neutrSMPL_H3.6/<S>/<Action>_<camera>_aligned.pkl` (`new_poses` (M, 72), `betas`), one
  row per 5 video frames (10 fps); files whose action starts with `_ALL` are skipped.

Writes every `step`-th frame to `<root>/images/<S>_<Action>.<camera>_%06d.jpg` (frame number from 1, spaces in the
action replaced by `_`, frames already there are not decoded again) and one npz (docs/method.md §8.4, BOA's
`h36m_train.npz` keys) with, per kept frame: `imgname` (`images/...`, relative to the root), `center` (2,) and
`scale` (SPIN box of the 17 projected joints, scale = factor * side / 200), `part` (24, 3) pixels + visibility,
`S` (24, 4) metres, root-centred at the pelvis, + visibility, `pose` (72,) and `shape` (10,) from MoSh (zero where
there is no fit) and `has_smpl` (1 with a fit, else 0).

Joint placement (docs/method.md §11 item 19): the 17 H36M joints go into the 24 GT slots of `utils.constants` as SPIN's
`h36m_extract` and evaluation do, so raw joint 14 (H36M "Head", at the neck/nose level) fills `Jaw (H36M)` and raw
joint 15 (the head-top site) fills `Head (H36M)`: the points the `J_regressor_extra` rows of those names regress.
BOA's training writer put them into `Head (H36M)` and `Top of Head (LSP)` instead. Raw joints 11 and 24 are the
official duplicates of the pelvis (0) and the neck (13), as SPIN reads them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from config import POSITIVE, DataPaths, option
from utils.constants import GT_24_NAMES
from utils.io import restricted_load, savez_atomic
from utils.keypoints import keypoint_box
from utils.video import iter_video_frames

logger = logging.getLogger(__name__)

CAMERAS = ("54138969", "55011271", "58860488", "60457274")
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
PROTOCOL2_SUBJECTS = ("S9", "S11")
PROTOCOL2_CAMERA = "60457274"  # the frontal camera of protocol 2
MOSH_STRIDE = 5  # one MoSh row per 5 video frames (50 fps video, 10 fps fits)
NUM_RAW_JOINTS = 32
# (raw joint index in the 32-joint pose files, its name there, the GT-24 slot it fills)
H36M_JOINTS = [
    (11, "Spine (= Hips, 0)", "Pelvis (MPII)"), (6, "LeftUpLeg", "Left Hip"), (7, "LeftLeg", "Left Knee"),
    (8, "LeftFoot", "Left Ankle"), (1, "RightUpLeg", "Right Hip"), (2, "RightLeg", "Right Knee"),
    (3, "RightFoot", "Right Ankle"), (12, "Spine1", "Spine (H36M)"), (24, "RightShoulder (= Neck, 13)", "Neck (LSP)"),
    (14, "Head", "Jaw (H36M)"), (15, "Site (head top)", "Head (H36M)"), (17, "LeftArm", "Left Shoulder"),
    (18, "LeftForeArm", "Left Elbow"), (19, "LeftHand", "Left Wrist"), (25, "RightArm", "Right Shoulder"),
    (26, "RightForeArm", "Right Elbow"), (27, "RightHand", "Right Wrist"),
]
RAW_IDX = [raw for raw, _, _ in H36M_JOINTS]
GT_IDX = [GT_24_NAMES.index(slot) for _, _, slot in H36M_JOINTS]


@dataclass(frozen=True)
class Recording:
    """One (subject, action, camera) recording."""

    subject: str
    action: str  # as in the file names, may contain spaces ("Directions 1")
    camera: str

    @property
    def stem(self) -> str:
        return f"{self.action}.{self.camera}"

    def image_name(self, frame: int) -> str:
        """Image file name of 0-based `frame`: `S1_Directions_1.54138969_000001.jpg` for frame 0."""
        return f"{self.subject}_{self.action.replace(' ', '_')}.{self.camera}_{frame + 1:06d}.jpg"


def read_cdf_pose(path: Path, dims: int) -> np.ndarray:
    """The `Pose` variable of a Human3.6M `.cdf` file as [N, 32, dims] float64."""
    import cdflib

    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M pose file {path} not found: download the subject's 'Poses "
                                "D2_Positions' / 'D3_Positions_mono' archives from http://vision.imar.ro/human3.6m")
    data = np.asarray(cdflib.CDF(str(path)).varget("Pose"), dtype=np.float64)
    return data.reshape(-1, NUM_RAW_JOINTS, dims)


def list_sequences(root: Path, subjects: list[str], cameras: list[str]) -> list[Recording]:
    """Recordings with 3D poses of the given subjects and cameras, sorted (`_ALL` aggregates skipped)."""
    sequences = []
    for subject in subjects:
        pose_dir = root / subject / "MyPoseFeatures" / "D3_Positions_mono"
        if not pose_dir.is_dir():
            raise FileNotFoundError(f"{pose_dir} not found: extract the Human3.6M pose archives of {subject} "
                                    f"into {root} (official layout S*/MyPoseFeatures/D3_Positions_mono)")
        for path in sorted(pose_dir.glob("*.cdf")):
            action, _, camera = path.stem.rpartition(".")
            if action.startswith("_ALL") or camera not in cameras:
                continue
            sequences.append(Recording(subject, action, camera))
    return sequences


def extract_images(root: Path, seq: Recording, frames: list[int], step: int) -> np.ndarray:
    """Write the missing frame images of `frames` (multiples of `step`); [len(frames)] bool: the image exists."""
    image_dir = root / "images"
    targets = {f: image_dir / seq.image_name(f) for f in frames}
    missing = {f for f, path in targets.items() if not path.exists()}
    if missing:
        video = root / seq.subject / "Videos" / f"{seq.stem}.mp4"
        if not video.is_file():
            raise FileNotFoundError(f"Human3.6M video {video} not found: download the subject's 'Videos' archive")
        image_dir.mkdir(parents=True, exist_ok=True)
        last = max(missing)
        for index, frame in iter_video_frames(video, every=step):
            if index in missing and not cv2.imwrite(str(targets[index]), frame):
                raise OSError(f"could not write {targets[index]}")
            if index >= last:
                break
    exists = np.array([targets[f].exists() for f in frames], dtype=bool)
    if not exists.all():
        logger.warning("%s %s: the video ended after frame %d; %d annotated frames have no image and are dropped",
                       seq.subject, seq.stem, int(np.array(frames)[exists].max(initial=-1)) + 1, int((~exists).sum()))
    return exists


def read_mosh(mosh_dir: Path, seq: Recording) -> tuple[np.ndarray, np.ndarray] | None:
    """MoSh fit of a recording: pose [M, 72] and betas [M, 10] (one row per `MOSH_STRIDE` frames), or None."""
    path = mosh_dir / seq.subject / f"{seq.action.replace(' ', '_')}_{seq.camera}_aligned.pkl"
    if not path.is_file():
        return None
    fit = restricted_load(path, "MoSh fit")  # numpy arrays only
    pose = np.asarray(fit["new_poses"], dtype=np.float64).reshape(-1, 72)
    betas = np.asarray(fit["betas"], dtype=np.float64).reshape(-1, np.shape(fit["betas"])[-1])[:, :10]
    return pose, np.broadcast_to(betas, (len(pose), 10))


def sequence_arrays(seq: Recording, pose2d: np.ndarray, pose3d: np.ndarray, frames: np.ndarray,
                    mosh: tuple[np.ndarray, np.ndarray] | None, scale_factor: float) -> dict[str, np.ndarray]:
    """The npz fields of the given frames of one recording.

    Args:
        pose2d: [N, 32, 2] pixels; pose3d: [N, 32, 3] millimetres (camera frame); frames: [F] 0-based indices.
        mosh: (pose [M, 72], betas [M, 10]) or None.
    """
    count = len(frames)
    joints2d = pose2d[frames][:, RAW_IDX]  # [F, 17, 2]
    joints3d = pose3d[frames][:, RAW_IDX] / 1000.0  # [F, 17, 3] metres
    joints3d = joints3d - joints3d[:, :1]  # root (pelvis) at the origin
    part = np.zeros((count, 24, 3))
    part[:, GT_IDX, :2], part[:, GT_IDX, 2] = joints2d, 1.0
    s3d = np.zeros((count, 24, 4))
    s3d[:, GT_IDX, :3], s3d[:, GT_IDX, 3] = joints3d, 1.0
    center, scale, _ = keypoint_box(part, conf_threshold=0.5, scale_factor=scale_factor)
    pose, shape, has_smpl = np.zeros((count, 72)), np.zeros((count, 10)), np.zeros(count)
    if mosh is not None:
        rows = frames // MOSH_STRIDE
        ok = (frames % MOSH_STRIDE == 0) & (rows < len(mosh[0]))
        pose[ok], shape[ok], has_smpl[ok] = mosh[0][rows[ok]], mosh[1][rows[ok]], 1.0
    imgname = np.array([f"images/{seq.image_name(int(f))}" for f in frames])
    return {"imgname": imgname, "center": center, "scale": scale, "part": part, "S": s3d, "pose": pose,
            "shape": shape, "has_smpl": has_smpl}


def process_sequence(root: Path, seq: Recording, args: H36MConfig) -> dict[str, np.ndarray]:
    """Extract the images of one recording and return its npz fields (frames without an image dropped)."""
    features = root / seq.subject / "MyPoseFeatures"
    pose3d = read_cdf_pose(features / "D3_Positions_mono" / f"{seq.stem}.cdf", 3)
    pose2d = read_cdf_pose(features / "D2_Positions" / f"{seq.stem}.cdf", 2)
    frames = np.arange(0, min(len(pose2d), len(pose3d)), args.step)
    exists = extract_images(root, seq, frames.tolist(), args.step)
    mosh = read_mosh(args.mosh_dir or root / "neutrSMPL_H3.6", seq)
    return sequence_arrays(seq, pose2d, pose3d, frames[exists], mosh, args.scale_factor)


@dataclass
class H36MConfig:
    """Options of `process_data.py --dataset h36m`."""

    root: Path | None = option("Human3.6M root (None: $H36M_ROOT)", None)
    subjects: list[str] | None = option(f"subjects (None: {' '.join(TRAIN_SUBJECTS)})", None)
    cameras: list[str] | None = option("cameras (None: all 4)", None, choices=CAMERAS)
    step: int = option("keep every N-th frame (5: 10 fps)", 5, check=POSITIVE)
    protocol2: bool = option(f"protocol-2 subset: {' '.join(PROTOCOL2_SUBJECTS)}, camera {PROTOCOL2_CAMERA}", False)
    scale_factor: float = option("box enlargement (scale = f*side/200)", 1.2, check=POSITIVE)
    mosh_dir: Path | None = option("MoSh fits (None: ROOT/neutrSMPL_H3.6)", None)
    out: Path | None = option("npz to write (None: dataset_extras/h36m_train.npz, h36m_valid_protocol2.npz)", None)


CONFIG = H36MConfig  # what process_data.py reads the options into


def run(args: H36MConfig, data_root: Path | None = None) -> int:
    """Process the selected recordings and write the npz; returns 0, or 1 when no frame was found."""
    paths = DataPaths.from_root(data_root)
    root = args.root if args.root is not None else paths.h36m_root
    subjects = args.subjects or list(PROTOCOL2_SUBJECTS if args.protocol2 else TRAIN_SUBJECTS)
    subjects = [s if s.startswith("S") else f"S{s}" for s in subjects]
    cameras = args.cameras or ([PROTOCOL2_CAMERA] if args.protocol2 else list(CAMERAS))
    default_name = "h36m_valid_protocol2.npz" if args.protocol2 else "h36m_train.npz"
    out = args.out if args.out is not None else paths.dataset_extras / default_name
    parts = []
    for seq in list_sequences(root, subjects, cameras):
        parts.append(process_sequence(root, seq, args))
        logger.info("%s %s: %d frames", seq.subject, seq.stem, len(parts[-1]["imgname"]))
    if not parts or not sum(len(p["imgname"]) for p in parts):
        logger.error("no Human3.6M frames found for %s, cameras %s under %s", subjects, cameras, root)
        return 1
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    savez_atomic(out, data)
    logger.info("wrote %s: %d frames, %d with a MoSh fit", out, len(data["imgname"]), int(data["has_smpl"].sum()))
    return 0
