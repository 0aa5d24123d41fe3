"""Budgeted adaptation (pipelines/budget.py): K = 1 is today's run bit for bit, the K rule and the time budget pick
the adapted frames, and a budgeted run resumes exactly."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import dynaboa
from pipelines.budget import Budget


def run(world, tmp_path, name, *extra):
    argv = ["--data-root", str(world), "--expdir", str(tmp_path), "--expname", name, "--source-free",
            "--workers", "0", "--device", "cpu", "--preset", "finetune", *extra]
    assert dynaboa.main(argv) == 0
    with open(tmp_path / name / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with np.load(tmp_path / name / "results.npz") as npz:
        return rows, {key: npz[key] for key in npz.files}


def same_arrays(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


METRICS = ("index", "updated", "mpjpe", "pa_mpjpe", "pve")


def test_every_frame_equals_the_unbudgeted_run(world, tmp_path):
    rows, today = run(world, tmp_path, "today", "--max-frames", "4")
    rows1, every1 = run(world, tmp_path, "k1", "--max-frames", "4", "--adapt_every", "1")  # the original-style spelling
    assert same_arrays(today, every1)
    assert [tuple(r[k] for k in METRICS) for r in rows1] == [tuple(r[k] for k in METRICS) for r in rows]
    assert all(r["updated"] == "True" for r in rows)


def test_every_kth_frame_is_adapted_and_the_others_predicted(world, tmp_path):
    rows, k3 = run(world, tmp_path, "k3", "--max-frames", "7", "--adapt-every", "3")
    assert [r["updated"] == "True" for r in rows] == [i % 3 == 0 for i in range(7)]
    _, base = run(world, tmp_path, "base", "--max-frames", "7", "--no-adapt")
    _, today = run(world, tmp_path, "today", "--max-frames", "7")
    # frames 1 and 2 are predicted with the weights of frame 0's update: not the base model's, and not a run that
    # adapts on them; frame 0 is adapted on as in the unbudgeted run
    assert np.array_equal(k3["pose"][0], today["pose"][0])
    assert not np.allclose(k3["pose"][1], base["pose"][1]) and not np.allclose(k3["pose"][1], today["pose"][1])


def test_budgeted_run_resumes_exactly(world, tmp_path):
    _, whole = run(world, tmp_path, "whole", "--max-frames", "7", "--chunk", "2", "--adapt-every", "3")
    run(world, tmp_path, "split", "--max-frames", "4", "--chunk", "2", "--adapt-every", "3", "--keep-state")
    rows, resumed = run(world, tmp_path, "split", "--max-frames", "7", "--chunk", "2", "--adapt-every", "3",
                        "--resume")
    assert same_arrays(whole, resumed)
    assert [r["updated"] == "True" for r in rows] == [i % 3 == 0 for i in range(7)]


def test_time_budget_is_a_token_bucket_and_its_credit_resumes():
    budget = Budget(every=1, seconds=0.1)
    taken = []
    for _ in range(40):  # an update costs 0.35 s, a prediction 0.05 s
        adapt = budget.wants(len(taken))
        taken.append(adapt)
        budget.spend(0.35 if adapt else 0.05)
    assert taken[0] and 0.15 < sum(taken) / len(taken) < 0.25  # (0.1 - 0.05) / (0.35 - 0.05) = 1/6 of the frames
    assert budget.credit <= 0.1
    again = Budget.from_config(type("Cfg", (), {"adapt_every": 1, "frame_budget": 0.1})(),
                               {"budget": budget.state_dict()})
    assert again.credit == budget.credit and again.wants(40) == budget.wants(40)
    both = Budget(every=2, seconds=1.0)  # the K rule first, then the budget
    assert not both.wants(1) and both.wants(2)
    assert not Budget().active and Budget(every=4).active
    with pytest.raises(ValueError):
        Budget(every=0)


def test_options_parse():
    _, adapt = dynaboa.parse_args(["--adapt-every", "4", "--frame-budget", "0.2"])
    assert adapt.adapt_every == 4 and adapt.frame_budget == 0.2
    with pytest.raises(SystemExit):
        dynaboa.parse_args(["--adapt-every", "0"])


def test_budget_rates_and_the_live_preset(world):
    from config import DataPaths
    from pipelines.session import adaptor_for_run

    run_cfg, adapt = dynaboa.parse_args(["--data-root", str(world), "--preset", "live", "--lr-scale", "3",
                                         "--source-free"])
    assert adapt.adapt_every == 4 and adapt.budget_rates and not adapt.use_boa
    adaptor, _ = adaptor_for_run(run_cfg, adapt, DataPaths.from_root(world), torch.device("cpu"))
    assert adaptor.lr == pytest.approx(adapt.lr * 3 * 4)  # the rates x K
    _, plain = dynaboa.parse_args(["--preset", "live", "--no-budget-rates"])
    assert not plain.budget_rates and plain.adapt_every == 4
