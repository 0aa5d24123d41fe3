"""utils.geometry: rotations and cameras, with values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from utils import geometry as G


def test_rot6d_convention_reads_row_major_3x2():
    # x = [a1x, a2x, a1y, a2y, a1z, a2z]; a1 = e_y, a2 = e_z  =>  columns b1 = e_y, b2 = e_z, b3 = e_y x e_z = e_x
    x = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    expected = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert torch.allclose(G.rot6d_to_rotmat(x), expected)


def test_rot6d_gram_schmidt_and_roundtrip():
    torch.manual_seed(0)
    rot = G.rot6d_to_rotmat(torch.randn(7, 144))
    assert rot.shape == (7 * 24, 3, 3)
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand_as(rot), atol=1e-5)
    assert torch.allclose(torch.det(rot), torch.ones(rot.shape[0]), atol=1e-5)
    assert torch.allclose(G.rot6d_to_rotmat(G.rotmat_to_rot6d(rot)), rot, atol=1e-5)


def test_rodrigues_known_values():
    # 90 degrees about z maps x to y
    rot = G.batch_rodrigues(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    assert torch.allclose(rot[0] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(G.batch_rodrigues(torch.zeros(2, 3)), torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.5, 2.0, math.pi - 1e-4, math.pi])
def test_axis_angle_roundtrip_near_zero_and_pi(angle):
    torch.manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(16, 3, dtype=torch.float64), dim=1)
    aa = axis * angle
    back = G.rotmat_to_axis_angle(G.batch_rodrigues(aa))
    if angle > math.pi - 1e-3:  # axis sign is ambiguous at pi: compare rotations
        assert torch.allclose(G.batch_rodrigues(back), G.batch_rodrigues(aa), atol=1e-7)
    else:
        assert torch.allclose(back, aa, atol=1e-8)


def test_rodrigues_gradient_finite_at_zero():
    aa = torch.zeros(3, 3, requires_grad=True)
    G.batch_rodrigues(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_perspective_projection_by_hand():
    # point (0.1, -0.2, 0) with t = (0, 0, 10), f = 5000: p = 5000 * (0.1, -0.2) / 10 = (50, -100), plus centre
    pts = torch.tensor([[[0.1, -0.2, 0.0]]])
    out = G.perspective_projection(pts, torch.tensor([[0.0, 0.0, 10.0]]), 5000.0, torch.tensor([[112.0, 112.0]]))
    assert torch.allclose(out, torch.tensor([[[162.0, 12.0]]]))


def test_weak_cam_translation_and_crop_projection():
    # s = 0.9 => tz = 2*5000 / (224*0.9) = 49.603...; a point at the origin projects to (tx, ty) * 5000/tz / 112
    cam = torch.tensor([[0.9, 0.1, -0.2]])
    t = G.weak_cam_to_translation(cam)
    assert torch.allclose(t, torch.tensor([[0.1, -0.2, 10000 / 201.6]]))
    p = G.project_to_crop(torch.zeros(1, 1, 3), cam)
    # = f * t_xy / t_z / 112 = s * t_xy (weak perspective at depth 0)
    assert torch.allclose(p, torch.tensor([[[0.09, -0.18]]]), atol=1e-6)


def test_crop_cam_to_full_cam_consistent_with_crop_projection():
    """A joint projected with the full-image camera lands where the crop camera puts it, mapped to the image."""
    torch.manual_seed(2)
    joints = torch.randn(3, 5, 3) * 0.3
    cam = torch.tensor([[0.8, 0.05, 0.1], [1.1, -0.2, 0.0], [0.6, 0.0, 0.3]])
    center = torch.tensor([[300.0, 200.0], [640.0, 360.0], [100.0, 500.0]])
    box = torch.tensor([250.0, 400.0, 180.0])
    W, H, f = 1280.0, 720.0, 1500.0
    t_full = G.crop_cam_to_full_cam(cam, center, box, W, H, f)
    full = G.perspective_projection(joints, t_full, f, torch.tensor([[W / 2, H / 2]]).expand(3, 2))
    crop = G.project_to_crop(joints, cam)  # [-1, 1] in the crop
    crop_in_image = center[:, None, :] + crop * box[:, None, None] / 2
    # exact at depth 0; off-depth joints differ by the focal ratio of a 30 cm body: compare at depth 0 first
    flat = joints.clone()
    flat[..., 2] = 0
    full0 = G.perspective_projection(flat, t_full, f, torch.tensor([[W / 2, H / 2]]).expand(3, 2))
    crop0 = center[:, None, :] + G.project_to_crop(flat, cam) * box[:, None, None] / 2
    assert torch.allclose(full0, crop0, atol=1e-3)
    assert (full - crop_in_image).abs().max() < 0.05 * box.max()


def test_orig_weak_cam_matches_full_cam_offsets():
    cam = torch.tensor([[0.8, 0.05, 0.1]])
    center, box = torch.tensor([[300.0, 200.0]]), torch.tensor([250.0])
    weak = G.crop_cam_to_orig_weak_cam(cam, center, box, 1280.0, 720.0)
    full = G.crop_cam_to_full_cam(cam, center, box, 1280.0, 720.0, 1000.0)
    assert torch.allclose(weak[:, 2:], full[:, :2])
    assert torch.allclose(weak[:, :2], torch.tensor([[0.8 * 250 / 1280, 0.8 * 250 / 720]]))


def test_full_image_camera_default_focal_by_hand():
    # box of side 200 (scale 1) centred at (740, 360) in a 1280 x 720 frame, crop camera s = 2, tx = ty = 0:
    # s b = 400, t = [2 (740 - 640) / 400, 2 (360 - 360) / 400, 2 f / 400] with f = 1.2 * 720 = 864
    cam = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    t, focal = G.full_image_camera(cam, [740.0, 360.0], 1.0, (1280, 720))
    assert focal == pytest.approx(864.0)
    torch.testing.assert_close(t, torch.tensor([[0.5, 0.0, 4.32]], dtype=torch.float64))
    t, focal = G.full_image_camera(cam, [740.0, 360.0], 1.0, (1280, 720), focal_length=1000.0)
    assert focal == 1000.0 and t[0, 2].item() == pytest.approx(5.0)
