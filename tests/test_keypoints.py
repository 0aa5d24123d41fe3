"""Keypoint layouts -> 49 joints, keypoint boxes, and the project's keypoint JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from utils.constants import JOINT_IDS
from utils.keypoints import (
    LAYOUT_SIZES,
    FrameKeypoints,
    KeypointsFile,
    PersonKeypoints,
    binarize_confidence,
    confidence_weights,
    keypoint_box,
    layout_to_j49_pairs,
    mapping_table_markdown,
    read_keypoints_json,
    to_j49,
    visible_diagonal,
    write_keypoints_json,
)

REPO = Path(__file__).resolve().parents[1]
ORIGINAL_COCO_PERM = [44, 45, 46, 47, 48, 34, 33, 35, 32, 36, 31, 28, 27, 29, 26, 30, 25]  # docs/method.md §8.5


def _indexed(layout: str, batch: int = 2) -> np.ndarray:
    """[batch, K, 3] keypoints whose x is the source joint index + 1 (so 0 means "no source")."""
    k = LAYOUT_SIZES[layout]
    kps = np.zeros((batch, k, 3))
    kps[:, :, 0] = np.arange(1, k + 1)
    kps[:, :, 1] = 7.0
    kps[:, :, 2] = 0.37
    return kps


def _sources(layout: str) -> np.ndarray:
    """[49] source joint index filling each slot, -1 where none."""
    return to_j49(_indexed(layout), layout)[0, :, 0].astype(int) - 1


def test_coco17_gt_block_is_the_originals_map() -> None:
    src = _sources("coco17")
    assert [int(np.flatnonzero(src[25:] == j)[0]) + 25 for j in range(17)] == ORIGINAL_COCO_PERM
    assert (src[[1, 8, 19, 20, 21, 22, 23, 24, 37, 38, 39, 40, 41, 42, 43]] == -1).all()  # no neck, toes, head top
    assert src[JOINT_IDS["OP LShoulder"]] == 5 and src[JOINT_IDS["OP RAnkle"]] == 16


def test_coco18_fills_body25_slots_like_op_j2d_and_the_gt_block() -> None:
    src = _sources("coco18")
    assert src[:25].tolist() == list(range(8)) + [-1] + list(range(8, 18)) + [-1] * 6
    assert src[JOINT_IDS["Right Hip"]] == 8 and src[JOINT_IDS["Left Ear"]] == 17 and src[JOINT_IDS["Nose"]] == 0


def test_body25_slots_direct_and_gt_correspondences() -> None:
    src = _sources("body25")
    assert src[:25].tolist() == list(range(25))
    expected_gt = {"Right Ankle": 11, "Right Knee": 10, "Right Hip": 9, "Left Hip": 12, "Left Knee": 13,
                   "Left Ankle": 14, "Right Wrist": 4, "Right Elbow": 3, "Right Shoulder": 2, "Left Shoulder": 5,
                   "Left Elbow": 6, "Left Wrist": 7, "Nose": 0, "Left Eye": 16, "Right Eye": 15, "Left Ear": 18,
                   "Right Ear": 17}
    assert {name: int(src[JOINT_IDS[name]]) for name in expected_gt} == expected_gt
    assert (src[[37, 38, 39, 40, 41, 42, 43]] == -1).all()  # neck/mid-hip have no GT-block slot


def test_halpe26_extra_joints() -> None:
    src = _sources("halpe26")
    assert src[25:].tolist() == _sources("coco17")[25:].tolist()[:13] + [17] + _sources("coco17")[39:].tolist()
    assert src[JOINT_IDS["OP Neck"]] == 18 and src[JOINT_IDS["OP MidHip"]] == 19
    assert src[19:25].tolist() == [20, 22, 24, 21, 23, 25]  # L big, L small, L heel, R big, R small, R heel


def test_mediapipe33_feet_and_dropped_landmarks() -> None:
    src = _sources("mediapipe33")
    assert src[19:25].tolist() == [31, -1, 29, 32, -1, 30]  # foot index -> big toe, heels
    assert src[JOINT_IDS["Left Eye"]] == 2 and src[JOINT_IDS["Right Ear"]] == 8 and src[JOINT_IDS["Left Hip"]] == 23
    used = {s for s, _ in layout_to_j49_pairs("mediapipe33")}
    assert used.isdisjoint({1, 3, 4, 6, 9, 10, 17, 18, 19, 20, 21, 22})  # inner/outer eyes, mouth, fingers


def test_confidence_kept_nan_missing_and_errors() -> None:
    kps = _indexed("coco17")
    kps[1, 0, 0] = np.nan  # nose of person 1
    out = to_j49(kps, "coco17")
    assert out.shape == (2, 49, 3)
    assert out[0, 44].tolist() == [1.0, 7.0, 0.37]
    assert out[1, 44].tolist() == [0.0, 0.0, 0.0] and out[1, 0].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="has 17 joints, got 18"):
        to_j49(np.zeros((1, 18, 3)), "coco17")
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        to_j49(np.zeros((1, 17, 3)), "coco19")


def test_keypoint_box_uses_confident_joints_only() -> None:
    kps = np.array([[[10, 20, 0.9], [30, 60, 0.8], [500, 500, 0.2], [np.nan, 5, 1.0]],
                    [[10, 20, 0.9], [0, 0, 0.0], [7, 7, 0.3], [1, 1, 0.1]]])
    center, scale, valid = keypoint_box(kps, scale_factor=1.2)
    # person 0: box x 10..30, y 20..60 -> centre (20, 40), side 40 -> scale 1.2 * 40 / 200 = 0.24
    np.testing.assert_allclose(center[0], [20, 40])
    assert scale[0] == pytest.approx(0.24) and valid.tolist() == [True, False]  # person 1: one confident joint
    assert center[1].tolist() == [0, 0] and scale[1] == 0
    # diagonal of (10, 20)-(30, 60) = sqrt(20^2 + 40^2)
    np.testing.assert_allclose(visible_diagonal(kps), [np.sqrt(2000.0), 0.0])


def test_binarize_confidence() -> None:
    kps = np.array([[[1, 2, 0.31], [3, 4, 0.3], [5, 6, 0.0]]])
    assert binarize_confidence(kps)[0, :, 2].tolist() == [1.0, 0.0, 0.0]
    assert kps[0, 0, 2] == 0.31  # a copy


def test_confidence_weights_keep_the_confidence_above_the_threshold() -> None:
    kps = np.array([[[1, 2, 0.9], [3, 4, 0.45], [5, 6, 0.2]]])
    assert confidence_weights(kps, "weights")[0, :, 2].tolist() == [0.9, 0.45, 0.0]
    assert confidence_weights(kps, "binary")[0, :, 2].tolist() == [1.0, 1.0, 0.0]
    assert np.array_equal(confidence_weights(kps, "weights")[..., :2], kps[..., :2])
    with pytest.raises(ValueError, match="confidence mode"):
        confidence_weights(kps, "soft")


def test_mapping_doc_is_current() -> None:
    table = mapping_table_markdown()
    assert len(table.strip().splitlines()) == 2 + 49
    assert "| 44 | Nose | nose (0) | nose (0) | nose (0) | nose (0) | nose (0) |" in table
    assert table in (REPO / "docs" / "keypoint_formats.md").read_text(), "regenerate docs/keypoint_formats.md"


def test_keypoints_json_round_trip_and_validation(tmp_path: Path) -> None:
    kps = np.arange(17 * 3, dtype=float).reshape(17, 3) / 10
    kps[4] = np.nan
    data = KeypointsFile("coco17", 29.97, [FrameKeypoints("000001.png", [PersonKeypoints(kps, 3)]),
                                           FrameKeypoints("000002.png", [])])
    path = tmp_path / "clip.json"
    write_keypoints_json(path, data)
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"], doc["layout"], doc["fps"]) == ("dynaboa-keypoints", 1, "coco17", 29.97)
    back = read_keypoints_json(path)
    assert [f.image for f in back.frames] == ["000001.png", "000002.png"] and back.frames[1].people == []
    person = back.frames[0].people[0]
    assert person.track_id == 3 and person.keypoints[4].tolist() == [0, 0, 0]
    np.testing.assert_allclose(person.keypoints[:4], kps[:4])
    doc["frames"][0]["people"][0]["keypoints"][0] = [None, None, None]  # null -> missing
    path.write_text(json.dumps(doc))
    assert read_keypoints_json(path).frames[0].people[0].keypoints[0].tolist() == [0, 0, 0]
    path.write_text(json.dumps({**doc, "format": "other"}))
    with pytest.raises(ValueError, match="not a dynaboa-keypoints file"):
        read_keypoints_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_keypoints_json(tmp_path / "missing.json")
