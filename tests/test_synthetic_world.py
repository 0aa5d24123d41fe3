"""Tests of the synthetic world (datasets/synthetic/): formats, geometry, noise model, determinism, resume."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from config import DataPaths
from datasets.preprocess.pw3d import project
from datasets.synthetic import domains as dom
from datasets.synthetic.detector_noise import (
    COCO18_FROM_J49,
    DetectorNoise,
    joint_visibility,
    simulate_openpose,
)
from datasets.synthetic.generate import BODY_FILES, generate_world
from datasets.synthetic.scene import background_view, box_mesh, clothing_colors, intrinsics, look_at
from models.smpl import build_smpl
from utils.io import write_bytes_atomic

TORSO_24 = [2, 3, 12, 14, 15, 16]  # GT-24 hips, LSP neck, pelvis, thorax, spine: well inside the silhouette
TORSO_49 = [25 + j for j in TORSO_24]
PKL_KEYS = {"sequence", "betas", "poses", "trans", "poses2d", "jointPositions", "genders", "campose_valid",
            "cam_poses", "cam_intrinsics", "img_frame_ids"}


def _make_world(root: Path, body_root: Path, **kwargs) -> dict[str, int]:
    for name in BODY_FILES:  # reuse the session's body instead of building it again
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(body_root / name, root / name)
    return generate_world(root, "tiny", seed=0, **kwargs)


@pytest.fixture(scope="module")
def world(body_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world made by two worker processes, with the render label images."""
    root = tmp_path_factory.mktemp("world")
    counts = _make_world(root, body_root, jobs=2, save_labels=True)
    assert counts == {"generated_units": 7, "h36m_train": 24, "h36m_valid": 16, "pw3d_npz": 4}
    return root


def _sequences(root: Path) -> list[dict]:
    files = sorted((root / "3dpw" / "sequenceFiles" / "test").glob("*.pkl"))
    out = []
    for f in files:
        assert f.read_bytes()[:2] == b"\x80\x02"  # protocol 2, as the real files
        with open(f, "rb") as fh:
            out.append(pickle.load(fh, encoding="latin1"))
    return out


def _gt_joints(root: Path, seq: dict, pid: int) -> np.ndarray:
    """World 49 joints [N, 49, 3] of a person from the pkl with the gendered body (independent of the generator)."""
    model = build_smpl(DataPaths.from_root(root), {"m": "male", "f": "female"}[seq["genders"][pid]])
    pose = torch.tensor(seq["poses"][pid], dtype=torch.float32)
    betas = torch.tensor(seq["betas"][pid], dtype=torch.float32).expand(len(pose), 10)
    with torch.no_grad():
        joints = model(betas, pose[:, 3:], pose[:, :3]).joints.numpy()
    return joints + seq["trans"][pid][:, None]


def test_h36m_npz_format_and_files(world: Path) -> None:
    data = np.load(world / "dataset_extras" / "h36m_train.npz")
    n = 1 * 2 * 4 * 3  # subjects x actions x cameras x frames (tiny)
    shapes = {"imgname": (n,), "center": (n, 2), "scale": (n,), "part": (n, 24, 3), "S": (n, 24, 4),
              "pose": (n, 72), "shape": (n, 10), "has_smpl": (n,)}
    assert {k: data[k].shape for k in data.files} == shapes
    assert data["imgname"].dtype.kind == "U" and all(data[k].dtype == np.float64 for k in shapes if k != "imgname")
    assert data["imgname"][0] == "images/S1_Walking.54138969_000001.jpg"
    assert all((world / "h36m" / name).is_file() for name in data["imgname"])
    assert (data["S"][..., 3] == 1).all() and np.abs(data["S"][:, 14, :3]).max() == 0  # root-centred at the pelvis
    assert set(np.unique(data["part"][..., 2])) <= {0.0, 1.0}
    img = cv2.imread(str(world / "h36m" / data["imgname"][0]))
    assert img.shape == (400, 400, 3)
    valid = np.load(world / "dataset_extras" / "h36m_valid.npz")
    assert all(name.startswith("images/S9_") for name in valid["imgname"])


