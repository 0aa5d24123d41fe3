"""dynaboa.py end to end on the tiny synthetic world: metrics, resume, original flag spellings, bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import dynaboa
from config import DataPaths
from pipelines import session


def run(world, tmp_path, name, *extra):
    argv = ["--data-root", str(world), "--expdir", str(tmp_path), "--expname", name, "--source-free",
            "--workers", "0", "--device", "cpu", *extra]
    assert dynaboa.main(argv) == 0
    with open(tmp_path / name / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_writes_metrics_per_frame(world, tmp_path):
    rows = run(world, tmp_path, "a", "--max-frames", "4", "--chunk", "2")
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert all(float(r["mpjpe"]) > 0 and float(r["pa_mpjpe"]) <= float(r["mpjpe"]) for r in rows)
    summary = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert summary["frames"] == 4 and summary["updated_fraction"] == 1.0
    seqs = summary["per_sequence"]
    assert sum(s["frames"] for s in seqs.values()) == 4
    weighted = sum(s["frames"] * s["mpjpe"] for s in seqs.values()) / 4
    assert abs(weighted - summary["mpjpe"]) < 1e-6
    assert sorted(p.name for p in (tmp_path / "a" / "preds").iterdir()) == ["000000.npz", "000002.npz"]
    res = np.load(tmp_path / "a" / "results.npz")
    assert res["rotmat"].shape == (4, 24, 3, 3) and res["pose"].shape == (4, 72) and res["bbox"].shape == (4, 3)
    assert list(res["index"]) == [0, 1, 2, 3] and res["track"][0].startswith("3dpw_")
    # the full-image camera puts the body where the crop camera does: the root projects into the box
    f, (w, h) = res["focal_length"][0], res["img_size"][0]
    t = res["cam_t_full"][0]
    root_px = np.array([f * t[0] / t[2] + w / 2, f * t[1] / t[2] + h / 2])
    cx, cy, side = res["bbox"][0]
    assert np.all(np.abs(root_px - [cx, cy]) < side)


def test_resumed_run_equals_uninterrupted_run(world, tmp_path):
    whole = run(world, tmp_path, "whole", "--max-frames", "6", "--chunk", "3")
    run(world, tmp_path, "split", "--max-frames", "3", "--chunk", "3", "--keep-state")  # "interrupted" after frame 3
    resumed = run(world, tmp_path, "split", "--max-frames", "6", "--chunk", "3", "--resume")
    key = ("index", "track", "mpjpe", "pa_mpjpe", "pve")
    assert [tuple(r[k] for k in key) for r in resumed] == [tuple(r[k] for k in key) for r in whole]


def test_existing_run_is_not_overwritten(world, tmp_path, capsys):
    run(world, tmp_path, "b", "--max-frames", "1")
    before = (tmp_path / "b" / "frames.csv").read_bytes(), (tmp_path / "b" / "config.json").read_bytes()
    argv = ["--data-root", str(world), "--expdir", str(tmp_path), "--expname", "b", "--source-free", "--workers", "0",
            "--device", "cpu", "--max-frames", "1"]
    capsys.readouterr()
    assert dynaboa.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0] and "--overwrite" in err[0]
    assert ((tmp_path / "b" / "frames.csv").read_bytes(), (tmp_path / "b" / "config.json").read_bytes()) == before


def test_original_spellings_parse():
    run_cfg, adapt = dynaboa.parse_args(["--expdir", "exps", "--expname", "3dpw", "--dynamic_boa", "1",
                                         "--optim_steps", "7", "--cos_sim_threshold", "3.1e-4", "--retrieval", "1",
                                         "--model_file", "data/basemodel.pt", "--use_boa", "0", "--save_res", "1"])
    assert adapt.dynamic_boa and adapt.optim_steps == 7 and not adapt.use_boa and adapt.retrieval
    assert str(run_cfg.model_file) == "data/basemodel.pt"
    _, internet = dynaboa.parse_args(["--dataset", "internet"])
    assert internet.shape_prior_weight == 2e-4  # the original's internet setting
    _, free = dynaboa.parse_args(["--source-free"])
    assert not (free.retrieval or free.lower_level_mixtrain or free.upper_level_mixtrain)
    with pytest.raises(SystemExit):
        dynaboa.parse_args(["--batch_size", "4"])
    with pytest.raises(SystemExit):  # internet tracks carry the weights their preprocessing wrote
        dynaboa.parse_args(["--dataset", "internet", "--kp-confidence", "weights"])
    assert dynaboa.parse_args(["--kp-confidence", "weights"])[0].kp_confidence == "weights"


def test_missing_assets_stop_before_running(tmp_path, caplog):
    assert dynaboa.main(["--data-root", str(tmp_path), "--expdir", str(tmp_path / "e")]) == 1
    assert "basemodel.pt" in caplog.text and not (tmp_path / "e").exists()


def test_presets_and_speed_options(world):
    _, fast = dynaboa.parse_args(["--preset", "fast"])
    assert not fast.use_boa and fast.use_temporal_losses_lower and not fast.dynamic_boa
    _, explicit = dynaboa.parse_args(["--preset", "fast", "--use_boa", "1"])  # an explicit option beats the preset
    assert explicit.use_boa and not explicit.dynamic_boa
    run_cfg, adapt = dynaboa.parse_args(["--data-root", str(world), "--preset", "fast", "--bf16", "--channels-last",
                                         "--source-free", "--device", "cpu"])
    adaptor, img_res = session.adaptor_for_run(run_cfg, adapt, DataPaths.from_root(world), torch.device("cpu"))
    assert img_res == 64 and adaptor.runtime.bf16 and adaptor.runtime.channels_last
    assert set(adaptor.params) == {n for n, _ in adaptor.model.named_parameters()
                                   if n.startswith(("layer4.", "fc1.", "fc2.", "decpose.", "decshape.", "deccam."))}
    assert adaptor.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    run_cfg, adapt = dynaboa.parse_args(["--data-root", str(world), "--adapted", "head", "--source-free"])
    adaptor, _ = session.adaptor_for_run(run_cfg, adapt, DataPaths.from_root(world), torch.device("cpu"))
    assert all(n.startswith(("fc1.", "fc2.", "dec")) for n in adaptor.params) and adapt.use_boa
