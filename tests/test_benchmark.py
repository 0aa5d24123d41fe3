"""datasets.synthetic.benchmark on the tiny world: the `make demo` path (assets, retrieval, runs, table, overlay)."""
from __future__ import annotations

import os
import shutil
import time

import cv2
import pytest
import torch

from datasets.synthetic import benchmark
from models.hmr import HMR, load_mean_params
from utils.checkpoint import save_training_checkpoint


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


def test_demo_pipeline_writes_table_results_and_overlay(tiny_world, assets, tmp_path, monkeypatch):
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    monkeypatch.setattr(benchmark, "ASSETS", assets)
    setting = benchmark.Setting("tiny", str(root), benchmark.every_run(("base model", "DynaBOA"), ("GT 2D",)), 6)
    table = benchmark.run_benchmark(setting, root, tmp_path / "out", jobs=1, k=2, max_samples=0)
    lines = table.splitlines()
    assert lines[2].startswith("| base model | GT 2D |") and lines[3].startswith("| DynaBOA | GT 2D |")
    assert "%" in lines[3]  # the change against the base model
    assert (root / "retrieval_res" / "cluster_res_random_sample_center_10_10_potocol2.pt").is_file()
    video = cv2.VideoCapture(str(tmp_path / "out" / "DynaBOA_smpl_j2d" / "overlay.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    # cached: a second call reruns nothing (no run file is rewritten) and gives the same table
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("frames.csv")}
    assert len(written) == 2
    assert benchmark.run_benchmark(setting, root, tmp_path / "out", jobs=1, k=2, max_samples=0) == table
    assert {p: p.stat().st_mtime_ns for p in written} == written
    # a newer base model makes the retrieval database and the cached runs stale: both are rebuilt
    cluster = root / "retrieval_res" / "cluster_res_random_sample_center_10_10_potocol2.pt"
    built = cluster.stat().st_mtime_ns
    now = time.time()
    assert now > max(written.values()) / 1e9
    os.utime(assets / "basemodel.pt", (now, now))
    benchmark.run_benchmark(setting, root, tmp_path / "out", jobs=1, k=2, max_samples=0)
    assert cluster.stat().st_mtime_ns > built
    assert all(p.stat().st_mtime_ns > t for p, t in written.items())


def test_missing_assets_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "ASSETS", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="basemodel.pt"):
        benchmark.install_assets(tmp_path)
