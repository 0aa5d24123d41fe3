"""dynaboa.py with --reset-per-sequence: serial and parallel (--jobs 2) runs give identical files; resume per sequence."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import dynaboa
from datasets.base import sequence_ranges

FRAMES = 13  # the tiny world's sequences have 10 frames: two sequences, the second one cut short


@pytest.fixture(scope="module", autouse=True)
def keep_threads():
    """`--threads 1` sets torch's thread count for the whole process; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(world, out, name, *extra):
    """Run dynaboa.py; returns the rows (without timings), metrics and results of the run directory."""
    argv = ["--data-root", str(world), "--expdir", str(out), "--expname", name, "--source-free", "--workers", "0",
            "--device", "cpu", "--threads", "1", "--max-frames", str(FRAMES), "--chunk", "4", *extra]
    assert dynaboa.main(argv) == 0
    with open(out / name / "frames.csv", newline="") as fh:
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]
    metrics = json.loads((out / name / "metrics.json").read_text())
    with np.load(out / name / "results.npz") as npz:
        return rows, metrics, {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def serial(world, tmp_path_factory):
    return run(world, tmp_path_factory.mktemp("serial"), "serial", "--reset-per-sequence")


def drop_seconds(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in ("seconds", "per_sequence")}
    out["per_sequence"] = {name: {k: v for k, v in seq.items() if k != "seconds"}
                           for name, seq in summary["per_sequence"].items()}
    return out


def test_parallel_run_equals_serial_run_and_resumes(world, serial, tmp_path):
    rows, metrics, results = serial
    sequences = sorted({r["track"].rsplit(":", 1)[0] for r in rows})
    assert len(rows) == FRAMES and len(sequences) == 2
    par_rows, par_metrics, par_results = run(world, tmp_path, "par", "--reset-per-sequence", "--jobs", "2")
    assert par_rows == rows
    assert drop_seconds(par_metrics) == drop_seconds(metrics)
    assert par_results.keys() == results.keys()
    assert all(np.array_equal(par_results[k], results[k]) for k in results)
    parts = tmp_path / "par" / "sequences"
    assert sorted(p.name for p in parts.iterdir()) == sequences
    # resume after losing the second sequence: only it is adapted again, and the merged files are the same
    done = (parts / sequences[0] / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(parts / sequences[1])
    res_rows, _, res_results = run(world, tmp_path, "par", "--reset-per-sequence", "--jobs", "2", "--resume")
    assert res_rows == rows and all(np.array_equal(res_results[k], results[k]) for k in results)
    assert (parts / sequences[0] / "metrics.json").stat().st_mtime_ns == done
    with pytest.raises(AssertionError):  # refused: exit status 1, nothing changed
        run(world, tmp_path, "par", "--reset-per-sequence", "--jobs", "2")
    assert (parts / sequences[0] / "metrics.json").stat().st_mtime_ns == done


def test_reset_per_sequence_differs_from_one_stream(world, serial, tmp_path):
    rows = serial[0]
    stream = run(world, tmp_path, "stream")[0]
    boundary = [r["track"].split(":")[0] for r in rows].index(rows[-1]["track"].split(":")[0])
    # identical until the second sequence starts, where only the stream carries the adapted weights over
    assert stream[:boundary] == rows[:boundary]
    assert stream[boundary]["mpjpe"] != rows[boundary]["mpjpe"]


def test_jobs_need_reset_per_sequence():
    with pytest.raises(SystemExit):
        dynaboa.parse_args(["--jobs", "2"])
    run_cfg, _ = dynaboa.parse_args(["--jobs", "2", "--reset-per-sequence"])
    assert run_cfg.jobs == 2


def test_sequence_ranges():
    tracks = [("a", 0)] * 3 + [("a", 1)] * 2 + [("b", 0)] * 2 + [("c", 0)]
    assert sequence_ranges(tracks, 8) == [("a", 0, 5), ("b", 5, 7), ("c", 7, 8)]
    assert sequence_ranges(tracks, 6) == [("a", 0, 5), ("b", 5, 6)]
    with pytest.raises(ValueError, match="more than one stretch"):
        sequence_ranges([("a", 0), ("b", 0), ("a", 1)], 3)
