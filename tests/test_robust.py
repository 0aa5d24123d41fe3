"""models.robust and its options in the adaptor: soft reset toward the base, outlier gating, one shape per track."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from config import AdaptConfig, DataPaths
from models import robust
from models.adaptor import Adaptor
from models.hmr import HMR
from models.smpl import build_smpl
from tests.test_adaptor import make_frame


def test_anchor_moves_weights_toward_the_base_by_the_rate():
    w, base = [torch.tensor([1.0, 3.0])], [torch.tensor([0.0, 1.0])]
    robust.anchor_toward_base(w, base, 0.25)
    assert torch.allclose(w[0], torch.tensor([0.75, 2.5]))
    robust.anchor_toward_base(w, base, 0.0)  # off: unchanged
    assert torch.allclose(w[0], torch.tensor([0.75, 2.5]))


def test_a_swapped_joint_is_gated_and_the_others_kept():
    ref = torch.tensor([[[0.2, 0.0], [-0.2, 0.0], [0.0, 0.5]]])  # e.g. right wrist, left wrist, head
    kp = torch.tensor([[[-0.21, 0.01, 1.0], [0.19, 0.0, 1.0], [0.02, 0.48, 0.5]]])  # the wrists swapped
    gated, n = robust.gate_outliers(kp, ref, 0.25)
    assert n == 2 and gated[0, :, 2].tolist() == [0.0, 0.0, 0.5]
    assert torch.equal(gated[..., :2], kp[..., :2])
    same, n = robust.gate_outliers(kp, ref, 0.0)
    assert n == 0 and same is kp


def test_one_shape_per_track_is_the_running_mean():
    shapes = robust.TrackMean()
    assert shapes.target("a") is None
    shapes.add("a", torch.ones(1, 10))
    shapes.add("a", torch.full((1, 10), 3.0))
    shapes.add("b", torch.zeros(1, 10))
    assert torch.allclose(shapes.target("a"), torch.full((1, 10), 2.0))
    assert torch.allclose(shapes.target("b"), torch.zeros(1, 10))
    restored = robust.TrackMean()
    restored.load_state_dict(shapes.state_dict())
    assert torch.equal(restored.target("a"), shapes.target("a"))
    assert float(robust.track_loss(torch.ones(1, 10), torch.zeros(1, 10))) == 1.0


def _adaptor(body_root, **overrides) -> Adaptor:
    torch.manual_seed(0)
    smpl = build_smpl(DataPaths.from_root(body_root), "neutral")
    cfg = dataclasses.replace(AdaptConfig(), retrieval=False, lower_level_mixtrain=False, upper_level_mixtrain=False,
                              dynamic_boa=False, **overrides)
    return Adaptor(HMR("resnet10"), smpl, cfg)


def test_adaptor_soft_reset_pulls_the_update_back_by_the_rate(body_root):
    """With anchor_rate r the weights after a frame are (1 - r) of the plain update's plus r of the base's."""
    plain, anchored = _adaptor(body_root), _adaptor(body_root, anchor_rate=0.5)
    frame = make_frame(0)
    plain.step(frame), anchored.step(frame)
    for name, p in anchored.params.items():
        base = anchored._initial_state[name]
        assert torch.allclose(p, 0.5 * plain.params[name] + 0.5 * base, atol=1e-6)


def test_adaptor_gates_far_keypoints_and_learns_one_shape_per_track(body_root):
    ad = _adaptor(body_root, outlier_gate=1e-6, track_shape_weight=1.0)
    res = ad.step(make_frame(0, track="a"))
    assert res.gated_joints > 0  # every confident joint is further than 1e-6 from the teacher's projection
    assert ad.tracks.shapes.counts == {"a": 1}
    seen = {}
    ad.inspector = lambda level, terms, params: seen.update(terms)
    ad.step(make_frame(1, track="a"))
    assert "track_shape" in seen and ad.tracks.shapes.counts == {"a": 2}
    assert "track_shapes" in ad.state_dict()


def test_bone_ratios_are_lengths_over_the_torso_and_ignore_scale():
    joints = torch.zeros(1, 24, 3)
    joints[0, 12] = torch.tensor([0.0, 0.5, 0.0])  # neck 0.5 above the pelvis (joint 14 at the origin)
    joints[0, 0] = torch.tensor([0.0, -0.4, 0.0])  # right ankle 0.4 below the right knee (joint 1 at the origin)
    ratios = robust.bone_ratios(joints)
    assert ratios.shape == (1, len(robust.BONES))
    assert abs(float(ratios[0, 0]) - 0.8) < 1e-6  # right shin / torso
    assert torch.allclose(robust.bone_ratios(3.0 * joints), ratios)
    assert float(robust.track_loss(ratios, ratios)) == 0.0


def test_adaptor_pulls_bone_ratios_toward_the_track_mean(body_root):
    ad = _adaptor(body_root, bone_ratio_weight=1.0)
    seen = {}
    ad.inspector = lambda level, terms, params: seen.update(terms)
    ad.step(make_frame(0, track="a"))
    assert "bone_ratio" not in seen and ad.tracks.bones.counts == {"a": 1}  # no target on the track's first frame
    ad.step(make_frame(1, track="a"))
    assert "bone_ratio" in seen and ad.tracks.bones.counts == {"a": 2}
    restored = _adaptor(body_root, bone_ratio_weight=1.0)
    restored.load_state_dict(ad.state_dict())
    assert torch.equal(restored.tracks.bones.target("a"), ad.tracks.bones.target("a"))


def test_pw3d_stream_keeps_detector_confidences_as_weights(world):
    """`--kp-confidence weights`: the same joints and boxes as the binary mask, each weighted by its confidence."""
    from config import DataPaths as Paths
    from datasets.pw3d import PW3DStream

    paths = Paths.from_root(world)
    binary = PW3DStream(paths.dataset_extras, paths.pw3d_root, 64, "op_j2d")
    weights = PW3DStream(paths.dataset_extras, paths.pw3d_root, 64, "op_j2d", "weights")
    b, w = binary.cols["kp"], weights.cols["kp"]
    assert np.array_equal(b[..., :2], w[..., :2]) and np.array_equal(binary.cols["scale"], weights.cols["scale"])
    assert np.array_equal(b[..., 2] > 0, w[..., 2] > 0)
    soft = w[..., 2][w[..., 2] > 0]
    assert soft.size and (soft > 0.3).all() and (soft <= 1).all() and (soft < 1).any()
