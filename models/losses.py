"""Loss terms of DynaBOA as pure functions (docs/method.md §4).

Every function takes tensors and weights explicitly and reads no global options. "MSE" is `F.mse_loss`, the mean
over all elements, as the original. Keypoints are normalised crop coordinates in [-1, 1] with a confidence column.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.constants import GT_SLICE
from utils.geometry import batch_rodrigues

# the hip pair of the 24-joint GT block used to centre 3D joints (R hip, L hip; docs/method.md §2.6)
_HIP_IDS = (2, 3)


def keypoint_2d_loss(pred_kp: torch.Tensor, gt_kp: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted squared 2D error, averaged over every element (zero-confidence joints count in the mean).

    Args:
        pred_kp: [B, J, 2] normalised predicted keypoints.
        gt_kp: [B, J, 3] normalised target keypoints with confidence in the last column.
    Returns:
        scalar: mean over B x J x 2 of conf * (pred - gt)^2.
    """
    assert pred_kp.shape[:2] == gt_kp.shape[:2] and pred_kp.shape[-1] == 2 and gt_kp.shape[-1] == 3
    conf = gt_kp[..., 2:3]
    return (conf * (pred_kp - gt_kp[..., :2]) ** 2).mean()


def keypoint_3d_loss(pred_j3d: torch.Tensor, gt_j3d: torch.Tensor, conf: torch.Tensor | None = None) -> torch.Tensor:
    """Hip-centred, confidence-weighted squared 3D error on the 24-joint GT block.

    The original masks the 3D loss with the exemplar's 2D confidences (docs/method.md §11 item 10); here the mask is
    the 3D confidence column of `gt_j3d` unless `conf` is given explicitly.

    Args:
        pred_j3d: [B, 24, 3] metres.
        gt_j3d: [B, 24, 4] metres + confidence.
        conf: optional [B, 24] mask overriding gt_j3d[..., 3].
    Returns:
        scalar mean over B x 24 x 3.
    """
    assert pred_j3d.shape[1:] == (24, 3) and gt_j3d.shape[1:] == (24, 4), (pred_j3d.shape, gt_j3d.shape)
    mask = gt_j3d[..., 3] if conf is None else conf
    pred_hip = pred_j3d[:, list(_HIP_IDS)].mean(dim=1, keepdim=True)
    gt_hip = gt_j3d[:, list(_HIP_IDS), :3].mean(dim=1, keepdim=True)
    diff = (pred_j3d - pred_hip) - (gt_j3d[..., :3] - gt_hip)
    return (mask[..., None] * diff**2).mean()


