"""Human3.6M-format source data: the base model's training set and the exemplar database (docs/method.md §8.4, §6).

The same code reads real Human3.6M (`process_data.py --dataset h36m`) and the synthetic source domain: an npz (or the
original's joblib dict) with, per frame, `imgname` (relative to the H36M root), `center (2,)` and `scale` (box side
/ 200) in pixels, `part (24, 3)` 2D joints + visibility in the GT-24 layout, `S (24, 4)` camera-frame metres +
visibility, `pose (72,)` SMPL axis-angle, `shape (10,)` betas and optionally `has_smpl` (1 where a MoSh fit exists).

Each item is cropped from the full frame around its box (`utils.imutils.crop`, only the box is resampled), with
SPIN's training augmentation when enabled (SPIN `datasets/base_dataset.py:augm_params`):

- rotation: r ~ N(0, 30 deg) clipped to +-60 deg, and r = 0 with probability 0.6;
- scale: s ~ N(1, 0.25) clipped to [0.75, 1.25] (the box side is multiplied by s);
- horizontal flip with probability 0.5;
- colour noise: each RGB channel multiplied by U(0.6, 1.4) (SPIN's "pixel noise"), then optional per-pixel Gaussian
  noise of `pixel_noise` grey levels, clipped to [0, 255].

With `fast_decode` (training) a JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, 2-5x cheaper
to decode and crop) whenever the box still has at least `img_res` pixels at that size; the crop then lies within one
crop pixel of the full-resolution one. Validation and the exemplar cache decode at full resolution.

A rotation by r degrees (counter-clockwise in the picture) maps crop points by `Rz = [[cos a, -sin a], [sin a,
cos a]]` with a = -r (image x right, y down); the same `Rz` (about the camera z axis) rotates `S` and pre-multiplies
the global orientation, so image, 2D joints, 3D joints and SMPL root stay consistent. A flip negates x of the 2D and
3D joints and swaps left and right (`J24_FLIP_PERM`), and mirrors the pose (`SMPL_POSE_FLIP_PERM`, y and z
axis-angle components negated).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from utils.constants import IMG_NORM_MEAN, IMG_NORM_STD, IMG_RES, J24_FLIP_PERM, SMPL_POSE_FLIP_PERM
from utils.imutils import crop, read_image_rgb, transform
from utils.io import restricted_joblib_load

# key -> shape of one frame's entry (imgname is a string)
H36M_SHAPES: dict[str, tuple[int, ...]] = {
    "center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,), "shape": (10,)}
H36M_KEYS = ("imgname",) + tuple(H36M_SHAPES)
NUM_OPENPOSE = 25  # zero block in front of the 24 GT joints (the 49-joint layout)
_MEAN = np.asarray(IMG_NORM_MEAN, dtype=np.float32)
_STD = np.asarray(IMG_NORM_STD, dtype=np.float32)
_REDUCED_READS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_HOW_TO_GET = ("write it with `python process_data.py --dataset h36m` (Human3.6M) or with the synthetic world "
               "(datasets.synthetic); docs/method.md §8.4 lists its keys")


@dataclass(frozen=True)
class AugmentSettings:
    """SPIN's augmentation parameters (see the module docstring)."""

    rot_factor: float = 30.0  # std of the rotation, degrees (clipped at 2x)
    rot_prob: float = 0.4  # probability that a rotation is applied (SPIN zeroes it with probability 0.6)
    scale_factor: float = 0.25  # std of the box scale factor (clipped at 1x)
    flip_prob: float = 0.5  # probability of a horizontal flip
    noise_factor: float = 0.4  # colour noise: channels multiplied by U(1 - f, 1 + f)
    pixel_noise: float = 2.0  # std of per-pixel Gaussian noise, grey levels (0 = off)


@dataclass(frozen=True)
class Augmentation:
    """One draw of the augmentation: rotation (degrees), box scale factor, flip, per-channel colour factors."""

    rot: float = 0.0
    scale: float = 1.0
    flip: bool = False
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_noise: float = 0.0
    noise_seed: int = 0


def sample_augmentation(rng: np.random.Generator, settings: AugmentSettings) -> Augmentation:
    """Draw one `Augmentation` as SPIN's `augm_params`."""
    flip = bool(rng.uniform() < settings.flip_prob)
    colour = rng.uniform(1.0 - settings.noise_factor, 1.0 + settings.noise_factor, 3)
    rot = float(np.clip(rng.normal() * settings.rot_factor, -2 * settings.rot_factor, 2 * settings.rot_factor))
    scale = float(np.clip(rng.normal() * settings.scale_factor + 1.0, 1 - settings.scale_factor,
                          1 + settings.scale_factor))
    if rng.uniform() >= settings.rot_prob:
        rot = 0.0
    return Augmentation(rot, scale, flip, tuple(float(c) for c in colour), settings.pixel_noise,
                        int(rng.integers(2**31)))


