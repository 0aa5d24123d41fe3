"""Tests of the 3DPW preprocessing (datasets/preprocess/pw3d.py) on hand-made sequence files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import process_data
from config import DataPaths
from datasets.preprocess import pw3d
from datasets.synthetic.writers import pw3d_sequence_dict, write_pw3d_sequence
from models.smpl import build_smpl


def test_sequence_indices_fixed_list_then_sorted_extras() -> None:
    names = ["synthetic_b", "flat_packBags_00", "synthetic_a", "downtown_runForBus_00"]
    assert pw3d.sequence_indices(names) == [
        (0, "downtown_runForBus_00"), (2, "flat_packBags_00"), (24, "synthetic_a"), (25, "synthetic_b")]


def test_project_by_hand() -> None:
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    pose = np.eye(4)[None]
    pose[0, :3, 3] = [0.0, 0.0, 1.0]  # the world origin is 1 m in front of the camera
    pts = np.array([[[0.0, 0.0, 4.0], [1.0, 2.0, 4.0]]])  # z = 5 in the camera
    # (0, 0, 5) -> centre (50, 40); (1, 2, 5) -> (50 + 100 * 1/5, 40 + 100 * 2/5) = (70, 80)
    np.testing.assert_allclose(pw3d.project(pts, pose, K), [[[50.0, 40.0], [70.0, 80.0]]])


def test_root_to_camera_by_hand() -> None:
    poses = np.zeros((1, 72))
    poses[0, :3] = [np.pi / 2, 0.0, 0.0]  # root: 90 degrees about x
    poses[0, 3:6] = [0.1, 0.2, 0.3]
    cam_rot = Rotation.from_rotvec([0.0, 0.0, np.pi / 2]).as_matrix()[None]  # camera: 90 degrees about z
    out = pw3d.root_to_camera(poses, cam_rot)
    expected = Rotation.from_rotvec([0, 0, np.pi / 2]) * Rotation.from_rotvec([np.pi / 2, 0, 0])
    np.testing.assert_allclose(Rotation.from_rotvec(out[0, :3]).as_matrix(), expected.as_matrix(), atol=1e-12)
    np.testing.assert_array_equal(out[0, 3:], poses[0, 3:])  # the body pose is untouched
    assert poses[0, 0] == np.pi / 2  # input not modified


def test_coco18_into_body25_slots() -> None:
    poses2d = np.zeros((1, 3, 18))
    poses2d[0, 0] = np.arange(18) + 100.0  # x = 100 + COCO-18 index
    poses2d[0, 2] = 0.5
    out = pw3d.coco18_to_op_j2d(poses2d)
    assert out.shape == (1, 49, 3)
    np.testing.assert_array_equal(out[0, :8, 0], 100.0 + np.arange(8))  # nose .. left wrist: same slots
    assert out[0, 8].tolist() == [0.0, 0.0, 0.0]  # MidHip has no COCO-18 joint
    np.testing.assert_array_equal(out[0, 9:19, 0], 100.0 + np.arange(8, 18))  # right hip .. left ear
    assert not out[0, 19:].any()  # feet and the GT block stay empty


def _sequence(rng: np.random.Generator) -> dict:
    """Two people, 4 frames, frame 1 without a valid camera pose; a camera 5 m away, turning a little per frame."""
    n = 4
    cams = np.tile(np.eye(4), (n, 1, 1))
    for t in range(n):
        cams[t, :3, :3] = Rotation.from_rotvec([np.pi, 0.2 * t, 0.0]).as_matrix()  # about x: y up -> image down
        cams[t, :3, 3] = [0.1 * t, 0.0, 5.0]
    poses = [rng.normal(0, 0.2, (n, 72)) for _ in range(2)]
    trans = [rng.normal(0, 0.3, (n, 3)) for _ in range(2)]
    poses2d = [rng.uniform(0, 300, (n, 3, 18)) for _ in range(2)]
    valid = [np.array([True, False, True, True])] * 2
    K = np.array([[500.0, 0, 180], [0, 500.0, 320], [0, 0, 1]])
    return pw3d_sequence_dict("synthetic_77", poses, [rng.normal(0, 1, 10) for _ in range(2)], trans, poses2d,
                              [np.zeros((n, 72))] * 2, ["m", "f"], valid, cams, K)


def test_preprocess_hand_made_sequence(body_root: Path, tmp_path: Path) -> None:
    data = _sequence(np.random.default_rng(0))
    root = tmp_path / "3dpw"
    write_pw3d_sequence(root, data)
    assert process_data.main(["--dataset", "3dpw", "--root", str(root), "--out", str(tmp_path / "extras"),
                              "--scale-factor", "1.2", "--data-root", str(body_root)]) == 0
    paths = DataPaths.from_root(body_root)
    for pid, gender in ((0, "male"), (1, "female")):
        out = np.load(tmp_path / "extras" / f"3dpw_24_{pid}.npz")
        assert sorted(out.files) == sorted(["imgname", "gender", "center", "scale", "pose", "shape", "j3d", "j2d",
                                            "op_j2d"])
        assert out["imgname"].tolist() == [f"imageFiles/synthetic_77/image_{i:05d}.jpg" for i in (0, 2, 3)]
        assert out["gender"].tolist() == [data["genders"][pid]] * 3
        shapes = {"center": (3, 2), "scale": (3,), "pose": (3, 72), "shape": (3, 10), "j3d": (3, 49, 3),
                  "j2d": (3, 49, 3), "op_j2d": (3, 49, 3)}
        assert {k: out[k].shape for k in shapes} == shapes
        assert out["imgname"].dtype.kind == out["gender"].dtype.kind == "U"
        assert all(out[k].dtype.kind == "f" for k in shapes)
        keep = [0, 2, 3]
        # independent recomputation: gendered SMPL joints + trans, camera, intrinsics
        model = build_smpl(paths, gender)
        pose = torch.tensor(data["poses"][pid][keep], dtype=torch.float32)
        betas = torch.tensor(data["betas"][pid], dtype=torch.float32).expand(3, 10)
        joints = model(betas, pose[:, 3:], pose[:, :3]).joints.detach().numpy() + data["trans"][pid][keep, None]
        cam = data["cam_poses"][keep]
        xyz = np.einsum("nij,nkj->nki", cam[:, :3, :3], joints) + cam[:, None, :3, 3]
        uv = xyz[..., :2] / xyz[..., 2:] * 500.0 + np.array([180.0, 320.0])
        np.testing.assert_allclose(out["j3d"], joints, atol=1e-5)
        np.testing.assert_allclose(out["j2d"][..., :2], uv, atol=1e-2)
        assert (out["j2d"][..., 2] == 1).all()
        lo, hi = uv.min(axis=1), uv.max(axis=1)
        np.testing.assert_allclose(out["center"], (lo + hi) / 2, atol=1e-2)
        np.testing.assert_allclose(out["scale"], (hi - lo).max(axis=1) / 200 * 1.2, atol=1e-4)
        np.testing.assert_allclose(out["op_j2d"], pw3d.coco18_to_op_j2d(data["poses2d"][pid][keep]))
        np.testing.assert_allclose(out["shape"], np.tile(data["betas"][pid], (3, 1)), atol=1e-6)
        root = Rotation.from_matrix(cam[:, :3, :3]) * Rotation.from_rotvec(data["poses"][pid][keep, :3])
        np.testing.assert_allclose(Rotation.from_rotvec(out["pose"][:, :3]).as_matrix(), root.as_matrix(),
                                   atol=1e-5)


def test_missing_sequence_folder_is_explained(body_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sequenceFiles"):
        pw3d.preprocess_pw3d(tmp_path / "nowhere", tmp_path / "out", DataPaths.from_root(body_root))
