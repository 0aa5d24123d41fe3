"""Asynchronous adaptation for the live path: prediction never waits for an update.

The predictor (the caller's thread: detector, network, drawing) keeps its own copy of the network and predicts every
frame with the newest adapted weights it has loaded. An `AsyncAdapter` runs the `Adaptor` in a background thread
with its own copy: the caller hands it frames (`submit`), which go into a bounded queue that drops the oldest, so the
adapter always works on recent frames and the caller never waits for it. After every update the adapter publishes a
snapshot of the adapted weights (cloned tensors) on a `WeightBoard` by swapping one reference under a lock: a reader
gets either the previous snapshot or the new one, never a mix, and a snapshot is never written after it is published.
The predictor copies the newest snapshot into its network between frames (`LivePredictor.refresh`).

Counters: updates per second (the adapter's rate), frames dropped from the queue, and staleness: the frames between
the frame shown and the newest frame that was adapted on (the snapshot's frame index).

torch runs an op on the calling thread's OpenMP team and releases the GIL inside it, so the two threads compute at
the same time; each uses `threads` torch threads (1 on the 2-core machine: one core each).
"""
from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import torch

from models.adaptor import Adaptor, Frame
from models.hmr import HMROutput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Published weights: `version` counts publications (0: the base model), `frame` is the index of the newest
    frame adapted on (-1: none), `weights` maps parameter names to tensors nobody writes any more."""

    version: int
    frame: int
    weights: dict[str, torch.Tensor]


class WeightBoard:
    """The newest snapshot of the adapted weights, published and read atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def publish(self, weights: dict[str, torch.Tensor], frame: int) -> Snapshot:
        """Clone `weights` (outside the lock), then make the clone the newest snapshot (one reference swap)."""
        cloned = {name: tensor.detach().clone() for name, tensor in weights.items()}
        with self._lock:
            version = 0 if self._snapshot is None else self._snapshot.version + 1
            self._snapshot = Snapshot(version, frame, cloned)
            return self._snapshot

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._snapshot

    def load_into(self, params: dict[str, torch.Tensor], version: int) -> tuple[int, int] | None:
        """Copy the newest snapshot into `params` when its version differs from `version`; (version, frame) or
        None."""
        snapshot = self.latest()
        if snapshot is None or snapshot.version == version:
            return None
        with torch.no_grad():
            for name, tensor in snapshot.weights.items():
                params[name].copy_(tensor)
        return snapshot.version, snapshot.frame


class AsyncAdapter:
    """The adaptor's updates in a background thread on the newest frames.

    Args:
        adaptor: adapted in the thread only (its network must not be the predictor's).
        queue: frames waiting at most; a frame arriving at a full queue drops the oldest.
        threads: torch threads of the adaptation thread.
        nice: added to the adaptation thread's niceness (Linux schedules threads on their own), so that on a busy
            machine the prediction gets the cores first; 0 = the process's.
    """

    def __init__(self, adaptor: Adaptor, queue: int = 2, threads: int = 1, nice: int = 0) -> None:
        if queue < 1:
            raise ValueError(f"the adaptation queue holds at least one frame, got {queue}")
        self.adaptor, self.threads, self.nice = adaptor, threads, nice
        self.board = WeightBoard()
        self.board.publish(self._weights(), -1)
        self.updates = self.steps = self.dropped = 0
        self.error: BaseException | None = None
        self._queue: deque[tuple[int, Frame]] = deque(maxlen=queue)
        self._cond = threading.Condition()
        self._running, self._reset, self._epoch = True, False, 0
        self.native_id: int | None = None  # the thread's id for the operating system, once it runs
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="adaptation", daemon=True)
        self._thread.start()

    def _weights(self) -> dict[str, torch.Tensor]:
        return dict(self.adaptor.params)

    def submit(self, frame: Frame, index: int) -> None:
        """Queue `frame` (stream index `index`) for adaptation; returns at once. Raises the adaptation thread's
        error, if it stopped on one."""
        if self.error is not None:
            raise RuntimeError(f"the adaptation thread stopped: {self.error}") from self.error
        with self._cond:
            self.dropped += len(self._queue) == self._queue.maxlen
            self._queue.append((index, frame))
            self._cond.notify()

    def reset(self) -> None:
        """Back to the base model: queued frames are dropped, an update in flight is not published, and the base
        weights are published next."""
        with self._cond:
            self._queue.clear()
            self._reset, self._epoch = True, self._epoch + 1
            self._cond.notify()

    @property
    def updates_per_second(self) -> float:
        return self.updates / max(time.perf_counter() - self._started, 1e-9)

    def _next(self) -> tuple[int, Frame, int] | None:
        """The oldest queued frame with the reset epoch it belongs to (after a pending reset is done); None when
        closing."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._reset or not self._running)
            if not self._running:
                return None
            reset, self._reset = self._reset, False
            item = self._queue.popleft() if self._queue and not reset else None
            epoch = self._epoch
        if reset:
            self.adaptor.reset()
            self.board.publish(self._weights(), -1)
            return self._next()
        return item[0], item[1], epoch

    def _loop(self) -> None:
        self.native_id = threading.get_native_id()
        torch.set_num_threads(self.threads)
        if self.nice:
            try:  # this thread only (a Linux thread id); elsewhere the whole process would change: skipped
                if os.name == "posix" and os.uname().sysname == "Linux":
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)
                                   + self.nice)
            except OSError as err:
                logger.warning("adaptation thread: niceness unchanged (%s)", err)
        try:
            while (item := self._next()) is not None:
                index, frame, epoch = item
                result = self.adaptor.step(frame)
                self.steps += 1
                with self._cond:
                    current = epoch == self._epoch
                if result.updated and current:
                    self.board.publish(self._weights(), index)
                    self.updates += 1
        except BaseException as err:  # reported to the caller by the next submit
            logger.exception("adaptation thread stopped")
            self.error = err

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the update in flight (waits at most `timeout` s; the thread is a daemon)."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout)


class LivePredictor:
    """Predicts with its own copy of `model` (taken at construction: before another thread adapts `model`),
    loading the newest weights of `board` (a `WeightBoard`, or `pipelines.async_process.SharedWeights`) between
    frames."""

    def __init__(self, model: torch.nn.Module, smpl: torch.nn.Module, board: WeightBoard | None = None) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.smpl, self.board = smpl, board
        self._params = dict(self.model.named_parameters())
        self.version, self.frame = -1, -1

    def refresh(self) -> tuple[int, int] | None:
        """Load the newest published weights when they are not the loaded ones; their (version, frame), or None
        when nothing new was loaded."""
        loaded = self.board.load_into(self._params, self.version) if self.board is not None else None
        if loaded is not None:
            self.version, self.frame = loaded
        return loaded

    def __call__(self, image: torch.Tensor) -> tuple[HMROutput, torch.Tensor]:
        """The prediction [B] and SMPL vertices of `image` [B, 3, H, W] with the loaded weights."""
        with torch.no_grad():
            out = self.model(image)
            return out, self.smpl(**out.smpl_params()).vertices


class Staleness:
    """Frames between the frame shown and the newest frame adapted on: the last value and the running mean."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.total, self.count = 0, 0

    def observe(self, shown: int, adapted: int) -> None:
        if adapted < 0:  # no update yet (or just reset): nothing adapted to be stale against
            self.last = None
            return
        self.last = shown - adapted
        self.total, self.count = self.total + self.last, self.count + 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0
