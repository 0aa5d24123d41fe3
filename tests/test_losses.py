"""models.losses with values worked out by hand."""
from __future__ import annotations

import torch

from models import losses


def test_keypoint_2d_loss_counts_zero_confidence_in_the_mean():
    # 2 joints x 2 coords = 4 elements; joint 0 off by (1, 0) with conf 1 -> 1; joint 1 off by (3, 4), conf 0 -> 0
    pred = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    gt = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    assert torch.isclose(losses.keypoint_2d_loss(pred, gt), torch.tensor(1.0 / 4))
    gt[0, 1, 2] = 0.5  # now 0.5 * (9 + 16) = 12.5 joins: (1 + 12.5) / 4
    assert torch.isclose(losses.keypoint_2d_loss(pred, gt), torch.tensor(13.5 / 4))


def test_keypoint_3d_loss_is_hip_centred():
    torch.manual_seed(0)
    gt = torch.cat([torch.randn(2, 24, 3), torch.ones(2, 24, 1)], dim=-1)
    shifted = gt[..., :3] + torch.tensor([0.3, -1.0, 5.0])  # a global translation costs nothing
    assert losses.keypoint_3d_loss(shifted, gt) < 1e-10
    # moving one joint by 0.24 m (not a hip) adds 0.24^2 / (24*3*2 elements, B=2) = 0.0576 / 144
    moved = shifted.clone()
    moved[0, 0, 0] += 0.24
    assert torch.isclose(losses.keypoint_3d_loss(moved, gt), torch.tensor(0.0576 / 144), atol=1e-7)
    gt[0, 0, 3] = 0.0  # masked out again
    assert losses.keypoint_3d_loss(moved, gt) < 1e-10


def test_motion_loss_matches_displacements_on_joints_seen_twice():
    gt_h = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    gt_t = torch.tensor([[[0.2, 0.0, 1.0], [0.5, 0.5, 0.0]]])  # joint 1 unseen at t
    pred_h = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    pred_t = torch.tensor([[[1.1, 1.0], [9.0, 9.0]]])
    # joint 0: dpred = (0.1, 0), dgt = (0.2, 0) -> 0.01; joint 1 masked; mean over 4 elements
    assert torch.isclose(losses.motion_loss(pred_t, pred_h, gt_t, gt_h), torch.tensor(0.01 / 4))


def test_teacher_loss_weights_and_no_gradient_to_teacher():
    s2d, t2d = torch.zeros(1, 49, 2, requires_grad=True), torch.ones(1, 49, 2, requires_grad=True)
    s3d, t3d = torch.zeros(1, 49, 3), torch.zeros(1, 49, 3)
    r = torch.eye(3).expand(1, 24, 3, 3)
    b = torch.zeros(1, 10)
    loss = losses.teacher_loss(s2d, t2d, s3d, t3d, r, r, b, b)
    assert torch.isclose(loss, torch.tensor(5.0))  # 5 * mean((0 - 1)^2)
    loss.backward()
    assert t2d.grad is None and s2d.grad is not None


def test_feature_cosine_change():
    a = torch.tensor([[1.0, 0.0]])
    assert losses.feature_cosine_change(a, a * 3) < 1e-7
    assert abs(losses.feature_cosine_change(a, torch.tensor([[0.0, 2.0]])) - 1.0) < 1e-7


def test_camera_regulariser():
    assert torch.isclose(losses.camera_regulariser(torch.tensor([[0.0, 1.0, 1.0]])), torch.tensor(1.0))


def test_spin_terms_by_hand_and_only_on_rows_with_smpl():
    rotmat = torch.eye(3).expand(2, 24, 3, 3).clone()
    betas = torch.zeros(2, 10)
    joints = torch.zeros(2, 49, 3)
    kp2d = torch.zeros(2, 49, 2)
    gt_kp = torch.zeros(2, 49, 3)
    gt_kp[:, 25:, :2], gt_kp[:, 25:, 2] = 0.5, 1.0  # 2D error 0.5 on x and y of the 24 GT joints, conf 1
    gt_j3d = torch.cat([torch.zeros(2, 24, 3), torch.ones(2, 24, 1)], -1)
    gt_pose = torch.zeros(2, 72)
    gt_betas = torch.stack([torch.zeros(10), torch.ones(10)])  # only row 1 has a betas error
    terms = losses.spin_terms(rotmat, betas, joints, kp2d, gt_kp, gt_j3d, gt_pose, gt_betas)
    assert list(terms) == ["kp2d", "kp3d", "pose", "betas"]
    torch.testing.assert_close(terms["kp2d"], torch.tensor(0.25))
    torch.testing.assert_close(terms["kp3d"], torch.tensor(0.0))
    torch.testing.assert_close(terms["pose"], torch.tensor(0.0))
    torch.testing.assert_close(terms["betas"], torch.tensor(0.5))  # mean over both rows
    only_first = losses.spin_terms(rotmat, betas, joints, kp2d, gt_kp, gt_j3d, gt_pose, gt_betas,
                                   has_smpl=torch.tensor([True, False]))
    torch.testing.assert_close(only_first["betas"], torch.tensor(0.0))
    none = losses.spin_terms(rotmat, betas, joints, kp2d, gt_kp, gt_j3d, gt_pose, gt_betas,
                             has_smpl=torch.tensor([False, False]))
    assert none["pose"].item() == 0.0 and none["betas"].item() == 0.0
    weighted = losses.SpinWeights().apply(terms)  # the original's 5 / 5 / 1 / 0.001
    torch.testing.assert_close(weighted["kp2d"], torch.tensor(1.25))
    torch.testing.assert_close(weighted["betas"], torch.tensor(0.0005))
