"""The embedded detector's 3D pose as a label-free 3D target of adaptation (docs/method.md §14).

MediaPipe Pose also returns `pose_world_landmarks`: 33 points in metres, centred between the hips, in a frame whose
axes follow the camera's (x right, y down, z away from the camera), from a network trained on real people. Here its
12 body joints (hips, knees, ankles, shoulders, elbows, wrists) become a target for the predicted joints:

- `landmark_loss`: the landmarks are aligned onto the prediction by a weighted similarity (Umeyama: scale, proper
  rotation, translation), and the loss is the confidence-weighted mean squared distance (m^2) between the predicted
  joints and the aligned landmarks. The alignment is a constant of the gradient (computed without it), so the
  prediction is pulled toward the detector's pose *shape* while its size and global orientation are left to the 2D
  keypoints. The value is invariant to the landmarks' scale, rotation and translation and 0 for a matching pose.
- `landmark_gate`: a frame's landmarks are dropped when they face the other way from the reference prediction
  (torso normals more than `flip_deg` apart in the camera frame: the detector's front/back confusion on a faceless
  body), when their orthographic projection disagrees with the frame's 2D keypoints (RMS residual of a 2D
  similarity fit, over the keypoints' RMS spread, above `max_2d`), or when fewer than `MIN_JOINTS` body joints and
  not both shoulders and hips are confident.
"""
from __future__ import annotations

import math

import torch

# MediaPipe landmark of each of the first 12 joints of the 24-joint GT block (utils.constants.GT_24_NAMES): R ankle,
# R knee, R hip, L hip, L knee, L ankle, R wrist, R elbow, R shoulder, L shoulder, L elbow, L wrist (MediaPipe's
# left/right are the person's, as the GT block's)
MP_BODY = (28, 26, 24, 23, 25, 27, 16, 14, 12, 11, 13, 15)
NUM_BODY = len(MP_BODY)  # = the first 12 joints of the GT block
R_HIP, L_HIP, R_SHOULDER, L_SHOULDER = 2, 3, 8, 9
TORSO = (R_HIP, L_HIP, R_SHOULDER, L_SHOULDER)
CONF_THRESHOLD = 0.3
MIN_JOINTS = 6


def body_landmarks(world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 33, 4] world landmarks (metres + visibility) -> [B, 12, 3] body joints and [B, 12] confidences (0 for a
    non-finite joint)."""
    assert world.shape[-2:] == (33, 4), world.shape
    body = world[:, list(MP_BODY)]
    finite = torch.isfinite(body).all(dim=-1)
    return torch.nan_to_num(body[..., :3]), torch.where(finite, torch.nan_to_num(body[..., 3]).clamp(0, 1), 0.0)


def similarity_align(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`source` [B, J, D] moved onto `target` [B, J, D] by the weighted similarity (scale, proper rotation,
    translation) that minimises sum_j w_j |s R x_j + t - y_j|^2 (Umeyama); weights [B, J] >= 0."""
    w = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-9)
    mu_x, mu_y = (w[..., None] * source).sum(1, keepdim=True), (w[..., None] * target).sum(1, keepdim=True)
    x, y = source - mu_x, target - mu_y
    cov = torch.einsum("bj,bjd,bje->bde", w, y, x)  # sum_j w_j y_j x_j^T
    u, sig, vt = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vt))
    fix = torch.ones_like(sig)
    fix[:, -1] = torch.where(sign == 0, torch.ones_like(sign), sign)
    rot = u @ torch.diag_embed(fix) @ vt
    var_x = (w * (x**2).sum(-1)).sum(1).clamp_min(1e-12)
    scale = (sig * fix).sum(-1) / var_x
    return scale[:, None, None] * x @ rot.transpose(1, 2) + mu_y


