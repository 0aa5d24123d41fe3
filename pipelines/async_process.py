"""Asynchronous adaptation in a process of its own: `AsyncAdapter`'s interface, without the interpreter lock shared
with the prediction.

In a thread (`pipelines.async_adapt.AsyncAdapter`) the adaptor's Python work (losses, SMPL, bookkeeping) and the
live loop's (MediaPipe's wrapper, pyrender's OpenGL calls) take turns on one interpreter lock, so on the small
committed network the prediction slows down while adaptation runs. Here the adaptor lives in a spawned process
built by `factory` (a picklable callable returning the adaptor, or (adaptor, ...) as `build_adaptor` does):

- frames go to it through a pipe as numpy arrays; it drains the pipe before every update and keeps the newest
  `queue` frames (older ones dropped, counted);
- it publishes the adapted weights into one of two shared-memory buffers, the one not being read, and then flips the
  active index and the version under a lock; a reader copies the active buffer while holding the lock, so it never
  sees a buffer being written (`load_into`);
- counters (updates, frames dropped) are shared values; an error in the process reaches the caller at the next
  `submit`.
"""
from __future__ import annotations

import logging
import os
import queue as queue_module
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from models.adaptor import Frame

logger = logging.getLogger(__name__)


class SharedWeights:
    """Two shared-memory copies of the adapted weights, an active index, a version and a frame index."""

    def __init__(self, ctx: Any, params: dict[str, torch.Tensor]) -> None:
        self.buffers = [{n: p.detach().clone().share_memory_() for n, p in params.items()} for _ in range(2)]
        self.lock = ctx.Lock()
        self.active, self.version, self.frame = ctx.Value("i", 0, lock=False), ctx.Value("q", 0, lock=False), \
            ctx.Value("q", -1, lock=False)

    def publish(self, params: dict[str, torch.Tensor], frame: int) -> None:
        """Write `params` into the buffer nobody reads, then make it the active one (writer: one process only)."""
        with self.lock:
            spare = 1 - self.active.value
        with torch.no_grad():
            for name, tensor in self.buffers[spare].items():
                tensor.copy_(params[name])
        with self.lock:
            self.active.value, self.version.value, self.frame.value = spare, self.version.value + 1, frame

    def load_into(self, params: dict[str, torch.Tensor], version: int) -> tuple[int, int] | None:
        """Copy the active buffer into `params` when its version differs from `version`; (version, frame) or
        None."""
        with self.lock:
            if self.version.value == version:
                return None
            with torch.no_grad():
                for name, tensor in self.buffers[self.active.value].items():
                    params[name].copy_(tensor)
            return self.version.value, self.frame.value


def _adapt_process(factory: Callable[[], Any], weights: SharedWeights, frames: Any, errors: Any, counters: Any,
                   queue: int, threads: int, nice: int) -> None:
    """The adaptation process: drain the pipe into a deque of the newest frames, step on the oldest of them,
    publish after each update; a `None` message stops it, "reset" goes back to the base model."""
    try:
        torch.set_num_threads(threads)
        if nice:
            os.nice(nice)
        built = factory()
        adaptor = built[0] if isinstance(built, tuple) else built
        pending: deque = deque(maxlen=queue)
        while True:
            try:
                message = frames.get(timeout=1.0) if not pending else frames.get_nowait()
                while True:
                    if message is None:
                        return
                    if message == "reset":
                        pending.clear()
                        adaptor.reset()
                        weights.publish(adaptor.params, -1)
                    else:
                        counters[1] += len(pending) == pending.maxlen
                        pending.append(message)
                    message = frames.get_nowait()
            except queue_module.Empty:
                pass
            if pending:
                index, image, keypoints, track = pending.popleft()
                result = adaptor.step(Frame(torch.from_numpy(image), torch.from_numpy(keypoints), track))
                if result.updated:
                    weights.publish(adaptor.params, index)
                    counters[0] += 1
    except BaseException as err:  # noqa: BLE001 (reported to the caller)
        errors.put(f"{type(err).__name__}: {err}")


class ProcessAdapter:
    """The adaptor's updates in a spawned process on the newest frames (see the module's docstring).

    Args:
        factory: picklable; builds the adaptor in the process (same weights as the caller's base model).
        params: the caller's adapted parameters (names and shapes of the shared buffers; their values start them).
        queue, threads, nice: as `AsyncAdapter`'s (nice applies to the whole process).
    """

    def __init__(self, factory: Callable[[], Any], params: dict[str, torch.Tensor], queue: int = 2, threads: int = 1,
                 nice: int = 0) -> None:
        if queue < 1:
            raise ValueError(f"the adaptation queue holds at least one frame, got {queue}")
        ctx = mp.get_context("spawn")
        self.weights = SharedWeights(ctx, params)
        self._frames, self._errors = ctx.Queue(), ctx.Queue()
        self._counters = ctx.Array("q", 2)  # updates, frames dropped
        self.error: str | None = None
        self._started = time.perf_counter()
        self._process = ctx.Process(target=_adapt_process, name="adaptation", daemon=True,
                                    args=(factory, self.weights, self._frames, self._errors, self._counters, queue,
                                          threads, nice))
        self._process.start()
        self.board = self.weights  # what `LivePredictor` loads from

    @property
    def updates(self) -> int:
        return int(self._counters[0])

    @property
    def dropped(self) -> int:
        return int(self._counters[1])

    @property
    def updates_per_second(self) -> float:
        return self.updates / max(time.perf_counter() - self._started, 1e-9)

    def _check(self) -> None:
        try:
            self.error = self.error or self._errors.get_nowait()
        except queue_module.Empty:
            pass
        if self.error is not None:
            raise RuntimeError(f"the adaptation process stopped: {self.error}")

    def submit(self, frame: Frame, index: int) -> None:
        """Send `frame` (stream index `index`) to the process; returns at once."""
        self._check()
        self._frames.put((index, np.ascontiguousarray(frame.image.detach().cpu().numpy()),
                          np.ascontiguousarray(frame.keypoints.detach().cpu().numpy()), frame.track_id))

    def reset(self) -> None:
        """Back to the base model: the frames waiting in the process are dropped, the base weights published."""
        self._frames.put("reset")

    def close(self, timeout: float = 10.0) -> None:
        self._frames.put(None)
        self._process.join(timeout)
        if self._process.is_alive():  # an update longer than the timeout: this process's own child
            self._process.terminate()
            self._process.join(2.0)
