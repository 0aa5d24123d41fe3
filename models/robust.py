"""Mechanisms against drift and unreliable 2D keypoints on long streams (options of `config.AdaptConfig`, all off by
default; docs/method.md §13 describes them):

- `anchor_toward_base`: a soft reset, an exponential moving average of the adapted weights toward the base model's
  after every frame (`anchor_rate`), so that what a long stream teaches decays instead of accumulating;
- `gate_outliers`: a keypoint whose 2D position lies further than `outlier_gate` (normalised crop units, the crop
  spans [-1, 1]) from the teacher's projection of the same joint gets confidence 0 for this frame, so that a swapped
  or jumping detection does not drive an update;
- `TrackMean`: per person track, the running mean of a quantity predicted on the track's frames so far, used as a
  target: one body shape per person (the betas, `track_shape_weight`) and constant bone-length ratios (`bone_ratios`
  of the predicted 3D joints, `bone_ratio_weight`; BLAPose and pose-hg-3d constrain bone lengths this way). With SMPL
  the bone lengths follow from the betas alone, so the two targets differ in what they weigh: every shape direction,
  or only the limb proportions a 2D view can confuse.
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


class TrackMean:
    """The running mean of a [1, D] quantity predicted on each person track (e.g. the betas: one shape per person)."""

    def __init__(self) -> None:
        self.sums: dict[Hashable, torch.Tensor] = {}
        self.counts: dict[Hashable, int] = {}

    def target(self, track: Hashable) -> torch.Tensor | None:
        """[1, D] mean of the track's earlier frames, or None on its first frame."""
        if track not in self.counts:
            return None
        return self.sums[track] / self.counts[track]

    def add(self, track: Hashable, value: torch.Tensor) -> None:
        value = value.detach()
        self.sums[track] = self.sums.get(track, torch.zeros_like(value)) + value
        self.counts[track] = self.counts.get(track, 0) + 1

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


def track_loss(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between a prediction [1, D] (betas, bone ratios) and its track's mean [1, D]."""
    return ((value - target) ** 2).mean()


# bones of the 24-joint GT block (utils.constants, SPIN's order): shins, thighs, forearms, upper arms, then the
# shoulder and hip widths; lengths are divided by the torso (pelvis to neck), so the ratios do not depend on scale
BONES = ((0, 1), (1, 2), (4, 5), (3, 4), (6, 7), (7, 8), (10, 11), (9, 10), (8, 9), (2, 3))
TORSO = (14, 12)


def bone_ratios(joints24: torch.Tensor) -> torch.Tensor:
    """[B, 24, 3] joints of the GT block -> [B, len(BONES)] bone lengths over the torso length."""
    a, b = zip(*BONES)
    lengths = (joints24[:, list(a)] - joints24[:, list(b)]).norm(dim=-1)
    torso = (joints24[:, TORSO[0]] - joints24[:, TORSO[1]]).norm(dim=-1, keepdim=True)
    return lengths / torso.clamp_min(1e-6)


class TrackPriors:
    """Per-track targets of the adapted prediction: the betas (`shape_weight`) and the bone-length ratios
    (`bone_weight`) pulled toward the running means of the track's earlier final predictions (0 = that term off)."""

    def __init__(self, shape_weight: float = 0.0, bone_weight: float = 0.0) -> None:
        self.shape_weight, self.bone_weight = shape_weight, bone_weight
        self.shapes, self.bones = TrackMean(), TrackMean()

    @torch.no_grad()
    def observe(self, track: Hashable, betas: torch.Tensor, joints24: torch.Tensor) -> None:
        """Add a frame's final prediction ([1, 10] betas, [1, 24, 3] GT-block joints) to its track's means."""
        if self.shape_weight > 0:
            self.shapes.add(track, betas)
        if self.bone_weight > 0:
            self.bones.add(track, bone_ratios(joints24))

    def terms(self, track: Hashable, betas: torch.Tensor, joints24: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted `track_shape` and `bone_ratio` terms of a prediction (none on a track's first frame)."""
        terms = {}
        shape = self.shapes.target(track) if self.shape_weight > 0 else None
        if shape is not None:
            terms["track_shape"] = self.shape_weight * track_loss(betas, shape)
        bones = self.bones.target(track) if self.bone_weight > 0 else None
        if bones is not None:
            terms["bone_ratio"] = self.bone_weight * track_loss(bone_ratios(joints24), bones)
        return terms

    def state_dict(self) -> dict:
        return {"track_shapes": self.shapes.state_dict(), "track_bones": self.bones.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restores what `state_dict` saved (a key absent from an older state leaves that mean empty)."""
        if "track_shapes" in state:
            self.shapes.load_state_dict(state["track_shapes"])
        if "track_bones" in state:
            self.bones.load_state_dict(state["track_bones"])
