"""Rotation and camera geometry in the SPIN / DynaBOA conventions.

Shapes are given as `[B, ...]`; all functions are batched and differentiable. References are to
`docs/method.md` (§2.2 6-D decoding, §2.4 camera).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.constants import FOCAL_LENGTH, IMG_RES


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """Decode the 6-D rotation representation exactly as the original (docs/method.md §2.2).

    The six numbers of a joint are read as a row-major 3x2 matrix `[a1x, a2x, a1y, a2y, a1z, a2z]`; the columns
    a1, a2 are Gram-Schmidt orthonormalised into b1, b2, and b3 = b1 x b2. Any other reading decodes the released
    weights and the mean pose wrongly.

    Args:
        x: [..., 6k] with a multiple of 6 entries in the last axis, e.g. [B, 144] for 24 joints.
    Returns:
        [N, 3, 3] rotation matrices (columns b1, b2, b3), N = x.numel() // 6.
    """
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1, dim=1)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Inverse of `rot6d_to_rotmat`: the first two columns, flattened row-major.

    Args:
        rotmat: [N, 3, 3].
    Returns:
        [N, 6] such that `rot6d_to_rotmat(rotmat_to_rot6d(R)) == R` for rotations R.
    """
    return rotmat[:, :, :2].reshape(-1, 6)


def batch_rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle to rotation matrix, stable at and near zero angle.

    Args:
        axis_angle: [N, 3] (radians, axis times angle).
    Returns:
        [N, 3, 3].
    """
    angle_sq = (axis_angle * axis_angle).sum(dim=1, keepdim=True)  # [N, 1]
    angle = torch.sqrt(angle_sq.clamp_min(1e-16))
    small = angle_sq < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with their Taylor series near 0
    sinc = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / angle_sq.clamp_min(1e-16))
    kx, ky, kz = axis_angle.unbind(dim=1)
    zeros = torch.zeros_like(kx)
    skew = torch.stack((zeros, -kz, ky, kz, zeros, -kx, -ky, kx, zeros), dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + sinc[:, :, None] * skew + cosc[:, :, None] * (skew @ skew)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix to axis-angle, stable near 0 and near pi.

    Uses the quaternion route with the largest-component branch (Shepperd), so every angle in [0, pi] is accurate
    to float precision. The returned angle lies in [0, pi].

    Args:
        rotmat: [N, 3, 3].
    Returns:
        [N, 3].
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(rotmat))


def rotmat_to_quaternion(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix [N, 3, 3] to unit quaternion [N, 4] as (w, x, y, z) with w >= 0."""
    m = rotmat
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # four candidate squared magnitudes, pick the largest for stability
    cands = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=1
    )
    best = cands.argmax(dim=1)
    s = torch.sqrt(cands.gather(1, best[:, None]).squeeze(1).clamp_min(1e-12)) * 2  # 4 * |component|
    q_w = torch.stack(
        (s / 4, (m[:, 2, 1] - m[:, 1, 2]) / s, (m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 1, 0] - m[:, 0, 1]) / s), 1
    )
    q_x = torch.stack(
        ((m[:, 2, 1] - m[:, 1, 2]) / s, s / 4, (m[:, 0, 1] + m[:, 1, 0]) / s, (m[:, 0, 2] + m[:, 2, 0]) / s), 1
    )
    q_y = torch.stack(
        ((m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 0, 1] + m[:, 1, 0]) / s, s / 4, (m[:, 1, 2] + m[:, 2, 1]) / s), 1
    )
    q_z = torch.stack(
        ((m[:, 1, 0] - m[:, 0, 1]) / s, (m[:, 0, 2] + m[:, 2, 0]) / s, (m[:, 1, 2] + m[:, 2, 1]) / s, s / 4), 1
    )
    quat = torch.stack((q_w, q_x, q_y, q_z), dim=1)  # [N, 4 candidates, 4]
    quat = quat.gather(1, best[:, None, None].expand(-1, 1, 4)).squeeze(1)
    quat = torch.where(quat[:, :1] < 0, -quat, quat)
    return F.normalize(quat, dim=1)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternion [N, 4] (w, x, y, z) to axis-angle [N, 3], stable at zero angle."""
    w = quat[:, 0].clamp(-1.0, 1.0)
    xyz = quat[:, 1:]
    sin_half = xyz.norm(dim=1)
    angle = 2.0 * torch.atan2(sin_half, w)  # in [0, 2pi) ; w >= 0 gives [0, pi]
    small = sin_half < 1e-6
    # angle / sin(angle/2) -> 2 near zero
    factor = torch.where(small, 2.0 / w.clamp_min(1e-6), angle / sin_half.clamp_min(1e-12))
    return xyz * factor[:, None]


def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal_length: float | torch.Tensor = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection `p = f * (R X + t)_xy / (R X + t)_z + c`.

    Args:
        points: [B, N, 3] metres.
        translation: [B, 3].
        focal_length: scalar or [B] (or [B, 2] for fx, fy) pixels.
        camera_center: [B, 2] pixels; zero (crop-centred coordinates) when None.
        rotation: [B, 3, 3]; identity when None.
    Returns:
        [B, N, 2] pixels.
    """
    assert points.dim() == 3 and points.shape[-1] == 3, points.shape
    if rotation is not None:
        points = torch.einsum("bij,bnj->bni", rotation, points)
    points = points + translation[:, None, :]
    proj = points[..., :2] / points[..., 2:3]
    focal = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    if focal.dim() == 1:
        focal = focal[:, None, None]
    elif focal.dim() == 2:
        focal = focal[:, None, :]
    proj = proj * focal
    if camera_center is not None:
        proj = proj + camera_center[:, None, :]
    return proj