def landmark_loss(pred: torch.Tensor, landmarks: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """Per-row confidence-weighted mean squared distance (m^2) between the predicted joints and the landmarks
    aligned onto them by `similarity_align` (the alignment is computed without gradient).

    Args:
        pred: [B, 12, 3] predicted body joints (GT-block order), metres.
        landmarks: [B, 12, 3] the detector's joints in the same order, any scale, rotation and translation.
        conf: [B, 12] weights in [0, 1].
    Returns:
        [B] losses (0 for a row without weight).
    """
    with torch.no_grad():
        target = similarity_align(landmarks, pred.detach(), conf)
    dist = ((pred - target) ** 2).sum(-1)
    return (conf * dist).sum(1) / conf.sum(1).clamp_min(1e-9)


def torso_normal(joints: torch.Tensor) -> torch.Tensor:
    """[B, 12, 3] body joints -> [B, 3] unit normal of the torso (the way the chest faces, SMPL's and the camera's
    right-handed frames, y down: -z for a body facing the camera): across (person's left minus right, at shoulders
    and hips) x up (hips to shoulders)."""
    across = (joints[:, L_SHOULDER] - joints[:, R_SHOULDER]) + (joints[:, L_HIP] - joints[:, R_HIP])
    up = (joints[:, L_SHOULDER] + joints[:, R_SHOULDER]) - (joints[:, L_HIP] + joints[:, R_HIP])
    return torch.nn.functional.normalize(torch.cross(across, up, dim=-1), dim=-1)


def facing_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B] degrees between the torso normals of two [B, 12, 3] skeletons in one frame."""
    cos = (torso_normal(a) * torso_normal(b)).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def disagreement_2d(landmarks: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """[B] RMS residual of the landmarks' orthographic projection (x, y) fitted to the 2D keypoints by a 2D
    similarity, over the keypoints' RMS spread, on joints confident in both (inf with fewer than 3).

    Args:
        landmarks: [B, 12, 3] body landmarks; keypoints: [B, 12, 3] the frame's 2D keypoints (any units) + weight.
    """
    both = keypoints[..., 2] > 0
    w = both.to(keypoints.dtype)
    aligned = similarity_align(landmarks[..., :2], keypoints[..., :2], w)
    wn = w / w.sum(1, keepdim=True).clamp_min(1e-9)
    centre = (wn[..., None] * keypoints[..., :2]).sum(1, keepdim=True)
    spread = (wn * ((keypoints[..., :2] - centre) ** 2).sum(-1)).sum(1).sqrt()
    resid = (wn * ((aligned - keypoints[..., :2]) ** 2).sum(-1)).sum(1).sqrt()
    out = resid / spread.clamp_min(1e-9)
    return torch.where(both.sum(1) >= 3, out, torch.full_like(out, math.inf))


def landmark_gate(landmarks: torch.Tensor, conf: torch.Tensor, reference: torch.Tensor,
                  keypoints: torch.Tensor | None, flip_deg: float, max_2d: float) -> tuple[torch.Tensor, str]:
    """[B] bool: the rows whose landmarks may be used, and why the first refused row was refused ('' if none).

    Args:
        landmarks: [B, 12, 3]; conf: [B, 12].
        reference: [B, 12, 3] the current prediction's body joints in the camera frame (no gradient needed).
        keypoints: [B, 12, 3] the frame's 2D keypoints with weights, or None (no 2D check).
        flip_deg: largest angle between the torso normals (<= 0: no facing check); max_2d: largest
            `disagreement_2d` (<= 0: no 2D check).
    """
    confident = conf > CONF_THRESHOLD
    ok = (confident.sum(1) >= MIN_JOINTS) & confident[:, list(TORSO)].all(1)
    reason = "" if bool(ok.all()) else "too few confident landmarks"
    if flip_deg > 0:
        facing = facing_angle(landmarks, reference) <= flip_deg
        reason = reason or ("" if bool(facing.all()) else "front/back flip")
        ok &= facing
    if keypoints is not None and max_2d > 0:
        agrees = disagreement_2d(landmarks, keypoints) <= max_2d
        reason = reason or ("" if bool(agrees.all()) else "disagrees with the 2D keypoints")
        ok &= agrees
    return ok, reason


class LandmarkTarget:
    """The adaptor's landmark term (`AdaptConfig.landmark_weight`; 0 = off): weighted `landmark_loss` of the
    frame's world landmarks, for frames that carry them and pass `landmark_gate` (the reference is the level's own
    prediction, detached). `gated` counts the frames refused, `used` those that contributed."""

    def __init__(self, weight: float = 0.0, flip_deg: float = 90.0, max_2d: float = 0.3) -> None:
        self.weight, self.flip_deg, self.max_2d = weight, flip_deg, max_2d
        self.gated = self.used = 0

    @torch.no_grad()
    def flipped(self, world: torch.Tensor | None, joints24: torch.Tensor) -> bool:
        """Whether the frame's landmarks face more than `flip_deg` away from the reference joints [1, 24, 3] (False
        without landmarks, without a facing check or with too few confident torso landmarks)."""
        if world is None or self.flip_deg <= 0:
            return False
        lm, conf = body_landmarks(world.to(joints24.dtype))
        if not bool((conf[:, list(TORSO)] > CONF_THRESHOLD).all()):
            return False
        return bool((facing_angle(lm, joints24[:, :NUM_BODY]) > self.flip_deg).any())

    def terms(self, world: torch.Tensor | None, keypoints: torch.Tensor, joints24: torch.Tensor,
              logs: dict[str, float]) -> dict[str, torch.Tensor]:
        """{'landmarks': weighted loss} or {} (off, no landmarks, or gated).

        Args:
            world: [1, 33, 4] the frame's world landmarks, or None.
            keypoints: [1, 24, 3] the frame's GT-block 2D keypoints (normalised) with weights.
            joints24: [1, 24, 3] the prediction's GT-block joints (with gradient).
        """
        if self.weight <= 0 or world is None:
            return {}
        lm, conf = body_landmarks(world.to(joints24.dtype))
        pred = joints24[:, :NUM_BODY]
        ok, _ = landmark_gate(lm, conf, pred.detach(), keypoints[:, :NUM_BODY], self.flip_deg, self.max_2d)
        if not bool(ok.all()):
            self.gated += 1
            logs["landmarks/gated"] = 1.0
            return {}
        self.used += 1
        loss = landmark_loss(pred, lm, conf * (conf > CONF_THRESHOLD)).mean()
        logs["landmarks"] = float(loss.detach())
        return {"landmarks": self.weight * loss}
