"""Asynchronous live adaptation (pipelines/async_adapt.py): prediction never blocks on a slow adaptation step, a
reader never sees half-published weights, reset and errors reach the caller, and the live program reports its
counters."""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest
import torch

import dynaboa_webcam as webcam
from config import AdaptConfig, DataPaths
from models.adaptor import Frame
from pipelines import live
from pipelines.async_adapt import AsyncAdapter, LivePredictor, Staleness, WeightBoard
from pipelines.session import build_adaptor
from tests.test_internet_pipeline import REAL, read_video, write_photo_clip
from tests.test_webcam import data_root  # noqa: F401 (fixture)


def test_a_reader_never_sees_half_published_weights() -> None:
    net = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(8)])
    source = dict(net.named_parameters())  # written in place by the "adaptation", as the adaptor's weights are
    board = WeightBoard()
    predictor = LivePredictor(net, None, board)
    stop, seen, torn = threading.Event(), set(), []

    def publish() -> None:
        version = 0
        while not stop.is_set():
            with torch.no_grad():
                for tensor in source.values():
                    tensor.fill_(version)
            snapshot = board.publish(source, frame=version)
            assert snapshot.version == version
            version += 1

    def read() -> None:
        while not stop.is_set():
            predictor.refresh()
            if predictor.version < 0:  # nothing published yet
                continue
            values = {float(p.min()) for p in predictor.model.parameters()} | \
                     {float(p.max()) for p in predictor.model.parameters()}
            if values != {float(predictor.version)} or predictor.frame != predictor.version:
                torn.append((predictor.version, values))
            seen.add(predictor.version)

    threads = [threading.Thread(target=publish), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert not torn and len(seen) > 5


def slow_world_adaptor(world, monkeypatch, seconds: float):
    torch.manual_seed(0)
    adaptor, img_res = build_adaptor(AdaptConfig(use_boa=False, retrieval=False), DataPaths.from_root(world),
                                     torch.device("cpu"))
    step = adaptor.step

    def slow_step(frame, adapt=True):
        time.sleep(seconds)  # a deliberately slow update
        return step(frame, adapt)

    monkeypatch.setattr(adaptor, "step", slow_step)
    frames = [Frame(torch.randn(1, 3, img_res, img_res), torch.cat([torch.rand(1, 49, 2) - 0.5,
                                                                    torch.ones(1, 49, 1)], -1), 0) for _ in range(12)]
    return adaptor, frames


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.02)
    return condition()


def test_prediction_never_waits_for_a_slow_update(world, monkeypatch) -> None:
    adaptor, frames = slow_world_adaptor(world, monkeypatch, seconds=1.5)
    base = {n: p.detach().clone() for n, p in adaptor.params.items()}
    predictor = LivePredictor(adaptor.model, adaptor.smpl)
    adapter = AsyncAdapter(adaptor, queue=2)
    predictor.board = adapter.board
    staleness = Staleness()
    try:
        adapter.submit(frames[0], 0)
        assert wait_for(lambda: not adapter._queue)  # frame 0's update is in flight
        start = time.perf_counter()
        for index, frame in enumerate(frames[1:], 1):
            predictor.refresh()
            out, vertices = predictor(frame.image)
            staleness.observe(index, predictor.frame)
            adapter.submit(frame, index)
        elapsed = time.perf_counter() - start
        assert vertices.shape == (1, 6890, 3) and out.pred_cam.shape == (1, 3)
        assert elapsed < 1.5 and adapter.updates == 0  # 11 frames shown while the first update was still running
        assert predictor.version == 0 and staleness.last is None  # the base model's weights, nothing adapted yet
        assert adapter.dropped == 11 - 2  # the two newest frames wait
        assert wait_for(lambda: adapter.updates >= 1)
        predictor.refresh()
        assert predictor.version >= 1 and predictor.frame == 0  # the first frame's update
        assert any(not torch.equal(predictor._params[n], base[n]) for n in base)
        staleness.observe(12, predictor.frame)
        assert staleness.last == 12 and staleness.mean == 12
        adapter.reset()  # key `r`: the base weights are published next, the queue is dropped
        assert wait_for(lambda: adapter.board.latest().frame == -1)
        predictor.refresh()
        assert all(torch.equal(predictor._params[n], base[n]) for n in base)
    finally:
        adapter.close()
    assert not adapter._thread.is_alive()


def test_an_adaptation_error_reaches_the_caller(world, monkeypatch) -> None:
    adaptor, frames = slow_world_adaptor(world, monkeypatch, seconds=0.0)

    def broken(frame, adapt=True):
        raise FloatingPointError("boom")

    monkeypatch.setattr(adaptor, "step", broken)
    adapter = AsyncAdapter(adaptor)
    adapter.submit(frames[0], 0)
    assert wait_for(lambda: adapter.error is not None, 5.0)
    with pytest.raises(RuntimeError, match="boom"):
        adapter.submit(frames[1], 1)
    adapter.close()


