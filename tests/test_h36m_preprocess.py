"""Human3.6M preprocessing on a tiny fixture in the official layout (videos by OpenCV, poses by cdflib)."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

import process_data
from datasets.preprocess.h36m import GT_IDX, RAW_IDX
from tests.fixtures_real import frame_level, write_cdf_pose, write_h36m_recording
from utils.constants import GT_24_NAMES

ACTION = "Directions 1"
CAM_A, CAM_B = "54138969", "60457274"
COUNT = 12  # frames 0, 5, 10 kept with step 5


@pytest.fixture()
def h36m_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "h36m"
    truth = {cam: write_h36m_recording(root, "S1", ACTION, cam, COUNT, seed=i) for i, cam in enumerate((CAM_A, CAM_B))}
    # an `_ALL` aggregate (skipped) and a MoSh fit for camera A only: 3 rows = frames 0, 5, 10
    write_cdf_pose(root / "S1" / "MyPoseFeatures" / "D3_Positions_mono" / f"_ALL 1.{CAM_A}.cdf", np.zeros((2, 32, 3)))
    mosh = {"new_poses": np.arange(3 * 72, dtype=float).reshape(3, 72), "betas": np.linspace(0, 1, 10)}
    (root / "neutrSMPL_H3.6" / "S1").mkdir(parents=True)
    with open(root / "neutrSMPL_H3.6" / "S1" / f"Directions_1_{CAM_A}_aligned.pkl", "wb") as fh:
        pickle.dump(mosh, fh, protocol=2)
    return root, truth


def _run(root: Path, out: Path, *extra: str) -> dict:
    assert process_data.main(["--dataset", "h36m", "--root", str(root), "--subjects", "S1", "--out", str(out),
                              *extra]) == 0
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def test_npz_values(h36m_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, truth = h36m_root
    out = _run(root, tmp_path / "h36m_train.npz")
    names = [f"images/S1_Directions_1.{cam}_{f:06d}.jpg" for cam in (CAM_A, CAM_B) for f in (1, 6, 11)]
    assert out["imgname"].tolist() == names  # sorted recordings, `_ALL` skipped
    assert out["part"].shape == (6, 24, 3) and out["S"].shape == (6, 24, 4)
    assert out["pose"].shape == (6, 72) and out["shape"].shape == (6, 10)
    for row, name in enumerate(names):  # the image is the right video frame (its grey level encodes the index)
        assert frame_level(cv2.imread(str(root / name))) == [0, 5, 10][row % 3]
    pose3d, pose2d = truth[CAM_A]
    frames = [0, 5, 10]
    # 2D: the 17 joints in their GT slots, visibility 1; the 7 other slots empty
    np.testing.assert_allclose(out["part"][:3, GT_IDX, :2], pose2d[frames][:, RAW_IDX], atol=1e-3)
    assert out["part"][:, GT_IDX, 2].min() == 1 and out["part"][:, :, 2].sum() == 6 * 17
    # 3D: metres, root-centred at the pelvis; head top 800 mm and joint 14 600 mm above it (fixture)
    pelvis = GT_24_NAMES.index("Pelvis (MPII)")
    assert np.abs(out["S"][:, pelvis, :3]).max() == 0
    np.testing.assert_allclose(out["S"][:, GT_24_NAMES.index("Head (H36M)"), :3], [[0, -0.8, 0]] * 6, atol=1e-4)
    np.testing.assert_allclose(out["S"][:, GT_24_NAMES.index("Jaw (H36M)"), :3], [[0, -0.6, 0]] * 6, atol=1e-4)
    lwrist = (pose3d[frames, 19] - pose3d[frames, 0]) / 1000
    np.testing.assert_allclose(out["S"][:3, GT_24_NAMES.index("Left Wrist"), :3], lwrist, atol=1e-4)
    assert out["S"][:, GT_24_NAMES.index("Top of Head (LSP)"), 3].sum() == 0


def test_box_contains_projected_joints(h36m_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = h36m_root
    out = _run(root, tmp_path / "a.npz", "--scale-factor", "1.0")
    joints = out["part"][:, GT_IDX, :2]
    half = out["scale"][:, None, None] * 200 / 2
    assert (np.abs(joints - out["center"][:, None]) <= half + 1e-6).all()
    # factor 1: the longer side of the tight box touches the square
    extent = joints.max(axis=1) - joints.min(axis=1)
    np.testing.assert_allclose(out["scale"] * 200, extent.max(axis=1), rtol=1e-6)
    wider = _run(root, tmp_path / "b.npz", "--scale-factor", "1.2")
    np.testing.assert_allclose(wider["scale"], 1.2 * out["scale"])
    np.testing.assert_allclose(wider["center"], out["center"])


def test_mosh_fits_and_has_smpl(h36m_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = h36m_root
    out = _run(root, tmp_path / "a.npz")
    assert out["has_smpl"].tolist() == [1, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(out["pose"][:3], np.arange(3 * 72).reshape(3, 72))
    np.testing.assert_allclose(out["shape"][:3], np.tile(np.linspace(0, 1, 10), (3, 1)))
    assert np.abs(out["pose"][3:]).max() == 0 and np.abs(out["shape"][3:]).max() == 0


def test_existing_frames_not_decoded_again_and_cameras(h36m_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = h36m_root
    first = _run(root, tmp_path / "a.npz")
    for video in (root / "S1" / "Videos").glob("*.mp4"):
        video.unlink()  # a second run must not need the videos: every frame is already extracted
    again = _run(root, tmp_path / "b.npz")
    assert again["imgname"].tolist() == first["imgname"].tolist()
    np.testing.assert_array_equal(again["S"], first["S"])
    only_b = _run(root, tmp_path / "c.npz", "--cameras", CAM_B, "--step", "10")
    assert only_b["imgname"].tolist() == [f"images/S1_Directions_1.{CAM_B}_{f:06d}.jpg" for f in (1, 11)]


def test_short_video_drops_frames_and_protocol2(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "h36m"
    write_h36m_recording(root, "S9", "Walking", CAM_B, COUNT, seed=3, video_frames=7)  # video ends after frame 7
    write_h36m_recording(root, "S9", "Walking", CAM_A, COUNT, seed=4)
    write_h36m_recording(root, "S11", "Sitting 2", CAM_B, 3, seed=5)
    monkeypatch.setenv("DYNABOA_DATA", str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING):
        assert process_data.main(["--dataset", "h36m", "--root", str(root), "--protocol2"]) == 0
    assert "1 annotated frames have no image" in caplog.text
    with np.load(tmp_path / "data" / "dataset_extras" / "h36m_valid_protocol2.npz") as out:
        assert out["imgname"].tolist() == [f"images/S9_Walking.{CAM_B}_{f:06d}.jpg" for f in (1, 6)] + [
            f"images/S11_Sitting_2.{CAM_B}_000001.jpg"]  # camera A and frame 11 of the short video are not there
        assert out["has_smpl"].sum() == 0


def test_missing_pose_folder_names_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert process_data.main(["--dataset", "h36m", "--root", str(tmp_path), "--subjects", "S5"]) == 1
    assert "D3_Positions_mono not found" in caplog.text  # one line, no traceback
