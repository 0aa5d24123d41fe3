"""models.teacher3d: the detector's 3D pose as a target (loss invariances, the gate) and its hook in the adaptor."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from config import AdaptConfig, DataPaths
from models import teacher3d
from models.adaptor import Adaptor, Frame
from models.hmr import HMR
from models.smpl import build_smpl
from utils.constants import GT_SLICE


def skeleton(seed: int = 0) -> torch.Tensor:
    """[1, 12, 3] a plausible standing body facing the camera (-z), metres, in the camera frame (y down)."""
    g = torch.Generator().manual_seed(seed)
    # R ankle, R knee, R hip, L hip, L knee, L ankle, R wrist, R elbow, R shoulder, L shoulder, L elbow, L wrist
    # (the person's right is the image's left when facing the camera: x < 0)
    base = torch.tensor([[-0.1, 0.9, 0.0], [-0.1, 0.5, 0.02], [-0.1, 0.0, 0.0], [0.1, 0.0, 0.0], [0.1, 0.5, 0.02],
                         [0.1, 0.9, 0.0], [-0.35, 0.0, -0.1], [-0.3, -0.25, 0.0], [-0.18, -0.5, 0.0],
                         [0.18, -0.5, 0.0], [0.3, -0.25, 0.0], [0.35, 0.0, -0.1]])
    return (base + 0.03 * torch.randn(12, 3, generator=g))[None]


def rotation(axis: str, degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {"x": torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis].float()


def world_of(body: torch.Tensor, vis: float = 1.0) -> torch.Tensor:
    """[1, 33, 4] world landmarks holding `body` [1, 12, 3] at MediaPipe's body indices."""
    world = torch.zeros(1, 33, 4)
    world[0, list(teacher3d.MP_BODY), :3] = body[0]
    world[0, list(teacher3d.MP_BODY), 3] = vis
    return world


def test_loss_is_zero_for_a_matching_pose_and_invariant_to_scale_rotation_translation():
    pred, other = skeleton(0), skeleton(1)
    conf = torch.ones(1, 12)
    assert float(teacher3d.landmark_loss(pred, pred, conf)) < 1e-10
    moved = 0.3 * pred @ (rotation("y", 70) @ rotation("x", 25)).T + torch.tensor([1.0, -2.0, 3.0])
    assert float(teacher3d.landmark_loss(pred, moved, conf)) < 1e-10
    base = teacher3d.landmark_loss(pred, other, conf)
    assert float(base) > 1e-4
    for scale, rot in ((2.5, rotation("z", 140)), (0.01, rotation("y", -100) @ rotation("x", 60))):
        varied = teacher3d.landmark_loss(pred, scale * other @ rot.T - 0.7, conf)
        assert torch.allclose(varied, base, rtol=1e-4, atol=1e-9)


def test_loss_is_confidence_weighted_and_pulls_the_prediction_toward_the_landmarks():
    pred, other = skeleton(0).requires_grad_(True), skeleton(1)
    conf = torch.ones(1, 12)
    conf[0, 6] = 0.0  # the right wrist does not count
    far = other.clone()
    far[0, 6] += 5.0
    a, b = teacher3d.landmark_loss(pred, other, conf), teacher3d.landmark_loss(pred, far, conf)
    assert torch.allclose(a, b, atol=1e-7)
    a.backward()
    assert pred.grad[0, 6].abs().max() == 0 and pred.grad.abs().sum() > 0
    step = pred.detach() - 0.2 * pred.grad
    assert float(teacher3d.landmark_loss(step, other, conf)) < float(a.detach())


def test_gate_drops_a_front_back_flipped_frame_and_keeps_a_good_one():
    pred = skeleton(0)
    conf = torch.ones(1, 12)
    kp = torch.cat([pred[..., :2], torch.ones(1, 12, 1)], -1)
    ok, reason = teacher3d.landmark_gate(pred * 0.8, conf, pred, kp, 90.0, 0.3)
    assert bool(ok.all()) and reason == ""
    # the detector's front/back confusion: it sees a back view, so the image-left limbs are labelled left and the
    # depth is reversed: the person's left/right labels swapped and z mirrored
    swap = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6]
    flipped = pred[:, swap] * torch.tensor([1.0, 1.0, -1.0])
    assert teacher3d.facing_angle(flipped, pred).item() > 150
    ok, reason = teacher3d.landmark_gate(flipped, conf, pred, None, 90.0, 0.3)
    assert not bool(ok.any()) and reason == "front/back flip"
    # a body turned by 180 degrees about the vertical is also refused (its landmarks face away from the prediction)
    ok, _ = teacher3d.landmark_gate(pred @ rotation("y", 180).T, conf, pred, None, 90.0, 0.0)
    assert not bool(ok.any())