def test_lab_joints_fall_on_the_rendered_body(world: Path) -> None:
    data = np.load(world / "dataset_extras" / "h36m_train.npz")
    hits = []
    for name, part in zip(data["imgname"], data["part"]):
        labels = cv2.imread(str((world / "labels" / "h36m" / name).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        for x, y, c in part[TORSO_24]:
            assert c == 1
            hits.append(labels[int(round(y)), int(round(x))] == 1)
    assert np.mean(hits) == 1.0


def test_pw3d_pkl_format(world: Path) -> None:
    seqs = _sequences(world)
    assert [s["sequence"] for s in seqs] == ["synthetic_00", "synthetic_01", "synthetic_02"]
    for i, seq in enumerate(seqs):
        assert set(seq) == PKL_KEYS
        n, people = len(seq["img_frame_ids"]), dom.wild_layout(i, 10).people
        for key in ("betas", "poses", "trans", "poses2d", "jointPositions", "genders", "campose_valid"):
            assert isinstance(seq[key], list) and len(seq[key]) == people, key
        for p in range(people):
            assert seq["poses"][p].shape == (n, 72) and seq["poses"][p].dtype == np.float64
            assert seq["betas"][p].shape == (10,) and seq["trans"][p].shape == (n, 3)
            assert seq["poses2d"][p].shape == (n, 3, 18) and seq["poses2d"][p].dtype == np.float64
            assert seq["campose_valid"][p].dtype == bool and seq["campose_valid"][p].shape == (n,)
            assert seq["genders"][p] in ("m", "f")
        assert seq["cam_poses"].shape == (n, 4, 4) and seq["cam_intrinsics"].shape == (3, 3)
        img = cv2.imread(str(world / "3dpw" / "imageFiles" / seq["sequence"] / f"image_{n - 1:05d}.jpg"))
        assert img.shape == (640, 360, 3)
    assert seqs[2]["campose_valid"][0].tolist() == [False] * 2 + [True] * 8  # layout: i % 4 == 2


def test_wild_joints_fall_on_their_person_and_preprocessing_matches(world: Path) -> None:
    on_person, on_something = [], []
    for i, seq in enumerate(_sequences(world)):
        for pid in range(len(seq["poses"])):
            valid = seq["campose_valid"][pid]
            joints = _gt_joints(world, seq, pid)[valid]
            uv = project(joints, seq["cam_poses"][valid], seq["cam_intrinsics"])
            npz = np.load(world / "dataset_extras" / f"3dpw_{24 + i}_{pid}.npz")
            np.testing.assert_allclose(npz["j2d"][..., :2], uv, atol=1e-2)
            for t, frame in enumerate(np.flatnonzero(valid)):
                labels = cv2.imread(str(world / "labels" / "3dpw" / seq["sequence"] / f"label_{frame:05d}.png"),
                                    cv2.IMREAD_UNCHANGED)
                for x, y in uv[t, TORSO_49]:
                    if 0 <= x < labels.shape[1] and 0 <= y < labels.shape[0]:
                        label = labels[int(round(y)), int(round(x))]
                        on_person.append(label == pid + 1)
                        on_something.append(label > 0)  # if not this person, an occluder or the other person
    assert np.mean(on_something) == 1.0
    assert np.mean(on_person) > 0.6, np.mean(on_person)


def test_poses2d_are_noisy_detections_near_the_truth(world: Path) -> None:
    errors, sizes, missing_zero = [], [], []
    for seq in _sequences(world):
        for pid in range(len(seq["poses"])):
            joints = _gt_joints(world, seq, pid)
            truth = project(joints, seq["cam_poses"], seq["cam_intrinsics"])[:, COCO18_FROM_J49]
            det = seq["poses2d"][pid].transpose(0, 2, 1)  # [N, 18, 3]
            found = det[..., 2] > 0
            errors.append(np.linalg.norm(det[..., :2] - truth, axis=-1)[found])
            sizes.append(np.linalg.norm(truth.max(1) - truth.min(1), axis=-1).mean())
            missing_zero.append((det[~found] == 0).all())
    assert all(missing_zero)
    assert np.median(np.concatenate(errors)) < 0.05 * np.mean(sizes)  # jitter of about 1-2 % of the size


def test_same_seed_same_world_whatever_the_workers(world: Path, tiny_world: Path) -> None:
    """`world` was made by two worker processes with label images, `tiny_world` in-process without: same bits."""
    for a, b in zip(_sequences(world), _sequences(tiny_world)):
        for key in ("poses", "trans", "poses2d", "betas"):
            np.testing.assert_array_equal(np.stack(a[key]), np.stack(b[key]))
        np.testing.assert_array_equal(a["cam_poses"], b["cam_poses"])
    for name in ("3dpw/imageFiles/synthetic_01/image_00004.jpg", "h36m/images/S9_Greeting.60457274_000004.jpg"):
        assert (world / name).read_bytes() == (tiny_world / name).read_bytes()
    for split in ("train", "valid"):
        first, second = (np.load(r / "dataset_extras" / f"h36m_{split}.npz") for r in (world, tiny_world))
        assert all(np.array_equal(first[k], second[k]) for k in first.files)


def test_resume_skips_finished_units(world: Path, body_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    shutil.copytree(world, other)
    # an interrupted run: one sequence and one clip unfinished, a half-written temporary pkl left behind
    seq_dir = other / "3dpw" / "sequenceFiles" / "test"
    (seq_dir / "synthetic_01.pkl").unlink()
    (other / "h36m" / "synthetic_parts" / "S1_Greeting.npz").unlink()
    (seq_dir / ".synthetic_01.pkl.tmp999").write_bytes(b"\x80\x02half")
    kept = {p: p.stat().st_mtime_ns for p in (seq_dir / "synthetic_00.pkl", seq_dir / "synthetic_02.pkl",
                                              other / "h36m" / "synthetic_parts" / "S1_Walking.npz")}
    counts = _make_world(other, body_root)
    assert counts["generated_units"] == 2
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    for name in ("3dpw/sequenceFiles/test/synthetic_01.pkl", "h36m/synthetic_parts/S1_Greeting.npz",
                 "dataset_extras/3dpw_25_1.npz"):
        assert (other / name).read_bytes() == (world / name).read_bytes()
    with pytest.raises(ValueError, match="another --out"):
        generate_world(other, "tiny", seed=1)


# ------------------------------------------------------------------------------------------------------------------
# the detector-noise model
# ------------------------------------------------------------------------------------------------------------------


def _skeleton(n: int, size: float) -> np.ndarray:
    """[n, 18, 2] keypoints spread over a box of diagonal about `size` pixels around (500, 500)."""
    unit = np.random.default_rng(0).uniform(-0.35, 0.35, (18, 2))
    return np.tile(500.0 + unit * size, (n, 1, 1))


def test_jitter_grows_with_person_size() -> None:
    noise = DetectorNoise(miss_rate=0.0, outlier_rate=0.0, swap_rate=0.0)
    all_visible, none_hidden = np.ones((400, 18), bool), np.zeros((400, 18), bool)
    spread = []
    for size in (100.0, 400.0):
        kp = _skeleton(400, size)
        out = simulate_openpose(kp, all_visible, none_hidden, (1000, 1000), np.random.default_rng(1), noise)
        diag = np.linalg.norm(kp[0].max(0) - kp[0].min(0))
        err = out.transpose(0, 2, 1)[..., :2] - kp
        spread.append(err.std())
        # expected sd: jitter * diagonal * mean factor (the per-joint factors average to about 1.06)
        assert err.std() == pytest.approx(noise.jitter * diag * 1.06, rel=0.15)
    assert spread[1] / spread[0] == pytest.approx(4.0, rel=0.15)


def test_hidden_joints_have_zero_confidence() -> None:
    kp = _skeleton(50, 200.0)
    visible = np.ones((50, 18), bool)
    visible[:, 4] = False  # right wrist behind an occluder
    self_occ = np.zeros((50, 18), bool)
    self_occ[:, 16] = True  # right ear behind the head: face joints are then missing
    self_occ[:, 9] = True  # right knee behind the other leg: kept, lower confidence
    visible[7, :13] = False  # frame 7: only 5 joints visible -> the whole frame is missing (needs 6)
    noise = DetectorNoise(miss_rate=0.0, outlier_rate=0.0, swap_rate=0.0)
    out = simulate_openpose(kp, visible, self_occ, (1000, 1000), np.random.default_rng(0), noise)
    assert (out[:, :, 4] == 0).all() and (out[:, :, 16] == 0).all()
    others = np.delete(np.arange(18), [4, 9, 16])
    assert (out[np.arange(50) != 7][:, 2, 9] < out[np.arange(50) != 7][:, 2][:, others].mean(1)).mean() > 0.8
    assert (out[7] == 0).all()


def test_joint_visibility_from_labels_and_depth() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[:, :10] = 1  # person 1 on the left half, an occluder (2) on the right half
    labels[:, 10:] = 2
    depth = np.full((20, 20), 3.0, np.float32)
    points = np.array([[3.0, 5.0], [15.0, 5.0], [30.0, 5.0], [4.0, 4.0]])  # on person, on occluder, outside, on
    joint_depth = np.array([3.1, 3.1, 3.1, 3.5])  # the last one 0.5 m behind the person's surface
    visible, self_occ = joint_visibility(points, joint_depth, labels, depth, person_label=1)
    assert visible.tolist() == [True, False, False, True]
    assert self_occ.tolist() == [False, False, False, True]


# ------------------------------------------------------------------------------------------------------------------
# scene pieces, writers, the domains table
# ------------------------------------------------------------------------------------------------------------------


def test_look_at_projects_by_hand() -> None:
    K = intrinsics(500.0, 400, 300)
    cam = look_at(np.array([0.0, 1.0, 5.0]), np.array([0.0, 1.0, 0.0]))  # looking along -z from 5 m
    pts = np.array([[[0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 0.0]]])
    # target -> centre (200, 150); 1 m to +x at 5 m -> 100 px right; 1 m up -> 100 px up
    np.testing.assert_allclose(project(pts, cam[None], K), [[[200, 150], [300, 150], [200, 50]]], atol=1e-9)


def test_background_view_wraps_around() -> None:
    canvas = np.random.default_rng(0).integers(0, 255, (100, 50, 3), dtype=np.uint8)
    cam = look_at(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))  # yaw 0, pitch 0
    view = background_view(canvas, cam, focal=100.0, width=80, height=60)
    assert view.shape == (60, 80, 3)
    np.testing.assert_array_equal(view[:, 50:], view[:, :30])  # 80 columns of a 50-column panorama repeat


def test_clothing_and_box_mesh() -> None:
    rng = np.random.default_rng(0)
    weights = np.eye(24)[rng.integers(0, 24, 500)]
    colors = clothing_colors(weights, rng.normal(0, 0.3, (500, 3)), rng, vivid=True)
    assert colors.shape == (500, 3) and colors.min() >= 0 and colors.max() <= 1
    verts, faces = box_mesh(np.array([1.0, 0.0, 2.0]), np.array([2.0, 1.0, 0.5]), yaw=0.0)
    assert verts.shape == (24, 3) and faces.shape == (12, 3)
    np.testing.assert_allclose(verts.min(0), [0.0, 0.0, 1.75])
    np.testing.assert_allclose(verts.max(0), [2.0, 1.0, 2.25])


def test_atomic_write_leaves_no_temporary(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "a" / "x.pkl", b"data")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.pkl"]


def test_describe_table_names_both_domains() -> None:
    table = dom.describe_domains("default")
    assert table.count("\n") == 21 and "| focal length | 440-475 px" in table
    for family in dom.LAB_FAMILIES + dom.WILD_FAMILIES:
        assert family in table
    assert not set(dom.LAB_FAMILIES) & set(dom.WILD_FAMILIES)
