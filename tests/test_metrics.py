"""Pose and mesh metrics, with values worked out by hand at batch sizes 1, 2 and 3."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import metrics
from utils.constants import H36M_TO_J14

# Triangle, centred: X = (-1, -1), (1, -1), (0, 2); Y stretches x by 2: (-2, -1), (2, -1), (0, 2) (z = 0).
# X^T Y = diag(4, 6, 0) (off-diagonals: sum x_i y'_i = 1 - 1 + 0 = 0, sum y_i x'_i = 2 - 2 + 0 = 0), so R = I
# (maximises 4 R11 + 6 R22), |X|^2 = 2 + 2 + 4 = 8, scale = 10 / 8 = 1.25: aligned X = (-1.25, -1.25),
# (1.25, -1.25), (0, 2.5). Residuals (-0.75, 0.25), (0.75, 0.25), (0, -0.5):
# PA-MPJPE = (2 sqrt(0.625) + 0.5) / 3; MPJPE (unaligned) = (1 + 1 + 0) / 3.
TRI_SRC = [[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 2.0, 0.0]]
TRI_DST = [[-2.0, -1.0, 0.0], [2.0, -1.0, 0.0], [0.0, 2.0, 0.0]]
TRI_PA = (2 * math.sqrt(0.625) + 0.5) / 3
TRI_MPJPE = 2 / 3


def _rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _tetra() -> torch.Tensor:
    """A non-planar point set (a reflection of a planar set is a rotation, so it could not test the det fix)."""
    return torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]], dtype=torch.float64)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_similarity_of_a_point_set_aligns_to_zero(batch):
    src = _tetra().expand(batch, -1, -1)
    # dst_b = 2 R_b src + t_b: rotation about z by 0.3 b rad, shift (b, 0, 0)
    dst = torch.stack([2.0 * src[b] @ _rot_z(0.3 * b).T + torch.tensor([b, 0.0, 0.0]) for b in range(batch)])
    np.testing.assert_allclose(metrics.pa_mpjpe(src, dst).numpy(), np.zeros(batch), atol=1e-9)
    torch.testing.assert_close(metrics.similarity_transform(src, dst), dst)
    # b = 0: dst = 2 src, so each error is |p| (norms 0, 1, 2, 3, sqrt 3): MPJPE = (6 + sqrt 3) / 5
    assert metrics.mpjpe(src, dst)[0].item() == pytest.approx((6 + math.sqrt(3)) / 5)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_triangle_by_hand(batch):
    # rotating and shifting the target changes nothing in PA-MPJPE; batch 3 with 3 points is the [3, 3, 3] case
    dst = torch.stack([torch.tensor(TRI_DST) @ _rot_z(b).float().T + b for b in range(batch)])
    src = torch.tensor(TRI_SRC).expand(batch, -1, -1)
    torch.testing.assert_close(metrics.pa_mpjpe(src, dst), torch.full((batch,), TRI_PA))
    unaligned = metrics.mpjpe(src, torch.tensor(TRI_DST).expand(batch, -1, -1))
    assert unaligned.tolist() == pytest.approx([TRI_MPJPE] * batch)


def test_reflection_is_not_aligned():
    src = _tetra()[None]
    mirrored = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # x -> -x: det -1
    assert metrics.pa_mpjpe(src, mirrored).item() > 0.1
    # the control: the same set rotated by pi about y (det +1) is aligned exactly
    rotated = src * torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    assert metrics.pa_mpjpe(src, rotated).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_numpy_in_numpy_out(batch):
    src = np.broadcast_to(np.array(TRI_SRC), (batch, 3, 3))
    dst = np.broadcast_to(np.array(TRI_DST), (batch, 3, 3))
    for fn, expected in ((metrics.pa_mpjpe, TRI_PA), (metrics.mpjpe, TRI_MPJPE)):
        out = fn(src, dst)
        assert isinstance(out, np.ndarray) and out.shape == (batch,)
        np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_pve_of_translated_mesh_is_translation_norm(batch):
    verts = torch.randn(batch, 30, 3, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([0.3, -0.4, 1.2])  # norm sqrt(0.09 + 0.16 + 1.44) = 1.3
    torch.testing.assert_close(metrics.pve(verts + shift, verts), torch.full((batch,), 1.3))


def test_shape_mismatch_is_rejected():
    with pytest.raises(AssertionError):
        metrics.mpjpe(torch.zeros(2, 14, 3), torch.zeros(2, 13, 3))
    with pytest.raises(AssertionError):
        metrics.pa_mpjpe(torch.zeros(14, 3), torch.zeros(14, 3))  # no batch axis: not guessed


def _toy_regressor(num_verts: int = 20) -> np.ndarray:
    """H36M regressor whose joint j is vertex j (one-hot rows)."""
    reg = np.zeros((17, num_verts))
    reg[np.arange(17), np.arange(17)] = 1.0
    return reg


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_evaluate_batch_protocol(batch):
    rng = np.random.default_rng(batch)
    gt = rng.normal(size=(batch, 20, 3))
    neutral = gt + np.array([0.0, 0.0, 0.01])  # the neutral mesh differs: PVE uses it, MPJPE does not
    pred = 1.5 * gt + np.array([0.2, 0.0, 0.0])  # scaled about the origin, then shifted 0.2 m
    out = metrics.evaluate_batch(pred, gt, neutral, _toy_regressor())
    assert set(out) == {"mpjpe", "pa_mpjpe", "pve"} and all(v.shape == (batch,) for v in out.values())
    # pelvis-relative joints: pred - pelvis = 1.5 (gt - gt_pelvis), so MPJPE = 0.5 * mean |gt_j - gt_pelvis|
    rel = gt[:, H36M_TO_J14] - gt[:, :1]
    np.testing.assert_allclose(out["mpjpe"], 1000 * 0.5 * np.linalg.norm(rel, axis=-1).mean(-1))
    np.testing.assert_allclose(out["pa_mpjpe"], 0.0, atol=1e-9)  # a pure scale is aligned away
    np.testing.assert_allclose(out["pve"], 1000 * np.linalg.norm(pred - neutral, axis=-1).mean(-1))


def test_evaluate_batch_translation_only_gives_pve_not_mpjpe():
    gt = np.random.default_rng(0).normal(size=(2, 20, 3))
    out = metrics.evaluate_batch(gt + [0.03, 0.04, 0.0], gt, gt, _toy_regressor())
    np.testing.assert_allclose(out["mpjpe"], 0.0, atol=1e-9)  # removed by the pelvis
    np.testing.assert_allclose(out["pve"], 50.0)  # |(0.03, 0.04, 0)| = 0.05 m = 50 mm


def test_rotation_error_by_hand():
    from utils.geometry import batch_rodrigues
    from utils.metrics import rotation_error_deg

    gt = batch_rodrigues(torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [0.0, 0.0, 0.0]]))
    turn = batch_rodrigues(torch.tensor([[0.0, 0.0, np.pi / 2], [0.0, 0.0, 0.0], [np.pi, 0.0, 0.0]]))
    err = rotation_error_deg(gt @ turn, gt)  # a quarter turn, none, a half turn
    assert torch.allclose(err, torch.tensor([90.0, 0.0, 180.0]), atol=1e-3)
    assert isinstance(rotation_error_deg(gt.numpy(), gt.numpy()), np.ndarray)