def test_gate_drops_landmarks_that_disagree_with_the_2d_keypoints_or_are_unsure():
    pred = skeleton(0)
    conf = torch.ones(1, 12)
    kp = torch.cat([pred[..., :2] * 3 + 0.2, torch.ones(1, 12, 1)], -1)  # other units and position: agrees
    assert teacher3d.disagreement_2d(pred, kp).item() < 1e-4
    swapped = kp[:, [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6]]  # the 2D keypoints see the limbs the other way round
    ok, reason = teacher3d.landmark_gate(pred, conf, pred, swapped, 0.0, 0.3)
    assert not bool(ok.any()) and reason == "disagrees with the 2D keypoints"
    unsure = conf.clone()
    unsure[0, teacher3d.L_HIP] = 0.1
    ok, reason = teacher3d.landmark_gate(pred, unsure, pred, kp, 90.0, 0.3)
    assert not bool(ok.any()) and reason == "too few confident landmarks"


def test_body_landmarks_takes_the_mediapipe_indices_and_zeroes_non_finite_joints():
    body = skeleton(2)
    world = world_of(body, 0.9)
    world[0, 28, 0] = float("nan")  # MediaPipe's right ankle
    lm, conf = teacher3d.body_landmarks(world)
    assert torch.allclose(lm[0, 1:], body[0, 1:]) and conf[0, 0] == 0 and torch.allclose(conf[0, 1:], torch.tensor(0.9))


# --- the adaptor's hook -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smpl(body_root):
    return build_smpl(DataPaths.from_root(body_root), "neutral")


def _adaptor(smpl, **overrides) -> Adaptor:
    torch.manual_seed(0)
    cfg = dataclasses.replace(AdaptConfig(), retrieval=False, lower_level_mixtrain=False, upper_level_mixtrain=False,
                              use_boa=False, **overrides)
    return Adaptor(HMR("resnet18"), smpl, cfg)


def _frame(adaptor: Adaptor, flip: bool) -> Frame:
    """A frame whose 2D keypoints and landmarks are the current prediction's (a pose the landmarks agree with), the
    landmarks turned to face away when `flip`."""
    g = torch.Generator().manual_seed(5)
    image = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        out = adaptor.model(image)
        joints = adaptor.smpl(**out.smpl_params()).joints[:, GT_SLICE][:, :12]
    body = joints @ rotation("y", 180).T if flip else joints @ rotation("x", 20).T
    kp = torch.cat([torch.rand(1, 49, 2, generator=g) - 0.5, torch.ones(1, 49, 1)], -1)
    kp[0, 25:37, :2] = joints[0, :, :2] * 0.8
    return Frame(image, kp, 0, world_of(body.float()))


@pytest.mark.parametrize("flip", [False, True])
def test_adaptor_uses_the_landmarks_unless_gated(smpl, flip):
    ad = _adaptor(smpl, landmark_weight=10.0, landmark_2d_gate=0.0)
    res = ad.step(_frame(ad, flip))
    assert res.updated
    assert ("landmarks" in res.losses) is not flip and ("landmarks/gated" in res.losses) is flip
    assert (ad.landmarks.used, ad.landmarks.gated) == ((0, 1) if flip else (1, 0))


def test_adaptor_landmark_term_off_by_default_and_without_landmarks(smpl):
    ad = _adaptor(smpl)
    res = ad.step(_frame(ad, False))
    assert "landmarks" not in res.losses and ad.landmarks.used == 0
    ad = _adaptor(smpl, landmark_weight=10.0)
    frame = _frame(ad, False)
    res = ad.step(dataclasses.replace(frame, landmarks=None))
    assert res.updated and "landmarks" not in res.losses
    state = ad.state_dict()  # the history keeps frames without their landmarks; the state round-trips
    ad.load_state_dict(state)
    assert np.isfinite(res.losses["lower/total"])


def test_torso_normal_of_a_body_facing_the_camera_points_at_it():
    assert teacher3d.torso_normal(skeleton(0))[0, 2] < -0.9  # camera frame: z away from the camera, y down


def test_real_checks_bone_sum_and_summary():
    from pipelines.real_checks import bone_sum, summarize_checks

    body = skeleton(0)[0].numpy()[None]
    assert np.isclose(bone_sum(2.0 * body)[0], 2.0 * bone_sum(body)[0])
    checks = {"torso_deg": np.array([5.0, 10.0, 30.0, np.nan]), "kp2d_pct": np.array([1.0, 2.0, 3.0, np.nan]),
              "size_ratio": np.array([1.0, 1.0, 1.2, np.nan])}
    out = summarize_checks(checks)
    assert out["frames_with_landmarks"] == 3 and np.isclose(out["torso_within_20_deg"], 2 / 3)
    assert out["kp2d_pct_median"] == 2.0 and out["size_ratio_median"] == 1.0


def test_flip_skip_takes_no_update_on_a_flipped_frame(smpl):
    ad = _adaptor(smpl, landmark_weight=10.0, landmark_flip_skip=True)
    res = ad.step(_frame(ad, True))
    assert not res.updated and res.skipped_reason == "landmarks flipped"
    ad = _adaptor(smpl, landmark_weight=10.0, landmark_flip_skip=True, landmark_2d_gate=0.0)
    assert ad.step(_frame(ad, False)).updated
