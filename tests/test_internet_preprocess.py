"""Internet-video keypoints -> per-track npz: filters, boxes, tracking, formats, bad inputs."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import process_data
from datasets.preprocess.internet import associate, square_iou
from tests.fixtures_real import COCO17_TEMPLATE, alphapose_entry, coco17_person
from utils.keypoints import FrameKeypoints, KeypointsFile, PersonKeypoints, write_keypoints_json

ORIGINAL_COCO_PERM = [44, 45, 46, 47, 48, 34, 33, 35, 32, 36, 31, 28, 27, 29, 26, 30, 25]


def _run(root: Path, *extra: str) -> int:
    return process_data.main(["--dataset", "internet", "--root", str(root), *extra])


def _load(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def test_single_person_values(tmp_path: Path) -> None:
    entries = []
    for f in range(5):
        kps = coco17_person(500 + 10 * f, 400, 400)
        kps[0, 2] = 0.25  # nose below the confidence threshold
        kps[15, :] = [0, 0, 0.05]  # left ankle undetected at the origin: must not stretch the box
        entries.append(alphapose_entry(f, kps))
    (tmp_path / "clip.json").write_text(json.dumps(entries))
    assert _run(tmp_path) == 0
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["clip_0.npz"]
    out = _load(tmp_path / "clip_0.npz")
    assert out["imgname"].tolist() == [f"images/clip/{i:06d}.png" for i in range(1, 6)]
    assert out["frame_ids"].tolist() == [0, 1, 2, 3, 4] and out["track_id"].tolist() == [0] * 5
    assert str(out["layout"]) == "coco17" and out["part"].shape == (5, 49, 3)
    # confident joints span x: +-0.16 * 400 = +-64, y: -0.45 * 400 = -180 .. +0.5 * 400 = 200 (right ankle)
    np.testing.assert_allclose(out["center"][0], [500, 400 + 10])
    np.testing.assert_allclose(out["scale"], 1.2 * 380 / 200)
    part = out["part"][0]
    gt = np.ones(17)
    gt[[0, 15]] = 0.0  # nose 0.25 and left ankle 0.05 are binarised to 0
    assert part[ORIGINAL_COCO_PERM, 2].tolist() == gt.tolist()
    np.testing.assert_allclose(part[ORIGINAL_COCO_PERM[1], :2], COCO17_TEMPLATE[1] * 400 + [500, 400])
    assert part[[37, 38, 39, 40, 41, 42, 43], 2].sum() == 0


def test_confidence_weights_keep_the_detector_confidence(tmp_path: Path) -> None:
    """`--confidence weights`: a counted joint weighs its confidence; the ones under 0.3 stay 0, the box is the same."""
    kps = coco17_person(500, 400, 400)
    kps[:, 2] = np.linspace(0.2, 0.95, 17)
    (tmp_path / "clip.json").write_text(json.dumps([alphapose_entry(f, kps) for f in range(3)]))
    assert _run(tmp_path) == 0
    binary = _load(tmp_path / "clip_0.npz")
    assert _run(tmp_path, "--confidence", "weights", "--overwrite") == 0
    weighted = _load(tmp_path / "clip_0.npz")
    conf = np.where(kps[:, 2] > 0.3, kps[:, 2], 0.0)
    np.testing.assert_allclose(weighted["part"][0, ORIGINAL_COCO_PERM, 2], conf)
    assert binary["part"][0, ORIGINAL_COCO_PERM, 2].tolist() == (conf > 0).astype(float).tolist()
    np.testing.assert_allclose(weighted["scale"], binary["scale"])


def test_filters_score_size_one_joint_and_nan(tmp_path: Path) -> None:
    one_joint = np.zeros((17, 3))
    one_joint[5] = [100, 100, 0.9]
    all_nan = np.full((17, 3), np.nan)
    some_nan = coco17_person(300, 300, 400)
    some_nan[9] = [np.nan, np.nan, 0.9]  # left wrist
    entries = [alphapose_entry(0, coco17_person(300, 300, 400)),
               alphapose_entry(1, coco17_person(300, 300, 400), score=2.0),  # AlphaPose score < 2.5
               alphapose_entry(2, coco17_person(300, 300, 150)),  # diagonal ~ 153 px < 250
               alphapose_entry(3, one_joint), alphapose_entry(4, all_nan), alphapose_entry(5, some_nan)]
    (tmp_path / "clip.json").write_text(json.dumps(entries))
    assert _run(tmp_path) == 0
    out = _load(tmp_path / "clip_0.npz")
    assert out["frame_ids"].tolist() == [0, 5]
    assert out["part"][1, 36].tolist() == [0, 0, 0]  # Left Wrist (36) was NaN
    assert np.isfinite(out["part"]).all()
    assert _run(tmp_path, "--min-score", "0", "--min-size", "100", "--overwrite") == 0  # thresholds are options
    assert _load(tmp_path / "clip_0.npz")["frame_ids"].tolist() == [0, 1, 2, 5]


def test_no_people_writes_nothing_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "empty.json").write_text("[]")
    op = tmp_path / "openpose"
    op.mkdir()
    for f in range(3):
        (op / f"walk_{f:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": []}))
    with caplog.at_level(logging.WARNING):
        assert _run(tmp_path) == 1
    assert list(tmp_path.glob("*.npz")) == []
    assert "empty: no person passed the filters" in caplog.text and "walk: no person passed" in caplog.text
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "no person found in empty, walk" in error and "--min-size" in error


def _crossing_entries(idx: bool | int) -> list[dict]:
    """Person A (400 px) walks right, B (500 px) walks left; at frame 10 their centres are 10 px apart."""
    entries = []
    for f in range(21):
        for k, (x, height) in enumerate([(100 + 20 * f, 400), (510 - 20 * f, 500)]):
            track = None if idx is False else (7 - 6 * k if idx is True else idx)
            entries.append(alphapose_entry(f, coco17_person(x, 400, height), idx=track))
    return entries


@pytest.mark.parametrize("idx", [False, 0, True], ids=["no-idx", "idx-all-zero", "tracked-idx"])
def test_two_people_crossing_keep_their_identity(tmp_path: Path, idx: bool | int) -> None:
    (tmp_path / "cross.json").write_text(json.dumps(_crossing_entries(idx)))
    assert _run(tmp_path) == 0
    tracks = [_load(tmp_path / f"cross_{k}.npz") for k in range(2)]
    assert not (tmp_path / "cross_2.npz").exists()
    for track, height in zip(tracks, (400, 500), strict=True):  # track 0 = leftmost at the first frame = A
        assert track["frame_ids"].tolist() == list(range(21))
        np.testing.assert_allclose(track["scale"], 1.2 * 0.95 * height / 200)
    assert np.all(np.diff(tracks[0]["center"][:, 0]) == 20) and np.all(np.diff(tracks[1]["center"][:, 0]) == -20)


def test_associate_needs_velocity_through_a_crossing() -> None:
    # at frame 11 the nearest box to A's last position (300) is B's (290), not A's (320)
    frames = np.repeat(np.arange(12), 2)
    xs = np.stack([100 + 20.0 * np.arange(12), 510 - 20.0 * np.arange(12)], axis=1).reshape(-1)
    centers = np.stack([xs, np.full_like(xs, 50.0)], axis=1)
    labels = associate(frames, centers, np.full(len(xs), 100.0), max_gap=3, max_dist=0.5, min_iou=0.3)
    assert labels.tolist() == [0, 1] * 12
    # squares of side 100 offset by 50: intersection 50 * 100, union 2 * 100^2 - 5000 -> IoU 1/3
    assert square_iou(np.zeros(2), 100.0, np.array([50.0, 0.0]), 100.0) == pytest.approx(1 / 3)
    gap = associate(np.array([0, 1, 6]), np.zeros((3, 2)), np.full(3, 100.0), max_gap=3)
    assert gap.tolist() == [0, 0, 1]  # unseen for 5 > 3 frames: a new track


def test_openpose_folder_and_dynaboa_format_sorted(tmp_path: Path) -> None:
    body25 = np.zeros((25, 3))
    coco = coco17_person(300, 300, 400)
    body25[[0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]] = coco  # BODY_25 order
    body25[1] = [300, 180, 0.9]  # neck
    op = tmp_path / "op"
    op.mkdir()
    for f in range(2):
        doc = {"people": [{"person_id": [-1], "pose_keypoints_2d": body25.reshape(-1).tolist()}]}
        (op / f"b_video_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    frames = [FrameKeypoints(f"{f + 1:06d}.png", [PersonKeypoints(coco, None)]) for f in range(3)]
    write_keypoints_json(tmp_path / "a_video.json", KeypointsFile("coco17", 25.0, frames))
    assert _run(tmp_path, "--format", "auto") == 0
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["a_video_0.npz", "b_video_0.npz"]
    b = _load(tmp_path / "b_video_0.npz")
    assert str(b["layout"]) == "body25" and b["imgname"].tolist() == ["images/b_video/000001.png",
                                                                       "images/b_video/000002.png"]
    assert b["part"][0, 1].tolist() == [300, 180, 1.0]  # OP Neck
    np.testing.assert_allclose(b["part"][0, ORIGINAL_COCO_PERM, :2], coco[:, :2])
    a = _load(tmp_path / "a_video_0.npz")
    assert a["frame_ids"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(a["part"][:, ORIGINAL_COCO_PERM, :2], b["part"][:1, ORIGINAL_COCO_PERM, :2].repeat(3, 0))
    # --format restricts the sources; a rerun with fewer tracks leaves no stale file
    (tmp_path / "a_video_5.npz").write_bytes(b"stale")
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.npz")}
    assert _run(tmp_path, "--format", "dynaboa") == 1  # refused: an earlier run's files are not touched
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.npz")} == before
    assert _run(tmp_path, "--format", "dynaboa", "--overwrite") == 0
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["a_video_0.npz", "b_video_0.npz"]
