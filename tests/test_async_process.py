"""Asynchronous adaptation in a process (pipelines/async_process.py): prediction never blocks on a slow update in
the process, a reader never sees a half-written buffer, reset and errors reach the caller."""
from __future__ import annotations

import time

import pytest
import torch
import torch.multiprocessing as mp

from config import AdaptConfig, DataPaths
from models.adaptor import Frame
from pipelines.async_adapt import LivePredictor
from pipelines.async_process import ProcessAdapter, SharedWeights
from pipelines.session import build_adaptor
from tests.test_async_adapt import wait_for


def small_params() -> dict[str, torch.Tensor]:
    net = torch.nn.Sequential(*[torch.nn.Linear(128, 128) for _ in range(6)])
    return dict(net.named_parameters())


def publish_versions(weights: SharedWeights, params: dict[str, torch.Tensor], count: int) -> None:
    """In a child process: publish `count` versions, every tensor of version v equal to v."""
    for version in range(1, count + 1):
        with torch.no_grad():
            for tensor in params.values():
                tensor.fill_(version)
        weights.publish(params, version)


def test_a_reader_never_sees_a_half_written_buffer() -> None:
    ctx = mp.get_context("spawn")
    params = small_params()
    weights = SharedWeights(ctx, params)
    child = ctx.Process(target=publish_versions, args=(weights, {n: p.detach().clone() for n, p in params.items()},
                                                      300))
    child.start()
    mine = {n: torch.zeros_like(p) for n, p in params.items()}
    seen, torn, version, deadline = set(), [], 0, time.perf_counter() + 120.0
    while (child.is_alive() or version < 300) and time.perf_counter() < deadline:
        loaded = weights.load_into(mine, version)
        if loaded is None:
            continue
        version, frame = loaded
        values = {float(t.min()) for t in mine.values()} | {float(t.max()) for t in mine.values()}
        if values != {float(version)} or frame != version:
            torn.append((version, values))
        seen.add(version)
    child.join()
    assert not torn and len(seen) > 3 and version == 300


def slow_factory(root: str, seconds: float, fail: bool = False):
    """Built in the adaptation process: the tiny world's adaptor with a deliberately slow (or failing) step."""
    torch.manual_seed(0)
    adaptor, _ = build_adaptor(AdaptConfig(use_boa=False, retrieval=False), DataPaths.from_root(root),
                               torch.device("cpu"))
    step = adaptor.step

    def slow_step(frame, adapt=True):
        if fail:
            raise FloatingPointError("boom")
        time.sleep(seconds)
        return step(frame, adapt)

    adaptor.step = slow_step
    return adaptor


def test_prediction_never_waits_for_the_adaptation_process(world) -> None:
    import functools

    torch.manual_seed(0)
    adaptor, img_res = build_adaptor(AdaptConfig(use_boa=False, retrieval=False), DataPaths.from_root(world),
                                     torch.device("cpu"))
    base = {n: p.detach().clone() for n, p in adaptor.params.items()}
    predictor = LivePredictor(adaptor.model, adaptor.smpl)
    adapter = ProcessAdapter(functools.partial(slow_factory, str(world), 3.0), adaptor.params, queue=2)
    predictor.board = adapter.board
    frames = [Frame(torch.randn(1, 3, img_res, img_res), torch.cat([torch.rand(1, 49, 2) - 0.5,
                                                                    torch.ones(1, 49, 1)], -1), 0) for _ in range(10)]
    try:
        start = time.perf_counter()
        for index, frame in enumerate(frames):
            predictor.refresh()
            predictor(frame.image)
            adapter.submit(frame, index)
        assert time.perf_counter() - start < 3.0 and adapter.updates == 0  # the first update takes 3 s or more
        assert predictor.version == 0 and predictor.frame == -1  # the base weights
        assert wait_for(lambda: adapter.updates >= 1, 60.0)
        predictor.refresh()
        assert predictor.version >= 1 and predictor.frame >= 0
        assert any(not torch.equal(predictor._params[n], base[n]) for n in base)
        adapter.reset()

        def back_to_base() -> bool:
            predictor.refresh()
            return predictor.frame == -1

        assert wait_for(back_to_base, 60.0)
        assert all(torch.equal(predictor._params[n], base[n]) for n in base)
    finally:
        adapter.close()
    assert not adapter._process.is_alive()


def test_an_error_in_the_process_reaches_the_caller(world) -> None:
    import functools

    adaptor, img_res = build_adaptor(AdaptConfig(use_boa=False, retrieval=False), DataPaths.from_root(world),
                                     torch.device("cpu"))
    adapter = ProcessAdapter(functools.partial(slow_factory, str(world), 0.0, True), adaptor.params)
    frame = Frame(torch.randn(1, 3, img_res, img_res), torch.ones(1, 49, 3) * 0.1, 0)
    adapter.submit(frame, 0)
    with pytest.raises(RuntimeError, match="boom"):
        assert wait_for(lambda: adapter._process.exitcode is not None, 60.0)
        adapter.submit(frame, 1)
    adapter.close()
