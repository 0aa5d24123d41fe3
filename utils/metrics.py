"""Pose and mesh errors, and the 3DPW evaluation protocol of DynaBOA (docs/method.md §9).

Every function takes torch tensors or numpy arrays ([B, N, 3], batch first, never guessed from the shape) and
returns the same kind. Errors are in the units of the input; `evaluate_batch` converts metres to millimetres.
"""
from __future__ import annotations

import numpy as np
import torch

from utils.constants import H36M_TO_J14

Array = torch.Tensor | np.ndarray


def _to_torch(x: Array) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x if x.flags.writeable else x.copy())  # torch refuses read-only views
    return x


def _like(result: torch.Tensor, template: Array) -> Array:
    """Return `result` as numpy when `template` is numpy."""
    return result.detach().cpu().numpy() if isinstance(template, np.ndarray) else result


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    assert pred.shape == gt.shape, (pred.shape, gt.shape)
    assert pred.dim() == 3 and pred.shape[-1] == 3, pred.shape


def mpjpe(pred: Array, gt: Array) -> Array:
    """Mean per-joint position error.

    Args:
        pred: [B, J, 3].
        gt: [B, J, 3], same units.
    Returns:
        [B] mean over joints of the Euclidean distance.
    """
    pred_t, gt_t = _to_torch(pred), _to_torch(gt)
    _check_pair(pred_t, gt_t)
    return _like((pred_t - gt_t).norm(dim=-1).mean(dim=-1), pred)


def pve(pred_verts: Array, gt_verts: Array) -> Array:
    """Per-vertex error, without any alignment (docs/method.md §9).

    Args:
        pred_verts: [B, V, 3].
        gt_verts: [B, V, 3], same units.
    Returns:
        [B] mean over vertices of the Euclidean distance.
    """
    return mpjpe(pred_verts, gt_verts)


def rotation_error_deg(pred: Array, gt: Array) -> Array:
    """Geodesic angle between rotations, in degrees.

    Args:
        pred: [B, 3, 3] rotation matrices.
        gt: [B, 3, 3].
    Returns:
        [B] the angle of pred^T gt, in [0, 180].
    """
    from utils.geometry import rotmat_to_axis_angle

    pred_t, gt_t = _to_torch(pred), _to_torch(gt)
    assert pred_t.shape == gt_t.shape and pred_t.shape[1:] == (3, 3), (pred_t.shape, gt_t.shape)
    return _like(torch.rad2deg(rotmat_to_axis_angle(pred_t.transpose(1, 2) @ gt_t).norm(dim=-1)), pred)


def similarity_transform(src: Array, dst: Array) -> Array:
    """Align `src` onto `dst` with the best similarity (scale, rotation with det = +1, translation).

    Batched Procrustes as the original's `compute_similarity_transform`: with centred X (src) and Y (dst),
    `U S V^T = svd(X^T Y)`, `R = V Z U^T` with `Z = diag(1, 1, sign det(V U^T))` (no reflection),
    `scale = tr(R X^T Y) / |X|^2`, `aligned = scale X R^T + mean(dst)`.

    Args:
        src: [B, N, 3].
        dst: [B, N, 3].
    Returns:
        [B, N, 3] aligned src.
    """
    src_t, dst_t = _to_torch(src), _to_torch(dst)
    _check_pair(src_t, dst_t)
    mu_src, mu_dst = src_t.mean(dim=1, keepdim=True), dst_t.mean(dim=1, keepdim=True)
    x, y = src_t - mu_src, dst_t - mu_dst  # [B, N, 3]
    cov = x.transpose(1, 2) @ y  # [B, 3, 3] = X^T Y
    u, _, vh = torch.linalg.svd(cov)
    v = vh.transpose(1, 2)
    z = torch.diag_embed(torch.ones_like(cov[:, 0]))  # [B, 3, 3] identity
    z[:, 2, 2] = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    rot = v @ z @ u.transpose(1, 2)  # [B, 3, 3]
    var_src = (x**2).sum(dim=(1, 2)).clamp_min(torch.finfo(x.dtype).tiny)  # [B]
    scale = (rot * cov.transpose(1, 2)).sum(dim=(1, 2)) / var_src  # tr(R X^T Y) / |X|^2
    aligned = scale[:, None, None] * (x @ rot.transpose(1, 2)) + mu_dst
    return _like(aligned, src)


def pa_mpjpe(pred: Array, gt: Array) -> Array:
    """MPJPE after similarity (Procrustes) alignment of each prediction onto its ground truth.

    Args:
        pred: [B, J, 3].
        gt: [B, J, 3], same units.
    Returns:
        [B].
    """
    pred_t, gt_t = _to_torch(pred), _to_torch(gt)
    return _like(mpjpe(similarity_transform(pred_t, gt_t), gt_t), pred)


def _eval_joints(vertices: torch.Tensor, j_regressor_h36m: torch.Tensor) -> torch.Tensor:
    """14 LSP evaluation joints relative to the H36M pelvis: [B, V, 3] -> [B, 14, 3]."""
    joints17 = torch.einsum("jv,bvc->bjc", j_regressor_h36m, vertices)  # [B, 17, 3]
    return joints17[:, H36M_TO_J14] - joints17[:, :1]


def evaluate_batch(
    pred_vertices: Array,
    gt_vertices_gendered: Array,
    gt_vertices_neutral: Array,
    j_regressor_h36m: Array,
) -> dict[str, np.ndarray]:
    """Per-frame 3DPW errors exactly as DynaBOA's `inference` (docs/method.md §9).

    Joints are the 14 LSP joints of the H36M regressor (`H36M_TO_J14`) minus the H36M pelvis (joint 0); MPJPE and
    PA-MPJPE compare with the gendered ground-truth mesh, PVE compares the raw meshes with the *neutral*
    ground-truth mesh (same pose and betas), without any alignment.

    Args:
        pred_vertices: [B, V, 3] metres (neutral model).
        gt_vertices_gendered: [B, V, 3] metres.
        gt_vertices_neutral: [B, V, 3] metres.
        j_regressor_h36m: [17, V].
    Returns:
        dict with `mpjpe`, `pa_mpjpe`, `pve`: [B] float64 millimetres.
    """
    pred = _to_torch(pred_vertices).double()
    gt_gendered, gt_neutral = _to_torch(gt_vertices_gendered).double(), _to_torch(gt_vertices_neutral).double()
    reg = _to_torch(j_regressor_h36m).to(dtype=torch.float64, device=pred.device)
    assert reg.dim() == 2 and reg.shape[0] == 17 and reg.shape[1] == pred.shape[1], (reg.shape, pred.shape)
    _check_pair(pred, gt_gendered)
    _check_pair(pred, gt_neutral)
    with torch.no_grad():
        pred_joints, gt_joints = _eval_joints(pred, reg), _eval_joints(gt_gendered, reg)
        errors = {
            "mpjpe": mpjpe(pred_joints, gt_joints),
            "pa_mpjpe": pa_mpjpe(pred_joints, gt_joints),
            "pve": pve(pred, gt_neutral),
        }
    return {name: 1000.0 * err.cpu().numpy() for name, err in errors.items()}
