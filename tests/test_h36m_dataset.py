"""datasets/h36m.py: annotation checks, crops, and SPIN augmentation (flip permutation, rotation consistency)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets.h36m import (
    Augmentation,
    AugmentSettings,
    H36MDataset,
    augment_joints3d,
    augment_keypoints,
    augment_pose,
    decode_factor,
    load_h36m_annotations,
    sample_augmentation,
)
from utils.imutils import crop_to_tensor, normalize_keypoints

IMG_SIDE = 160  # fixture frames are 160 x 160 px
CENTER = (80.0, 80.0)
SCALE = 0.6  # box side 120 px
PX_PER_M = 100.0  # fixture 2D joints are an orthographic view of S: part = center + 100 * S_xy
H36M_SLOTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 17, 18]  # GT-24 slots Human3.6M fills


def write_h36m_set(root: Path, n: int = 6, seed: int = 0, name: str = "h36m_train.npz",
                   colour_blocks: bool = False) -> dict[str, np.ndarray]:
    """A tiny Human3.6M-format set: PNG frames under `root/h36m/images/`, npz under `root/dataset_extras/`.

    Frame i has random noise (or, with colour_blocks, a red left half and a blue right half), 3D joints S within
    +-0.45 m, 2D joints their orthographic view, pose[0, 0] = i / 10 so a row can be recognised, has_smpl 1.
    """
    rng = np.random.default_rng(seed)
    (root / "h36m" / "images").mkdir(parents=True, exist_ok=True)
    (root / "dataset_extras").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        if colour_blocks:
            img = np.zeros((IMG_SIDE, IMG_SIDE, 3), np.uint8)
            img[:, : IMG_SIDE // 2, 0] = 255
            img[:, IMG_SIDE // 2:, 2] = 255
        else:
            img = rng.integers(0, 256, (IMG_SIDE, IMG_SIDE, 3), dtype=np.uint8)
        names.append(f"images/S1_Walk.5413_{seed:02d}{i:04d}.png")
        cv2.imwrite(str(root / "h36m" / names[-1]), img[:, :, ::-1])
    S = np.zeros((n, 24, 4))
    S[:, H36M_SLOTS, :3] = rng.uniform(-0.45, 0.45, (n, len(H36M_SLOTS), 3))
    S[:, H36M_SLOTS, 3] = 1.0
    part = np.zeros((n, 24, 3))
    part[..., :2] = np.asarray(CENTER) + PX_PER_M * S[..., :2]
    part[..., 2] = S[..., 3]
    pose = rng.normal(0, 0.3, (n, 72))
    pose[:, 0] = np.arange(n) / 10
    data = {"imgname": np.array(names), "center": np.tile(CENTER, (n, 1)), "scale": np.full(n, SCALE),
            "part": part, "S": S, "pose": pose, "shape": rng.normal(0, 1, (n, 10)), "has_smpl": np.ones(n)}
    np.savez(root / "dataset_extras" / name, **data)
    return data


def test_annotations_missing_file_and_bad_shape(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="process_data.py"):
        load_h36m_annotations(tmp_path / "nope.npz")
    data = write_h36m_set(tmp_path, n=2)
    bad = dict(data, part=data["part"][:, :17])
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="'part' has shape"):
        load_h36m_annotations(tmp_path / "bad.npz")
    no_flag = {k: v for k, v in data.items() if k != "has_smpl"}
    np.savez(tmp_path / "noflag.npz", **no_flag)
    assert np.all(load_h36m_annotations(tmp_path / "noflag.npz")["has_smpl"] == 1)


def test_item_without_augmentation_is_the_plain_crop(tmp_path: Path) -> None:
    data = write_h36m_set(tmp_path, n=3)
    ds = H36MDataset(load_h36m_annotations(tmp_path / "dataset_extras" / "h36m_train.npz"), tmp_path / "h36m", 64)
    item = ds[1]
    assert item["img"].shape == (3, 64, 64) and item["keypoints"].shape == (49, 3)
    assert item["pose"].shape == (72,) and item["betas"].shape == (10,) and item["pose_3d"].shape == (24, 4)
    rgb = cv2.imread(str(tmp_path / "h36m" / data["imgname"][1]))[:, :, ::-1]
    assert torch.allclose(item["img"], crop_to_tensor(np.ascontiguousarray(rgb), CENTER, SCALE, 64), atol=1e-5)
    expected = normalize_keypoints(data["part"][1], CENTER, SCALE, 64)
    visible = data["part"][1, :, 2] > 0
    assert np.allclose(item["keypoints"][25:][visible].numpy(), expected[visible], atol=1e-6)
    assert torch.all(item["keypoints"][:25] == 0) and torch.all(item["keypoints"][25:][~visible] == 0)
    assert np.allclose(item["pose"].numpy(), data["pose"][1], atol=1e-6)
    assert item["has_smpl"] == 1.0 and item["index"] == 1


def test_flip_moves_left_joints_to_right_slots() -> None:
    part = np.zeros((24, 3))
    part[5] = (110.0, 90.0, 1.0)  # left ankle, 30 px right of the box centre
    part[0] = (50.0, 90.0, 1.0)  # right ankle, 30 px left of it
    flipped = augment_keypoints(part, np.array(CENTER), SCALE, 64, Augmentation(flip=True))
    # left ankle: crop x = 110 * 64/120 + 64 * (-80/120 + 0.5) = 58.667 - 10.667 = 48 -> int 48 + 1 = 49
    # -> 2 * 49 / 64 - 1 = 0.53125, negated by the flip and stored in the right-ankle slot 0
    assert flipped[0, 0] == pytest.approx(-0.53125)
    # right ankle: 50 * 64/120 - 10.667 = 16 -> 17 -> -0.46875, negated into the left-ankle slot 5
    assert flipped[5, 0] == pytest.approx(0.46875) and flipped[0, 2] == flipped[5, 2] == 1.0
    assert flipped[0, 1] == flipped[5, 1]  # y unchanged by a horizontal flip (both at y = 90)
    pose = np.zeros(72)
    pose[3:6] = (0.1, 0.2, 0.3)  # SMPL joint 1 = left hip
    out = augment_pose(pose, Augmentation(flip=True))
    assert np.allclose(out[6:9], (0.1, -0.2, -0.3)) and np.allclose(out[3:6], 0.0)  # joint 2 = right hip
    joints = np.zeros((24, 4))
    joints[3] = (0.1, 0.2, 0.3, 1.0)  # GT-24 slot 3 = left hip -> slot 2 = right hip, x negated
    assert np.allclose(augment_joints3d(joints, Augmentation(flip=True))[2], (-0.1, 0.2, 0.3, 1.0))


def test_flip_mirrors_the_image(tmp_path: Path) -> None:
    write_h36m_set(tmp_path, n=1, colour_blocks=True)
    ds = H36MDataset(load_h36m_annotations(tmp_path / "dataset_extras" / "h36m_train.npz"), tmp_path / "h36m", 32)
    plain, flipped = ds.process(0, Augmentation()), ds.process(0, Augmentation(flip=True))
    assert plain["rgb"][16, 2, 0] > 250 and plain["rgb"][16, 2, 2] < 5  # red on the left
    assert flipped["rgb"][16, 2, 2] > 250 and flipped["rgb"][16, 2, 0] < 5  # blue on the left after the flip
    assert np.allclose(flipped["rgb"], plain["rgb"][:, ::-1])


@pytest.mark.parametrize("rot,flip", [(25.0, False), (-40.0, True), (90.0, False)])
def test_rotation_turns_image_joints_3d_joints_and_root_together(tmp_path: Path, rot: float, flip: bool) -> None:
    data = write_h36m_set(tmp_path, n=1)
    ds = H36MDataset(load_h36m_annotations(tmp_path / "dataset_extras" / "h36m_train.npz"), tmp_path / "h36m", 224)
    aug = Augmentation(rot=rot, scale=1.1, flip=flip)
    item = ds.process(0, aug)
    # orthographic fixture: normalised crop coords = k * S_xy with k = 100 px/m * (224 / (200 * 0.6 * 1.1)) * 2 / 224
    k = PX_PER_M * 2.0 / (200.0 * SCALE * 1.1)
    vis = item["pose_3d"][:, 3] > 0
    kp, s3 = item["keypoints"][25:], item["pose_3d"]
    assert np.abs(kp[vis, :2] - k * s3[vis, :2]).max() < 2.5 * 2 / 224  # within the integer-pixel quantisation
    lengths = np.sort(np.linalg.norm(s3[:, :3], axis=1))  # a rotation and a mirror keep every length
    assert np.allclose(lengths, np.sort(np.linalg.norm(data["S"][0, :, :3], axis=1)), atol=1e-6)
    if not flip:  # recover the 3D rotation from S and check the root turned by the same one
        src, dst = data["S"][0, vis, :3], s3[vis, :3].astype(np.float64)
        u, _, vt = np.linalg.svd(src.T @ dst)
        rz = (u @ vt).T
        root_before = cv2.Rodrigues(data["pose"][0, :3])[0]
        root_after = cv2.Rodrigues(item["pose"][:3].astype(np.float64))[0]
        assert np.allclose(root_after, rz @ root_before, atol=1e-5)
        assert np.allclose(rz[2], (0, 0, 1), atol=1e-6)  # about the camera axis


def test_fast_decode_stays_within_a_crop_pixel(tmp_path: Path) -> None:
    """A smooth 800 px frame with a 480 px box at 64 px: decoded at 1/4 size (120 >= 64), the crop barely moves."""
    yy, xx = np.mgrid[0:800, 0:800]
    img = np.stack([xx * 255 / 800, yy * 255 / 800, 128 + 100 * np.sin(xx / 40.0)], -1).astype(np.uint8)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "f.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    data = {"imgname": np.array(["images/f.jpg"]), "center": np.array([[390.0, 410.0]]), "scale": np.array([2.4]),
            "part": np.zeros((1, 24, 3)), "S": np.zeros((1, 24, 4)), "pose": np.zeros((1, 72)),
            "shape": np.zeros((1, 10))}
    exact = H36MDataset(data, tmp_path, 64).process(0, Augmentation(rot=20.0))["rgb"]
    fast = H36MDataset(data, tmp_path, 64, fast_decode=True).process(0, Augmentation(rot=20.0))["rgb"]
    # one crop pixel is 480 / 64 = 7.5 frame pixels, i.e. about 2.4 grey levels of the x and y ramps
    inner = (slice(8, -8), slice(8, -8))  # away from the zero padding of the rotated corners
    assert np.abs(fast[inner] - exact[inner]).mean() < 2.5
    assert decode_factor(480, 64) == 4 and decode_factor(480, 256) == 1 and decode_factor(2000, 64) == 8


def test_sample_augmentation_follows_spin() -> None:
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(rng, AugmentSettings()) for _ in range(4000)]
    rots = np.array([a.rot for a in draws])
    scales = np.array([a.scale for a in draws])
    colours = np.array([a.colour for a in draws])
    assert abs(np.mean(rots == 0) - 0.6) < 0.03 and np.abs(rots).max() <= 60.0
    assert abs(np.std(rots[rots != 0]) - 30.0) < 3.0
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert abs(np.mean([a.flip for a in draws]) - 0.5) < 0.03
    assert colours.min() >= 0.6 and colours.max() <= 1.4


def test_augmented_items_differ_and_stay_finite(tmp_path: Path) -> None:
    write_h36m_set(tmp_path, n=2)
    ds = H36MDataset(load_h36m_annotations(tmp_path / "dataset_extras" / "h36m_train.npz"), tmp_path / "h36m", 32,
                     augment=AugmentSettings(rot_prob=1.0))
    torch.manual_seed(0)
    a, b = ds[0], ds[0]
    assert not torch.equal(a["img"], b["img"])
    assert all(torch.isfinite(a[key]).all() for key in ("img", "keypoints", "pose", "pose_3d"))
