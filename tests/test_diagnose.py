"""pipelines.diagnose on the tiny world: per-term gradient norms, probe and update moves, feature changes
and exemplar pose distances are recorded and summarised."""
from __future__ import annotations

import csv
import shutil

import torch

from datasets.checkpoint import save_training_checkpoint
from models.hmr import HMR, load_mean_params
from pipelines import benchmark, diagnose


def test_diagnose_records_terms_moves_and_exemplars(tiny_world, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    torch.manual_seed(0)
    model = HMR("resnet10", load_mean_params(root / "smpl_mean_params.npz"))
    save_training_checkpoint(root / "basemodel.pt", model, None, 0, 0, img_res=64)
    benchmark.ensure_retrieval(root, 2, 0)
    text = diagnose.diagnose(root, "DynaBOA", "GT 2D", 7, {}, tmp_path / "out")
    with open(tmp_path / "out" / "terms.csv", newline="") as fh:
        terms = list(csv.DictReader(fh))
    with open(tmp_path / "out" / "frames.csv", newline="") as fh:
        frames = list(csv.DictReader(fh))
    assert len(frames) == 7
    seen = {(r["level"], r["term"]) for r in terms}
    assert {("lower", "kp2d"), ("lower", "exemplar_3d"), ("upper", "teacher"), ("upper", "motion")} <= seen
    assert all(float(r["grad_norm"]) >= 0 for r in terms)
    assert any(float(r["grad_norm"]) > 0 for r in terms if r["term"] == "kp2d")
    assert all(float(f["probe_move"]) > 0 and float(f["update_move"]) > 0 for f in frames)
    assert all(0 <= float(f["exemplar_pose_deg"]) <= 180 for f in frames)
    assert "share of the summed norms" in text and "above the threshold" in text


def test_pose_distance_is_zero_for_equal_poses_and_the_angle_otherwise():
    pose = torch.zeros(1, 72)
    other = pose.clone()
    other[0, 3:6] = torch.tensor([0.0, 0.0, torch.pi / 2])  # joint 1 turned by 90 degrees, the other 22 equal
    assert float(diagnose.pose_distance_deg(pose, pose)) == 0.0
    assert abs(float(diagnose.pose_distance_deg(other, pose)) - 90 / 23) < 1e-3
