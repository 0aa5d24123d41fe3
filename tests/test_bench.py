"""bench_adapt.py and pipelines/speed_bench.py: retrieval decodes no image, the report's figures, the memory stream
test (tiny settings)."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

import bench_adapt
from config import AdaptConfig, DataPaths
from datasets.retrieval import ExemplarBank
from models.adaptor import Adaptor, Runtime
from models.hmr import HMR
from models.smpl import build_smpl
from pipelines import speed_bench
from utils import imutils

RES = 32  # the smallest input the backbone accepts


def test_retrieval_decodes_no_image(body_root, tmp_path, monkeypatch):
    """Adapting with the exemplar bank reads its memory-mapped crops: no image file is opened or decoded."""
    torch.manual_seed(0)
    model = HMR("resnet18")
    folder = speed_bench.write_exemplar_cache(tmp_path / "retrieval_res", RES, model.feature_dim,
                                              np.random.default_rng(0))
    bank = ExemplarBank(folder, RES)
    assert isinstance(bank.images, np.memmap)
    keys = []
    retrieve = bank.retrieve
    monkeypatch.setattr(bank, "retrieve", lambda feature, n: keys.append(n) or retrieve(feature, n))

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded during adaptation")

    for module, name in ((cv2, "imread"), (cv2, "imdecode"), (imutils, "read_image_rgb")):
        monkeypatch.setattr(module, name, no_decoding)
    smpl = build_smpl(DataPaths.from_root(body_root), "neutral")
    adaptor = Adaptor(model, smpl, AdaptConfig(cos_sim_threshold=0.0, optim_steps=1), exemplars=bank)
    for frame in speed_bench.synthetic_frames(2, RES, seed=0, device=torch.device("cpu")):
        assert adaptor.step(frame).updated
    assert keys == [1] * 6  # lower, upper and one dynamic step per frame, one exemplar each
    with pytest.raises(AssertionError, match="decoded"):  # the patch is in force
        imutils.read_image_rgb(tmp_path / "x.jpg")


def test_report_gives_every_figure_in_plain_step_units(capsys):
    assert bench_adapt.main(["--backbone", "resnet18", "--img-res", str(RES), "--frames", "1",
                             "--forced-steps", "1"]) == 0
    out = capsys.readouterr().out
    plain, plain_default = map(float, re.search(r"Adam\): ([\d.]+) s with fused Adam, ([\d.]+) s", out).groups())
    rows = {m[1].strip(): tuple(map(float, m.groups()[1:]))
            for m in re.finditer(r"^(?:paper|fast|finetune|)\s+(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    for label in ("data loading", "bilevel step, no dynamic step", "each dynamic step", "single-level step",
                  "floor of the bilevel step", "floor of the dynamic step"):
        seconds, units, units_default = next(v for k, v in rows.items() if k.startswith(label))
        assert seconds > 0  # the columns agree up to their rounding (4, 3 and 2 decimals)
        assert abs(units - seconds / plain) < 0.01 + 0.02 * units
        assert abs(units_default - seconds / plain_default) < 0.01 + 0.02 * units_default
    assert "passes: {'forward': 7, 'backward': 3} with 1 dynamic steps" in out  # 4 + 3k, 2 + k
    # the floors time the same passes as the adaptor: 4 forwards and 2 backwards, then 3 and 1 per dynamic step
    assert "floor of the bilevel step = the network passes B=1 fwd, B=2 fwd+bwd, B=3 fwd+bwd, B=1 fwd" in out
    assert "floor of the dynamic step = the network passes B=1 fwd, B=3 fwd+bwd, B=1 fwd" in out
    assert "passes: {'forward': 3, 'backward': 1}" in out and "fast / paper per frame" in out
    assert "finetune / paper per frame" in out
    assert re.search(r"peak resident memory: \d+ MB", out)


def test_network_passes_run_forward_and_backward():
    model = HMR("resnet10")
    run = speed_bench.network_passes(model, RES, Runtime(), [(1, False), (3, True)])
    net = next(c.cell_contents for c in run.__closure__ if isinstance(c.cell_contents, HMR))  # the timed copy
    assert net is not model
    batches = []
    net.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    run()
    assert batches == [1, 3]
    assert all(p.grad is not None for p in net.parameters())  # the B=3 pass went backward to every parameter
    assert all(p.grad is None for p in model.parameters())  # the model itself is untouched


def test_stream_memory_runs_the_program_loop():
    cfg = speed_bench.BenchConfig(stream_frames=3, stream_img_res=RES)
    mem = speed_bench.stream_memory(cfg)
    assert mem["mark"] == 2 and 0 < mem["at_mark"] <= mem["at_end"] and mem["seconds"] > 0


def test_synthetic_stream_changes_person_and_sequence():
    stream = speed_bench.SyntheticStream(2001, RES, marks=[])
    assert [stream[i].track for i in (0, 249, 250, 999, 1000, 2000)] == [
        ("seq_0", 0), ("seq_0", 0), ("seq_0", 1), ("seq_0", 3), ("seq_1", 0), ("seq_2", 0)]
    assert torch.equal(stream[7].image, stream[57].image) and stream[7].image.shape == (3, RES, RES)
