"""The adaptor's data types: a frame, a batch of labelled exemplars and their source, runtime options, one frame's
result, and the per-section clock (re-exported by `models.adaptor`, where they were first defined)."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Hashable, Protocol

import torch

from models.hmr import HMROutput


@dataclass
class Frame:
    """One cropped person frame.

    Attributes:
        image: [1, 3, H, W] normalised crop.
        keypoints: [1, 49, 3] normalised 2D keypoints with confidence (the 49-joint layout).
        track_id: identifies the person track; a change resets the motion history.
        landmarks: [1, 33, 4] the detector's world landmarks (metres + visibility), or None (models/teacher3d.py).
    """

    image: torch.Tensor
    keypoints: torch.Tensor
    track_id: Hashable = 0
    landmarks: torch.Tensor | None = None


@dataclass
class ExemplarBatch:
    """Labelled source exemplars: images [n,3,H,W], keypoints [n,49,3], pose [n,72] axis-angle, betas [n,10],
    joints3d [n,24,4] (metres + confidence)."""

    images: torch.Tensor
    keypoints: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor
    joints3d: torch.Tensor


class ExemplarSource(Protocol):
    """Anything that returns `n` labelled source exemplars near a pooled feature (the retrieval database)."""

    def retrieve(self, feature: torch.Tensor, n: int) -> ExemplarBatch:  # feature: [1, D]
        ...


@dataclass
class Runtime:
    """How the adaptor computes, not what: options that change results only by rounding."""

    bf16: bool = False  # autocast the network to bfloat16 (CPU and CUDA); losses, SMPL and weights stay float32
    channels_last: bool = False  # NHWC memory format for the network and its inputs
    adam: str = "fused"  # Adam implementation, a key of ADAM_IMPLS
    profile: bool = False  # per-frame section timings in StepResult.profile (synchronises CUDA at each edge)


@dataclass
class StepResult:
    """What one frame produced: the final prediction (batch 1) and how it was reached.

    `profile` (only with `Runtime.profile`) holds wall seconds per section: `total`; `step` (the bilevel step, or
    the single-level step without BOA, from the teacher forward to the check forward); `dynamic` (all dynamic steps);
    `retrieval`, `adam` (optimizer step + EMA) and `teacher` (contained in the former two); `output` (final SMPL).
    """

    output: HMROutput
    vertices: torch.Tensor  # [1, 6890, 3] neutral SMPL, no translation
    joints: torch.Tensor  # [1, 49, 3]
    updated: bool  # False when the frame was only predicted (no keypoints, non-finite loss, adapt off)
    dynamic_steps: int = 0
    skipped_reason: str | None = None
    losses: dict[str, float] = field(default_factory=dict)
    feature_changes: list[float] = field(default_factory=list)  # the dynamic rule's 1 - cos at each check
    gated_joints: int = 0  # keypoints gated as outliers (`outlier_gate`)
    passes: dict[str, int] = field(default_factory=lambda: {"forward": 0, "backward": 0})
    profile: dict[str, float] | None = None


class _Clock:
    """Accumulated wall seconds per named section of one frame."""

    def __init__(self, device: torch.device) -> None:
        self.times: dict[str, float] = {}
        self.cuda = device.type == "cuda"

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start