def weak_cam_to_translation(
    cam: torch.Tensor, focal_length: float = FOCAL_LENGTH, img_res: int = IMG_RES
) -> torch.Tensor:
    """Weak-perspective crop camera (s, tx, ty) to the perspective translation of docs/method.md §2.4.

    `t = [tx, ty, 2 f / (img_res * s + 1e-9)]`.

    Args:
        cam: [B, 3].
    Returns:
        [B, 3] metres.
    """
    return torch.stack((cam[:, 1], cam[:, 2], 2 * focal_length / (img_res * cam[:, 0] + 1e-9)), dim=-1)


def project_to_crop(joints: torch.Tensor, cam: torch.Tensor, img_res: int = IMG_RES) -> torch.Tensor:
    """Project model-space joints with the weak-perspective crop camera to normalised crop coordinates.

    This is the original's `projection`: perspective projection with focal 5000, principal point 0, translation
    from `weak_cam_to_translation`, divided by img_res / 2, giving roughly [-1, 1].

    Args:
        joints: [B, J, 3] metres (SMPL model space, no translation).
        cam: [B, 3] (s, tx, ty).
    Returns:
        [B, J, 2] normalised coordinates.
    """
    trans = weak_cam_to_translation(cam, FOCAL_LENGTH, img_res)
    return perspective_projection(joints, trans, FOCAL_LENGTH) / (img_res / 2.0)


def crop_cam_to_full_cam(
    cam: torch.Tensor,
    center: torch.Tensor,
    box_size: torch.Tensor,
    img_w: torch.Tensor | float,
    img_h: torch.Tensor | float,
    focal_length: torch.Tensor | float,
) -> torch.Tensor:
    """Full-image perspective translation from the crop camera (docs/method.md §2.4).

    `t = [tx + 2 (cx - W/2) / (s b), ty + 2 (cy - H/2) / (s b), 2 f / (s b)]` for a camera of focal f at the image
    centre. The small off-axis rotation of an off-centre box is ignored (as CLIFF-style conversions do).

    Args:
        cam: [B, 3] (s, tx, ty) of the 224-px crop.
        center: [B, 2] box centre (pixels, full image).
        box_size: [B] square box side b = 200 * scale (pixels).
        img_w, img_h: image size (scalars or [B]).
        focal_length: full-image focal length (scalar or [B]) pixels.
    Returns:
        [B, 3] translation of the SMPL model-space body in the full-image camera frame.
    """
    s, tx, ty = cam.unbind(dim=-1)
    sb = s * box_size + 1e-9
    img_w = torch.as_tensor(img_w, dtype=cam.dtype, device=cam.device)
    img_h = torch.as_tensor(img_h, dtype=cam.dtype, device=cam.device)
    focal = torch.as_tensor(focal_length, dtype=cam.dtype, device=cam.device)
    return torch.stack(
        (tx + 2 * (center[:, 0] - img_w / 2) / sb, ty + 2 * (center[:, 1] - img_h / 2) / sb, 2 * focal / sb),
        dim=-1,
    )


def full_image_camera(cam: torch.Tensor, center, scale, img_size: tuple[float, float], focal_length: float = 0.0
                      ) -> tuple[torch.Tensor, float]:
    """The crop camera of a person box as a perspective camera of the whole frame (`crop_cam_to_full_cam`).

    Args:
        cam: [B, 3] crop camera (s, tx, ty).
        center: [2] or [B, 2] box centre (pixels); scale: box side / 200 (scalar or [B]).
        img_size: (W, H) of the frame.
        focal_length: pixels; 0 takes EasyMocap's guess 1.2 min(W, H) (no intrinsics known).
    Returns:
        ([B, 3] translation of the model-space body, the focal length used), on `cam`'s dtype and device.
    """
    width, height = img_size
    focal = focal_length or 1.2 * min(width, height)
    center = torch.as_tensor(center, dtype=cam.dtype, device=cam.device).reshape(-1, 2)
    box = torch.as_tensor(scale, dtype=torch.float64).reshape(-1) * 200.0
    return crop_cam_to_full_cam(cam, center, box.to(cam.dtype).to(cam.device), width, height, focal), focal


def crop_cam_to_orig_weak_cam(
    cam: torch.Tensor, center: torch.Tensor, box_size: torch.Tensor, img_w: float, img_h: float
) -> torch.Tensor:
    """Weak-perspective camera of the full image, as the original's `convert_crop_cam_to_orig_img`.

    Returns:
        [B, 4] (sx, sy, tx', ty') with `sx = s b / W`, `sy = s b / H`, `tx' = tx + 2 (cx - W/2) / (s b)`,
        `ty' = ty + 2 (cy - H/2) / (s b)`.
    """
    s, tx, ty = cam.unbind(dim=-1)
    sx = s * box_size / img_w
    sy = s * box_size / img_h
    txp = (center[:, 0] - img_w / 2) / (img_w / 2) / sx + tx
    typ = (center[:, 1] - img_h / 2) / (img_h / 2) / sy + ty
    return torch.stack((sx, sy, txp, typ), dim=-1)
