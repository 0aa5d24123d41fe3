"""models.robust and its options in the adaptor: soft reset toward the base, outlier gating, one shape per track."""
from __future__ import annotations

import dataclasses

import torch

from config import AdaptConfig, DataPaths
from models import robust
from models.adaptor import Adaptor, Frame
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
    shapes = robust.TrackShape()
    assert shapes.target("a") is None
    shapes.add("a", torch.ones(1, 10))
    shapes.add("a", torch.full((1, 10), 3.0))
    shapes.add("b", torch.zeros(1, 10))
    assert torch.allclose(shapes.target("a"), torch.full((1, 10), 2.0))
    assert torch.allclose(shapes.target("b"), torch.zeros(1, 10))
    restored = robust.TrackShape()
    restored.load_state_dict(shapes.state_dict())
    assert torch.equal(restored.target("a"), shapes.target("a"))
    assert float(robust.track_shape_loss(torch.ones(1, 10), torch.zeros(1, 10))) == 1.0


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
    assert ad.shapes.counts == {"a": 1}
    seen = {}
    ad.inspector = lambda level, terms, params: seen.update(terms)
    ad.step(make_frame(1, track="a"))
    assert "track_shape" in seen and ad.shapes.counts == {"a": 2}
    assert "track_shapes" in ad.state_dict()