def load_h36m_annotations(path: Path) -> dict[str, np.ndarray]:
    """Read and check an `h36m_*.npz` (or the original's joblib database `.pt`).

    Returns:
        the arrays of `H36M_KEYS` ([N, ...], float64 but `imgname`) plus `has_smpl` [N] (ones when absent).
    Raises:
        FileNotFoundError: no such file. ValueError: a key is missing or has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M-format annotation file {path} not found: {_HOW_TO_GET}.")
    if path.suffix == ".npz":
        with np.load(path) as npz:
            raw = {key: npz[key] for key in npz.files}
    else:
        raw = restricted_joblib_load(path, "Human3.6M annotation file")
    return validate_annotations(raw, path)


def validate_annotations(raw: Mapping[str, Any], source: Path | str = "annotations") -> dict[str, np.ndarray]:
    """The `H36M_KEYS` arrays of `raw` checked against `H36M_SHAPES`, plus `has_smpl` (ones when absent)."""
    missing = [key for key in H36M_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; expected {list(H36M_KEYS)} ({_HOW_TO_GET})")
    n = len(raw["imgname"])
    out = {"imgname": np.asarray(raw["imgname"], dtype=str)}
    for key, shape in H36M_SHAPES.items():
        out[key] = np.asarray(raw[key], dtype=np.float64)
        if out[key].shape != (n,) + shape:
            raise ValueError(f"{source}: '{key}' has shape {out[key].shape}, expected {(n,) + shape}")
    has_smpl = raw["has_smpl"] if "has_smpl" in raw else np.ones(n)
    out["has_smpl"] = np.asarray(has_smpl, dtype=np.float64).reshape(n)
    return out


def subset_annotations(data: Mapping[str, np.ndarray], indices: np.ndarray) -> dict[str, np.ndarray]:
    """Every array of `data` restricted to `indices` (in that order)."""
    return {key: np.asarray(value)[indices] for key, value in data.items()}


def rotation_z(rot_deg: float) -> np.ndarray:
    """[3, 3] rotation about the camera z axis matching an image rotation of `rot_deg` (module docstring)."""
    a = -np.deg2rad(rot_deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def augment_keypoints(part: np.ndarray, center: np.ndarray, scale: float, res: int, aug: Augmentation) -> np.ndarray:
    """Full-image joints [24, 3] (x, y, visibility) -> normalised crop coordinates [24, 3] (invisible joints zero).

    As the original (docs/method.md §2.3): integer crop pixel `transform(kp + 1)` then `2 x / res - 1`; flip after
    rotation.
    """
    assert part.shape == (24, 3), part.shape
    out = np.zeros((24, 3))
    out[:, 2] = part[:, 2]
    out[:, :2] = 2.0 * transform(part[:, :2] + 1.0, center, scale * aug.scale, res, rot=aug.rot) / res - 1.0
    out[part[:, 2] <= 0] = 0.0
    if aug.flip:
        out = out[J24_FLIP_PERM]
        out[:, 0] = -out[:, 0]
    return out


def augment_joints3d(joints: np.ndarray, aug: Augmentation) -> np.ndarray:
    """[24, 4] camera-frame metres + visibility: rotated about z, then mirrored (x negated, left and right swapped)."""
    assert joints.shape == (24, 4), joints.shape
    out = joints.copy()
    out[:, :3] = joints[:, :3] @ rotation_z(aug.rot).T
    if aug.flip:
        out = out[J24_FLIP_PERM]
        out[:, 0] = -out[:, 0]
    return out


def augment_pose(pose: np.ndarray, aug: Augmentation) -> np.ndarray:
    """[72] axis-angle: global orientation pre-multiplied by `rotation_z`, then mirrored (perm, y and z negated)."""
    assert pose.shape == (72,), pose.shape
    out = pose.copy()
    if aug.rot != 0:
        root = rotation_z(aug.rot) @ cv2.Rodrigues(pose[:3].reshape(3, 1))[0]
        out[:3] = cv2.Rodrigues(root)[0].reshape(3)
    if aug.flip:
        out = out[SMPL_POSE_FLIP_PERM]
        out[1::3] = -out[1::3]
        out[2::3] = -out[2::3]
    return out


def augment_image(rgb: np.ndarray, center: np.ndarray, scale: float, res: int, aug: Augmentation) -> np.ndarray:
    """Crop [H, W, 3] uint8 RGB to [res, res, 3] float32 in [0, 255] with the augmentation applied."""
    patch = crop(rgb, center, scale * aug.scale, (res, res), rot=aug.rot)
    if aug.flip:
        patch = patch[:, ::-1]
    patch = patch * np.asarray(aug.colour, dtype=np.float32)
    if aug.pixel_noise > 0:
        noise = np.random.default_rng(aug.noise_seed).standard_normal(patch.shape, dtype=np.float32)
        patch = patch + aug.pixel_noise * noise
    return np.ascontiguousarray(np.clip(patch, 0.0, 255.0), dtype=np.float32)


def decode_factor(box_px: float, res: int) -> int:
    """Largest JPEG reduction in (1, 2, 4, 8) that leaves a box of `box_px` pixels at least `res` pixels wide."""
    return max(f for f in (1, 2, 4, 8) if f == 1 or box_px / f >= res)


def read_reduced_rgb(path: Path, factor: int) -> np.ndarray:
    """[ceil(H / factor), ceil(W / factor), 3] uint8 RGB, decoded at reduced size (factor 1: `read_image_rgb`)."""
    if factor == 1 or not Path(path).is_file():
        return read_image_rgb(path)  # full decode; for a missing file, the FileNotFoundError naming it
    img = cv2.imread(str(path), _REDUCED_READS[factor])
    if img is None:
        raise ValueError(f"cannot decode {path} as an image (corrupt file or unsupported format)")
    return np.ascontiguousarray(img[:, :, ::-1])


def normalize_image(patch: np.ndarray) -> torch.Tensor:
    """[..., H, W, 3] RGB in [0, 255] (uint8 or float) -> [..., 3, H, W] float32 ImageNet-normalised CPU tensor.

    Computed in numpy, single-threaded: for the few crops of a batch or a retrieval this beats torch's thread pool,
    which stalls when the cores are shared.
    """
    assert patch.shape[-1] == 3, patch.shape
    out = (np.asarray(patch, dtype=np.float32) / 255.0 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out, -1, -3)))


class H36MDataset(Dataset):
    """Human3.6M-format frames as training items (or, with `augment=None`, as plain exemplars).

    Args:
        data: arrays as `load_h36m_annotations` returns them (checked again here).
        image_root: folder the `imgname` entries are relative to (the H36M root).
        img_res: side of the network input, pixels.
        augment: SPIN augmentation settings, or None for none (validation, exemplars).
        fast_decode: decode JPEGs at reduced size when the box allows it (module docstring).

    Items are dicts: `img` [3, res, res] normalised, `keypoints` [49, 3] (zeros in the OpenPose block), `pose` [72],
    `betas` [10], `pose_3d` [24, 4], `has_smpl` (float), `imgname` (str), `index` (int). Augmentation seeds come
    from torch's generator, which `DataLoader` seeds per worker and epoch.
    """

    def __init__(self, data: Mapping[str, Any], image_root: Path, img_res: int = IMG_RES,
                 augment: AugmentSettings | None = None, fast_decode: bool = False) -> None:
        self.data = validate_annotations(data)
        self.image_root = Path(image_root)
        self.img_res = img_res
        self.augment = augment
        self.fast_decode = fast_decode

    def __len__(self) -> int:
        return len(self.data["imgname"])

    def image_path(self, index: int) -> Path:
        return self.image_root / str(self.data["imgname"][index])

    def process(self, index: int, aug: Augmentation) -> dict[str, np.ndarray]:
        """The augmented crop `rgb` [res, res, 3] float32 in [0, 255] and labels of frame `index` (numpy)."""
        d, res = self.data, self.img_res
        center, scale = d["center"][index], float(d["scale"][index])
        factor = decode_factor(200.0 * scale * aug.scale, res) if self.fast_decode else 1
        rgb = read_reduced_rgb(self.image_path(index), factor)
        # reduced pixel j covers full-resolution pixels [f j, f j + f): its centre is f j + (f - 1) / 2
        patch = augment_image(rgb, (center - (factor - 1) / 2.0) / factor, scale / factor, res, aug)
        part = augment_keypoints(d["part"][index], center, scale, res, aug)
        keypoints = np.concatenate([np.zeros((NUM_OPENPOSE, 3)), part]).astype(np.float32)
        return {"rgb": patch, "keypoints": keypoints,
                "pose": augment_pose(d["pose"][index], aug).astype(np.float32),
                "betas": d["shape"][index].astype(np.float32),
                "pose_3d": augment_joints3d(d["S"][index], aug).astype(np.float32)}

    def __getitem__(self, index: int) -> dict[str, Any]:
        aug = Augmentation()
        if self.augment is not None:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
            aug = sample_augmentation(rng, self.augment)
        item = self.process(index, aug)
        out: dict[str, Any] = {"img": normalize_image(item.pop("rgb"))}
        out.update({key: torch.from_numpy(value) for key, value in item.items()})
        out["has_smpl"] = torch.tensor(float(self.data["has_smpl"][index]))
        out["imgname"] = str(self.data["imgname"][index])
        out["index"] = index
        return out
