"""Mechanisms against drift and unreliable 2D keypoints on long streams (options of `config.AdaptConfig`, all off by
default; docs/method.md §13 describes them):

- `anchor_toward_base`: a soft reset, an exponential moving average of the adapted weights toward the base model's
  after every frame (`anchor_rate`), so that what a long stream teaches decays instead of accumulating;
- `gate_outliers`: a keypoint whose 2D position lies further than `outlier_gate` (normalised crop units, the crop
  spans [-1, 1]) from the teacher's projection of the same joint gets confidence 0 for this frame, so that a swapped
  or jumping detection does not drive an update;
- `TrackShape`: one body shape per person track, the running mean of the betas predicted on the track's frames so
  far, used as a target (`track_shape_weight`).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable

import torch


@torch.no_grad()
def anchor_toward_base(params: Iterable[torch.Tensor], base: Iterable[torch.Tensor], rate: float) -> None:
    """theta <- theta + rate * (theta_base - theta), in place, for each adapted tensor and its base value."""
    params, base = list(params), list(base)
    if rate > 0 and params:
        torch._foreach_lerp_(params, base, rate)


def gate_outliers(keypoints: torch.Tensor, reference: torch.Tensor, threshold: float) -> tuple[torch.Tensor, int]:
    """Zero the confidence of keypoints further than `threshold` from the reference positions.

    Args:
        keypoints: [B, J, 3] normalised keypoints with confidence.
        reference: [B, J, 2] where the joints are expected (e.g. the teacher's projection).
        threshold: distance in normalised crop units; <= 0 gates nothing.
    Returns:
        the gated keypoints (a new tensor) and how many confident joints were gated.
    """
    if threshold <= 0:
        return keypoints, 0
    far = (keypoints[..., :2] - reference).norm(dim=-1) > threshold
    gated = far & (keypoints[..., 2] > 0)
    out = keypoints.clone()
    out[..., 2] = torch.where(gated, torch.zeros_like(out[..., 2]), out[..., 2])
    return out, int(gated.sum())


class TrackShape:
    """The running mean of the betas predicted on each person track (one body shape per person)."""

    def __init__(self) -> None:
        self.sums: dict[Hashable, torch.Tensor] = {}
        self.counts: dict[Hashable, int] = {}

    def target(self, track: Hashable) -> torch.Tensor | None:
        """[1, 10] mean betas of the track's earlier frames, or None on its first frame."""
        if track not in self.counts:
            return None
        return self.sums[track] / self.counts[track]

    def add(self, track: Hashable, betas: torch.Tensor) -> None:
        betas = betas.detach()
        self.sums[track] = self.sums.get(track, torch.zeros_like(betas)) + betas
        self.counts[track] = self.counts.get(track, 0) + 1

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


def track_shape_loss(betas: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between predicted betas [1, 10] and the track's shape [1, 10]."""
    return ((betas - target) ** 2).mean()