def smpl_param_loss(
    pred_rotmat: torch.Tensor, pred_betas: torch.Tensor, gt_rotmat: torch.Tensor, gt_betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on rotation matrices and on betas.

    Args:
        pred_rotmat, gt_rotmat: [B, 24, 3, 3].
        pred_betas, gt_betas: [B, 10].
    Returns:
        (pose loss, betas loss) scalars.
    """
    assert pred_rotmat.shape == gt_rotmat.shape and pred_betas.shape == gt_betas.shape
    return F.mse_loss(pred_rotmat, gt_rotmat), F.mse_loss(pred_betas, gt_betas)


@dataclass(frozen=True)
class SpinWeights:
    """Weights of SPIN's supervised terms; the defaults are the original's (`5 L2d + 5 L3d + 1 MSE(R) + 0.001
    MSE(beta)`), which the adaptor's exemplar term uses and the base-model training takes as option defaults."""

    kp2d: float = 5.0
    kp3d: float = 5.0
    pose: float = 1.0
    betas: float = 0.001

    def apply(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`spin_terms` weighted, same keys and order."""
        return {name: getattr(self, name) * value for name, value in terms.items()}


def spin_terms(pred_rotmat: torch.Tensor, pred_betas: torch.Tensor, joints: torch.Tensor, kp2d: torch.Tensor,
               gt_keypoints: torch.Tensor, gt_joints3d: torch.Tensor, gt_pose: torch.Tensor, gt_betas: torch.Tensor,
               has_smpl: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """SPIN's supervised terms of labelled images, unweighted (`SpinWeights.apply` weights them).

    Args:
        pred_rotmat: [B, 24, 3, 3]; pred_betas: [B, 10].
        joints: [B, 49, 3] predicted joints; kp2d: [B, 49, 2] their projection into the crop (normalised).
        gt_keypoints: [B, 49, 3] normalised 2D labels + confidence; gt_joints3d: [B, 24, 4] metres + confidence.
        gt_pose: [B, 72] axis-angle; gt_betas: [B, 10].
        has_smpl: [B] bool, the rows whose SMPL labels count (all when None); no such row gives zero SMPL terms.
    Returns:
        `kp2d`, `kp3d` (on the 24 GT joints), `pose` (MSE of rotation matrices), `betas` (MSE).
    """
    terms = {"kp2d": keypoint_2d_loss(kp2d[:, GT_SLICE], gt_keypoints[:, GT_SLICE]),
             "kp3d": keypoint_3d_loss(joints[:, GT_SLICE], gt_joints3d)}
    rows = slice(None) if has_smpl is None else has_smpl
    if has_smpl is not None and not bool(has_smpl.any()):
        terms["pose"] = terms["betas"] = joints.new_zeros(())
        return terms
    gt_rotmat = batch_rodrigues(gt_pose[rows].reshape(-1, 3)).view(-1, 24, 3, 3)
    terms["pose"], terms["betas"] = smpl_param_loss(pred_rotmat[rows], pred_betas[rows], gt_rotmat, gt_betas[rows])
    return terms


def camera_regulariser(pred_cam: torch.Tensor) -> torch.Tensor:
    """SPIN's penalty on a negative or tiny weak-perspective scale: mean of exp(-10 s)^2 (training only)."""
    return (torch.exp(-10.0 * pred_cam[:, 0]) ** 2).mean()


def motion_loss(
    pred_t: torch.Tensor, pred_h: torch.Tensor, gt_t: torch.Tensor, gt_h: torch.Tensor
) -> torch.Tensor:
    """2D motion loss between frame t and its history frame h = t - interval (docs/method.md §4).

    The predicted displacement must match the observed one on joints confident in both frames.

    Args:
        pred_t, pred_h: [B, J, 2] normalised predictions for the current and the history frame.
        gt_t, gt_h: [B, J, 3] normalised keypoints with confidence.
    Returns:
        scalar mean over B x J x 2 of mask * (dpred - dgt)^2 with mask = [conf_t > 0.5 and conf_h > 0.5].
    """
    assert pred_t.shape == pred_h.shape and gt_t.shape == gt_h.shape and pred_t.shape[:2] == gt_t.shape[:2]
    mask = ((gt_t[..., 2] > 0.5) & (gt_h[..., 2] > 0.5)).to(pred_t.dtype)[..., None]
    d_pred = pred_t - pred_h
    d_gt = gt_t[..., :2] - gt_h[..., :2]
    return (mask * (d_pred - d_gt) ** 2).mean()


def teacher_loss(
    kp2d: torch.Tensor,
    kp2d_teacher: torch.Tensor,
    j3d: torch.Tensor,
    j3d_teacher: torch.Tensor,
    rotmat: torch.Tensor,
    rotmat_teacher: torch.Tensor,
    betas: torch.Tensor,
    betas_teacher: torch.Tensor,
    weights: tuple[float, float, float, float] = (5.0, 5.0, 1.0, 0.001),
) -> torch.Tensor:
    """Mean-teacher consistency over all 49 joints, without root alignment (docs/method.md §4).

    `5 MSE(2D) + 5 MSE(3D) + 1 MSE(R) + 0.001 MSE(beta)`; the teacher's tensors are detached here so that no
    gradient can reach the teacher whatever the caller passes.

    Args:
        kp2d, kp2d_teacher: [B, 49, 2]; j3d, j3d_teacher: [B, 49, 3]; rotmat(s): [B, 24, 3, 3]; betas: [B, 10].
        weights: (2D, 3D, pose, betas).
    """
    w2d, w3d, wpose, wbeta = weights
    return (
        w2d * F.mse_loss(kp2d, kp2d_teacher.detach())
        + w3d * F.mse_loss(j3d, j3d_teacher.detach())
        + wpose * F.mse_loss(rotmat, rotmat_teacher.detach())
        + wbeta * F.mse_loss(betas, betas_teacher.detach())
    )


def feature_cosine_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """1 - cosine similarity of two flattened features (the dynamic-step rule of docs/method.md §7), as a float."""
    cos = F.cosine_similarity(before.flatten()[None], after.flatten()[None], dim=1, eps=1e-12)
    return float(1.0 - cos)
