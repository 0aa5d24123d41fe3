"""pipelines.benchmark on the tiny world: the `make demo` path (assets, retrieval, runs, table, overlay)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import time

import cv2
import pytest
import torch

from datasets.checkpoint import save_training_checkpoint
from models.hmr import HMR, load_mean_params
from pipelines import benchmark, report


@pytest.fixture(scope="module")
def assets(tiny_world, tmp_path_factory):
    """Committed-asset stand-ins: a random ResNet-10 at 64 px and the tiny world's priors."""
    folder = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    model = HMR("resnet10", load_mean_params(tiny_world / "smpl_mean_params.npz"))
    save_training_checkpoint(folder / "basemodel.pt", model, None, 0, 0, img_res=64)
    for name in ("smpl_mean_params.npz", "gmm_08.pkl"):
        shutil.copy2(tiny_world / name, folder / name)
    return folder


def _plan(root, **extra):
    runs = (("base model", "GT 2D"), ("DynaBOA", "GT 2D"))
    return benchmark.Plan("tiny", str(root), runs, max_frames=6, window=4, overlay=True, **extra)


def test_demo_pipeline_writes_table_results_and_overlay(tiny_world, assets, tmp_path, monkeypatch):
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    monkeypatch.setattr(benchmark, "ASSETS", assets)
    plan = _plan(root)
    table = benchmark.run_benchmark(plan, root, tmp_path / "out", jobs=1, k=2, max_samples=0)
    lines = table.splitlines()
    assert lines[2].startswith("| base model | GT 2D |") and lines[3].startswith("| DynaBOA | GT 2D |")
    assert "%" in lines[3]  # the change against the base model
    assert (root / "retrieval_res" / "cluster_res_random_sample_center_10_10_potocol2.pt").is_file()
    video = cv2.VideoCapture(str(tmp_path / "out" / "DynaBOA_smpl_j2d" / "overlay.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    # cached: a second call reruns nothing (no run file is rewritten) and gives the same table
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("frames.csv")}
    assert len(written) == 2
    assert benchmark.run_benchmark(plan, root, tmp_path / "out", jobs=1, k=2, max_samples=0) == table
    assert {p: p.stat().st_mtime_ns for p in written} == written
    # a newer base model makes the retrieval database and the cached runs stale: both are rebuilt
    cluster = root / "retrieval_res" / "cluster_res_random_sample_center_10_10_potocol2.pt"
    built = cluster.stat().st_mtime_ns
    now = time.time()
    assert now > max(written.values()) / 1e9
    os.utime(assets / "basemodel.pt", (now, now))
    benchmark.run_benchmark(plan, root, tmp_path / "out", jobs=1, k=2, max_samples=0)
    assert cluster.stat().st_mtime_ns > built
    assert all(p.stat().st_mtime_ns > t for p, t in written.items())


def test_parallel_runs_equal_serial_and_write_windows_and_curves(tiny_world, assets, tmp_path, monkeypatch):
    """Methods in two processes give the serial run's metrics; the report has the window and sequence tables and
    the curves PNG is written (to the run folder and to the plan's figure path)."""
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    monkeypatch.setattr(benchmark, "ASSETS", assets)
    monkeypatch.setattr(benchmark, "REPO_ROOT", tmp_path)
    plan = _plan(root, figure="docs/curves.png")
    serial = benchmark.run_benchmark(plan, root, tmp_path / "serial", jobs=1, k=2, max_samples=0)
    parallel = benchmark.run_benchmark(plan, root, tmp_path / "parallel", jobs=2, k=2, max_samples=0)
    for name in ("base_model_smpl_j2d", "DynaBOA_smpl_j2d"):
        a, b = (report.read_rows(tmp_path / d / name) for d in ("serial", "parallel"))
        assert [r["pa_mpjpe"] for r in a] == [r["pa_mpjpe"] for r in b] and len(a) == 6
    strip = [line.split("|")[3:6] for line in serial.splitlines()[2:4]]
    assert strip == [line.split("|")[3:6] for line in parallel.splitlines()[2:4]]
    assert "per window of 4 frames" in parallel and "per sequence" in parallel
    for png in (tmp_path / "parallel" / "curves.png", tmp_path / "docs" / "curves.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # report only: nothing runs; a run of the plan that has not finished is named as not run
    more = dataclasses.replace(plan, runs=plan.runs + (("online fine-tuning", "GT 2D"),))
    text = benchmark.run_benchmark(more, root, tmp_path / "parallel", report_only=True)
    assert "Not run yet: online fine-tuning (GT 2D)" in text
    assert not (tmp_path / "parallel" / "online_fine-tuning_smpl_j2d").exists()


def test_window_means_and_worse_windows_count():
    """Hand-made rows: windows of 2 frames, the last shorter; a run worse than the base in one of 3 windows."""
    def rows(values):
        return [{"pa_mpjpe": str(v), "mpjpe": str(v), "pve": str(v), "updated": "True", "dynamic_steps": "1",
                 "seconds": "0.1"} for v in values]

    base, adapted = rows([10, 20, 30, 40, 50]), rows([5, 5, 40, 40, 10])
    assert report.window_means(base, "pa_mpjpe", 2).tolist() == [15.0, 35.0, 50.0]
    results = {("base model", "GT 2D"): {"pa_mpjpe": 30, "mpjpe": 30, "pve": 30, "seconds": 0.1},
               ("x", "GT 2D"): {"pa_mpjpe": 20, "mpjpe": 20, "pve": 20, "seconds": 0.1}}
    table = report.summary_table(results, {("base model", "GT 2D"): base, ("x", "GT 2D"): adapted}, 2)
    row = table.splitlines()[3]
    assert "| 2.00 |" in row and "-33.3 %" in row and "1 / 1 of 3" in row


def test_plans_name_known_methods_and_protocols(tmp_path):
    for name in ("full", "quick", "demo", "validation"):
        plan = benchmark.load_plan(name)
        assert plan.runs and all(m in benchmark.METHODS for m, _ in plan.runs)
    full = benchmark.load_plan("full")
    assert {p for _, p in full.runs} == {"GT 2D", "estimated 2D", "MediaPipe 2D"} and full.max_frames == 0
    assert set(full.first) <= {m for m, _ in full.runs}
    order = benchmark.start_order(full, full.runs)
    assert order[:len(full.first)] == [(m, "GT 2D") for m in full.first]
    assert order[len(full.first)][1] == "estimated 2D" and sorted(order) == sorted(full.runs)
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: tiny\nroot: x\nruns:\n  GT 2D: [no such method]\n")
    with pytest.raises(ValueError, match="no such method"):
        benchmark.load_plan(str(bad))


def test_missing_assets_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "ASSETS", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="basemodel.pt"):
        benchmark.install_assets(tmp_path)
