"""pipelines.passes: `dynaboa.py --passes N` adapts over the clip N times and writes one set of results."""
from __future__ import annotations

import csv

import numpy as np
import pytest

import dynaboa
from models.adaptor import Adaptor


def _argv(world, tmp_path, name, *extra):
    return ["--data-root", str(world), "--expdir", str(tmp_path), "--expname", name, "--source-free", "--workers", "0",
            "--device", "cpu", "--max-frames", "3", *extra]


def test_two_passes_step_every_frame_twice_and_write_one_set_of_results(world, tmp_path, monkeypatch):
    steps: list[tuple[int, object]] = []
    original = Adaptor.step

    def counting(self, frame, adapt=True):
        steps.append((len(self.history), frame.track_id))
        return original(self, frame, adapt)

    monkeypatch.setattr(Adaptor, "step", counting)
    assert dynaboa.main(_argv(world, tmp_path, "one")) == 0
    assert len(steps) == 3
    steps.clear()
    assert dynaboa.main(_argv(world, tmp_path, "two", "--passes", "2")) == 0
    assert len(steps) == 6
    assert steps[3][0] == 0  # the last pass starts with an empty motion history
    with open(tmp_path / "two" / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == [0, 1, 2]
    res = np.load(tmp_path / "two" / "results.npz")
    assert list(res["index"]) == [0, 1, 2]
    one = np.load(tmp_path / "one" / "results.npz")
    assert not np.allclose(one["pose"], res["pose"])  # the second pass starts from the first pass's weights


def test_passes_are_refused_with_resume(world, tmp_path):
    with pytest.raises(SystemExit):
        dynaboa.parse_args(_argv(world, tmp_path, "r", "--passes", "2", "--resume"))
    with pytest.raises(SystemExit):
        dynaboa.parse_args(_argv(world, tmp_path, "r", "--passes", "0"))