def test_paced_video_delivers_at_its_frame_rate() -> None:
    frames = (np.full((2, 2), i, np.int32) for i in range(10))
    latest = live.LatestFrame(live.PacedVideo(frames, fps=50.0))
    start, seen = time.perf_counter(), []
    while (frame := latest.read(timeout=2.0)) is not None:
        seen.append(int(frame[0, 0]))
        time.sleep(0.05)  # a consumer at 20 fps takes about every other frame
    latest.close()
    assert 0.15 < time.perf_counter() - start < 1.0 and seen[-1] == 9 and len(seen) < 10
    assert latest.dropped == 10 - len(seen)


def test_async_options_parse() -> None:
    cfg, adapt = webcam.parse_args(["--async-adapt", "--adapt-queue", "3", "--realtime", "--adapt-every", "2"])
    assert cfg.async_adapt and cfg.adapt_queue == 3 and cfg.realtime and adapt.adapt_every == 2
    cfg, _ = webcam.parse_args(["--async_adapt", "1"])  # the original-style spelling
    assert cfg.async_adapt
    with pytest.raises(SystemExit):
        webcam.parse_args(["--adapt-queue", "0"])


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real photographs not found at {REAL}")
@pytest.mark.parametrize("where", ["thread", "process"])
def test_live_counters_are_reported(data_root, tmp_path, caplog, where) -> None:  # noqa: F811
    clip = write_photo_clip(tmp_path / "clip.avi", "baseball_flickr.jpg", 6, 12.5, (160, 200), blank=(2,))
    argv = ["--capture_mode", "video", "--vid_path", str(clip), "--no-display", "--save-video",
            str(tmp_path / "out.mp4"), "--data-root", str(data_root), "--device", "cpu", "--async-adapt",
            "--adapt-in", where]
    with caplog.at_level(logging.INFO):
        stats = webcam.run(*webcam.parse_args(argv))
    assert (stats.frames, stats.no_person) == (6, 1)
    if where == "thread":  # the thread starts at once; the process may still be starting when the file ends
        assert 1 <= stats.updated <= 5 and stats.updates_per_s > 0
    assert stats.staleness >= 0 and stats.adapt_dropped >= 0
    assert "updates/s" in caplog.text and "staleness" in caplog.text and "fps" in caplog.text
    assert read_video(tmp_path / "out.mp4") == (6, pytest.approx(12.5))
    assert not [c for c in multiprocessing.active_children() if c.name == "adaptation"]  # the process is gone


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no per-thread niceness here")
def test_adaptation_thread_can_yield_the_cores_to_prediction(world, monkeypatch) -> None:
    adaptor, _ = slow_world_adaptor(world, monkeypatch, seconds=0.0)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    adapter = AsyncAdapter(adaptor, nice=5)
    try:
        assert wait_for(lambda: adapter.native_id is not None, 5.0)
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, adapter.native_id) == before + 5, 5.0)
    finally:
        adapter.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the predicting thread keeps its niceness


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real photographs not found at {REAL}")
def test_windowed_drawing_is_the_full_frame_drawing(data_root) -> None:  # noqa: F811
    from datasets.overlay import mesh_window, overlay_mesh_window, overlay_people
    from models.smpl import build_smpl
    from utils.render import Renderer

    smpl = build_smpl(DataPaths.from_root(data_root), "neutral")
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # SMPL's up to the camera's down
    out = smpl(betas=torch.zeros(1, 10), body_pose=torch.eye(3).repeat(1, 23, 1, 1), global_orient=flip[None, None],
               pose2rot=False)
    image = np.full((240, 320, 3), 90, np.uint8)
    placed = out.vertices[0].double().numpy() + np.array([0.3, 0.1, 6.0])
    with Renderer(64, 64) as renderer:
        full = overlay_people(renderer, image, [placed], smpl.faces, 300.0, [(205, 129, 98)])
        window = overlay_mesh_window(renderer, image, placed, smpl.faces, 300.0, (205, 129, 98))
    changed = (full != image).any(-1)
    assert changed.sum() > 500 and np.abs(full.astype(int) - window.astype(int)).max() <= 2
    x0, y0, x1, y1 = mesh_window(placed, 300.0, 320, 240)
    assert (x1 - x0) * (y1 - y0) < 0.5 * 320 * 240 and not changed[:, :x0].any() and not changed[:, x1:].any()
    assert mesh_window(placed + np.array([50.0, 0, 0]), 300.0, 320, 240) is None  # off the image: nothing drawn
