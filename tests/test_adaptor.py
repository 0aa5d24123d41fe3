"""models.adaptor: the DynaBOA step on a tiny HMR (ResNet-18, 64 px) and the procedural SMPL body."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from config import AdaptConfig, DataPaths
from models.adaptor import Adaptor, ExemplarBatch, Frame, Runtime
from models.hmr import HMR
from models.presets import ADAPTED_SCOPES, PRESETS, apply_preset, freeze_unadapted
from models.prior import MaxMixturePrior
from models.smpl import build_smpl

RES = 64


class FakeBank:
    """Returns fixed labelled exemplars and records the retrieval keys."""

    def __init__(self, dim: int):
        g = torch.Generator().manual_seed(3)
        self.dim, self.calls = dim, []
        self.batch = ExemplarBatch(
            images=torch.randn(4, 3, RES, RES, generator=g),
            keypoints=torch.cat([torch.rand(4, 49, 2, generator=g) * 2 - 1, torch.ones(4, 49, 1)], -1),
            pose=torch.randn(4, 72, generator=g) * 0.2,
            betas=torch.zeros(4, 10),
            joints3d=torch.cat([torch.randn(4, 24, 3, generator=g) * 0.3, torch.ones(4, 24, 1)], -1),
        )

    def retrieve(self, feature: torch.Tensor, n: int) -> ExemplarBatch:
        assert feature.shape == (1, self.dim)
        self.calls.append(n)
        return ExemplarBatch(*(t[:n] for t in dataclasses.astuple(self.batch)))


@pytest.fixture(scope="module")
def smpl(body_root):
    return build_smpl(DataPaths.from_root(body_root), "neutral")


@pytest.fixture(scope="module")
def prior():
    rng = np.random.default_rng(0)
    return MaxMixturePrior(rng.normal(0, 0.1, (2, 69)), np.stack([np.eye(69) * 0.05] * 2), np.array([0.5, 0.5]))


def make_adaptor(smpl, prior, bank=True, **overrides) -> Adaptor:
    torch.manual_seed(0)
    model = HMR("resnet18")
    cfg = dataclasses.replace(AdaptConfig(), **overrides)
    return Adaptor(model, smpl, cfg, pose_prior=prior, exemplars=FakeBank(512) if bank else None)


def make_frame(i: int = 0, track=0, conf: float = 1.0) -> Frame:
    g = torch.Generator().manual_seed(100 + i)
    kp = torch.cat([torch.rand(1, 49, 2, generator=g) * 1.2 - 0.6, torch.full((1, 49, 1), conf)], -1)
    return Frame(torch.randn(1, 3, RES, RES, generator=g), kp, track)


def weights(adaptor: Adaptor) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in adaptor.model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_base_model_mode_predicts_without_updating(smpl, prior):
    ad = make_adaptor(smpl, prior, adapt=False)
    before = weights(ad)
    frame = make_frame()
    res = ad.step(frame)
    assert not res.updated and same(before, weights(ad))
    with torch.no_grad():
        direct = ad.model(frame.image)
    assert torch.allclose(res.output.pred_rotmat, direct.pred_rotmat)
    assert res.vertices.shape == (1, 6890, 3) and res.joints.shape == (1, 49, 3)


def test_dynaboa_step_updates_and_counts_passes(smpl, prior):
    ad = make_adaptor(smpl, prior, lr=1e-3, fastlr=1e-3, cos_sim_threshold=0.0, optim_steps=2)
    before = weights(ad)
    res = ad.step(make_frame())
    assert res.updated and not same(before, weights(ad))
    k = res.dynamic_steps
    assert k == 2  # threshold 0 forces every allowed extra step
    assert res.passes == {"forward": 4 + 3 * k, "backward": 2 + k}
    # one exemplar at the lower level, one at the upper level, one per dynamic step
    assert ad.exemplars.calls == [1] * (2 + k)


def test_boa_without_dynamic_steps_and_plain_finetuning(smpl, prior):
    boa = make_adaptor(smpl, prior, dynamic_boa=False, cos_sim_threshold=0.0)
    res = boa.step(make_frame())
    assert res.dynamic_steps == 0 and res.passes == {"forward": 4, "backward": 2}
    plain = make_adaptor(smpl, prior, use_boa=False)
    res = plain.step(make_frame())
    # teacher key forward, one training forward, one prediction forward; one backward
    assert res.updated and res.passes == {"forward": 3, "backward": 1}


def test_teacher_is_an_ema_of_the_student(smpl, prior):
    ad = make_adaptor(smpl, prior, lr=1e-3, dynamic_boa=False)
    teacher_before = {k: v.clone() for k, v in ad.teacher.state_dict().items()}
    ad.step(make_frame())
    student = ad.model.state_dict()
    name = "fc1.weight"
    expected = 0.1 * teacher_before[name] + 0.9 * student[name]
    assert torch.allclose(ad.teacher.state_dict()[name], expected, atol=1e-7)
    assert not ad.teacher.training  # dropout off by default (documented choice)


def test_frame_without_keypoints_is_predicted_without_update(smpl, prior):
    ad = make_adaptor(smpl, prior, lr=1e-3)
    before = weights(ad)
    res = ad.step(make_frame(conf=0.0))
    assert not res.updated and res.skipped_reason == "no usable keypoints" and same(before, weights(ad))
    nan_frame = make_frame()
    nan_frame.keypoints[0, 30, 0] = float("nan")
    assert not ad.step(nan_frame).updated and same(before, weights(ad))


def test_non_finite_loss_leaves_weights_and_optimizer_state(smpl, prior):
    ad = make_adaptor(smpl, prior, lr=1e-3, dynamic_boa=False)
    ad.step(make_frame(0))
    before = weights(ad)
    opt_before = {k: v.clone() for k, v in ad.optimizer.state[ad.params["fc1.weight"]].items()}
    bad = make_frame(1)
    bad.image[0, 0, 5, 5] = float("nan")
    res = ad.step(bad)
    assert not res.updated and "non-finite" in res.skipped_reason
    assert same(before, weights(ad))
    opt_after = ad.optimizer.state[ad.params["fc1.weight"]]
    assert all(torch.equal(opt_before[k], opt_after[k]) for k in opt_before)


def test_motion_history_is_per_track(smpl, prior):
    ad = make_adaptor(smpl, prior, dynamic_boa=False, interval=3)
    seen = []
    for i in range(5):
        seen.append("upper/motion" in ad.step(make_frame(i, track="a")).losses)
    assert seen == [False, False, False, True, True]  # active from the track's frame `interval` on
    assert "upper/motion" not in ad.step(make_frame(9, track="b")).losses  # a new track starts empty
    assert len(ad.history) == 1


def test_short_track_and_source_free(smpl, prior):
    ad = make_adaptor(smpl, prior, bank=False, retrieval=False, dynamic_boa=False)
    for i in range(2):  # shorter than the motion interval
        res = ad.step(make_frame(i, track=i))
        assert res.updated and "upper/labelled" not in res.losses


def test_reset_restores_the_base_model(smpl, prior):
    ad = make_adaptor(smpl, prior, lr=1e-3)
    before = weights(ad)
    ad.step(make_frame())
    ad.reset()
    assert same(before, weights(ad)) and len(ad.optimizer.state) == 0 and len(ad.history) == 0


def test_adaptation_lowers_the_2d_error_on_a_repeated_frame(smpl, prior):
    ad = make_adaptor(smpl, prior, bank=False, retrieval=False, lr=1e-4, fastlr=1e-4, dynamic_boa=False,
                      use_motion=False)
    frame = make_frame(7)
    first = ad.step(frame).losses["lower/kp2d"]
    for _ in range(5):  # Adam(0.5, 0.9) on a random-init net oscillates later; 6 steps descend steadily
        last = ad.step(frame).losses["lower/kp2d"]
    assert last < 0.75 * first


# ----------------------------------------------------------------------------------------------------------------
# speed options: presets, profile, precision, memory format, Adam implementation
# ----------------------------------------------------------------------------------------------------------------


def test_fast_preset_adapts_only_layer4_and_the_regressor(smpl, prior):
    torch.manual_seed(0)
    model = HMR("resnet18")
    adapted = freeze_unadapted(model, PRESETS["fast"].adapted)
    assert adapted == sum(p.numel() for n, p in model.named_parameters() if n.startswith(ADAPTED_SCOPES["layer4"]))
    ad = Adaptor(model, smpl, apply_preset(AdaptConfig(lr=1e-3), "fast"), pose_prior=prior, exemplars=FakeBank(512))
    before = weights(ad)
    res = ad.step(make_frame())
    # one level at theta: teacher forward, the frame's forward, check forward; one backward
    assert res.updated and res.passes == {"forward": 3, "backward": 1} and res.dynamic_steps == 0
    after = weights(ad)
    assert "lower/teacher" in res.losses and "lower/labelled" not in res.losses and ad.exemplars is None
    frozen = [k for k in before if not k.startswith(ADAPTED_SCOPES["layer4"]) and not k.startswith("init_")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["layer4.0.conv1.weight"], after["layer4.0.conv1.weight"])
    assert not torch.equal(before["fc1.weight"], after["fc1.weight"])
    assert len(ad.optimizer.state) == len(ad.params) == len([n for n, _ in model.named_parameters()
                                                             if n.startswith(ADAPTED_SCOPES["layer4"])])
    teacher = ad.teacher.state_dict()
    assert all(torch.equal(teacher[k], after[k]) for k in frozen)


def test_finetune_preset_is_one_level_with_exemplars_on_every_weight(smpl, prior):
    """`--preset finetune` is the benchmark's "online fine-tuning": one update at theta with the labelled exemplar."""
    assert PRESETS["finetune"].adapted == "all"
    cfg = apply_preset(AdaptConfig(lr=1e-3, cos_sim_threshold=0.0), "finetune")
    results = []
    for adapt in (cfg, AdaptConfig(lr=1e-3, cos_sim_threshold=0.0, use_boa=False)):
        torch.manual_seed(0)
        ad = Adaptor(HMR("resnet10"), smpl, adapt, pose_prior=prior, exemplars=FakeBank(512))
        results.append((ad.step(make_frame()), weights(ad)))
    (res, after), (_, plain) = results
    assert res.updated and res.dynamic_steps == 0 and res.passes["backward"] == 1  # threshold 0: no extra step
    assert "lower/labelled" in res.losses and "upper/total" not in res.losses
    assert all(torch.equal(after[k], plain[k]) for k in after)


def test_apply_preset_keeps_explicit_options():
    cfg = apply_preset(AdaptConfig(dynamic_boa=True), "fast", keep={"dynamic_boa"})
    assert cfg.dynamic_boa and not cfg.use_boa and cfg.use_temporal_losses_lower
    assert apply_preset(AdaptConfig(), "paper") == AdaptConfig()
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset(AdaptConfig(), "turbo")


def test_profile_is_off_by_default_and_sections_add_up(smpl, prior):
    ad = make_adaptor(smpl, prior, cos_sim_threshold=0.0, optim_steps=1)
    assert ad.step(make_frame()).profile is None
    ad.runtime.profile = True
    res = ad.step(make_frame(1))
    prof = res.profile
    assert set(prof) == {"total", "step", "dynamic", "retrieval", "adam", "teacher", "output"}
    assert prof["step"] + prof["dynamic"] + prof["output"] <= prof["total"]
    assert prof["retrieval"] + prof["adam"] + prof["teacher"] <= prof["step"] + prof["dynamic"]


def step_twice(smpl, prior, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Joints of the second of two adapted frames and the change of every adapted weight."""
    torch.manual_seed(0)
    ad = Adaptor(HMR("resnet18"), smpl, AdaptConfig(lr=1e-4, dynamic_boa=False), prior, FakeBank(512),
                 runtime=runtime)
    start = torch.cat([p.detach().flatten() for p in ad.params.values()])
    ad.step(make_frame(0))
    joints = ad.step(make_frame(1)).joints
    return joints, torch.cat([p.detach().flatten() for p in ad.params.values()]) - start


@pytest.fixture(scope="module")
def float32_run(smpl, prior):
    return step_twice(smpl, prior, Runtime())


@pytest.mark.parametrize("runtime, atol", [(Runtime(adam="loop"), 1e-6), (Runtime(channels_last=True), 1e-4),
                                           (Runtime(bf16=True), 2e-2)])
def test_runtime_options_change_results_only_by_rounding(smpl, prior, float32_run, runtime, atol):
    """fused vs for-loop Adam, NHWC vs NCHW, bfloat16 autocast vs float32: the same joints (metres) after two frames
    within rounding (bfloat16 keeps 8 bits of mantissa: about 1 cm a metre from the root), and the same updates
    (Adam's first steps move a weight by about lr * sign(gradient), so a rounding-level change of a near-zero
    gradient may flip a few elements: compare the mean)."""
    ref_joints, ref_update = float32_run
    joints, update = step_twice(smpl, prior, runtime)
    assert torch.allclose(joints, ref_joints, atol=atol)
    assert ref_update.abs().mean() > 1e-5  # the weights did move (lr 1e-4, two Adam steps)
    assert (update - ref_update).abs().mean() < 0.1 * ref_update.abs().mean()


def test_fixed_steps_give_fine_tuning_that_many_extra_updates(smpl, prior):
    """`fixed_steps` N: N extra single-level steps on every frame whatever the feature change, each one backward."""
    ad = make_adaptor(smpl, prior, use_boa=False, fixed_steps=3)
    res = ad.step(make_frame())
    assert res.updated and res.dynamic_steps == 3 and res.passes["backward"] == 4
    assert len(res.feature_changes) == 4  # one change per check forward
    assert ad.optimizer.state[next(iter(ad.params.values()))]["step"] == 4


def test_lr_scale_multiplies_both_rates(smpl, prior):
    """The probe and the Adam step at lr_scale 10 equal those at rates set ten times higher by hand."""
    a = make_adaptor(smpl, prior, lr_scale=10.0, dynamic_boa=False)
    b = make_adaptor(smpl, prior, lr=3e-5, fastlr=8e-5, dynamic_boa=False)
    for i in range(2):
        a.step(make_frame(i)), b.step(make_frame(i))
    assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(a.params.values(), b.params.values()))


def test_adam_probe_divides_the_gradient_by_the_optimizer_second_moment(smpl, prior):
    """No Adam state yet: no divisor (the first probe is plain SGD). After a frame: sqrt(exp_avg_sq / (1 - beta2^t))
    + eps per weight; and `inner_step` with a divisor moves each weight by lr * g / divisor."""
    from models.meta import inner_step

    ad = make_adaptor(smpl, prior, probe="adam", dynamic_boa=False)
    assert ad._probe_scale() is None
    ad.step(make_frame(0))
    scale = ad._probe_scale()
    for name, p in ad.params.items():
        st = ad.optimizer.state[p]
        want = (st["exp_avg_sq"] / (1 - ad.cfg.beta2 ** float(st["step"]))).sqrt() + 1e-8
        assert torch.allclose(scale[name], want)
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (w ** 2).sum()  # gradient 2w
    out = inner_step(loss, {"w": w}, 0.5, scale={"w": torch.tensor([2.0, 4.0, 1.0])})
    assert torch.allclose(out["w"], torch.tensor([1.0 - 0.5 * 2 / 2, 2.0 - 0.5 * 4 / 4, 3.0 - 0.5 * 6 / 1]))


def test_inspector_sees_every_weighted_term(smpl, prior):
    """The inspector receives each level's weighted terms; they sum to the level's logged total."""
    ad = make_adaptor(smpl, prior, dynamic_boa=False)
    seen = {}
    ad.inspector = lambda level, terms, params: seen.setdefault(level, {k: float(v) for k, v in terms.items()})
    for i in range(6):  # past the motion interval
        res = ad.step(make_frame(i))
    assert {"kp2d", "shape_prior", "pose_prior", "exemplar_2d", "exemplar_3d", "exemplar_pose",
            "exemplar_shape"} <= set(seen["lower"])
    assert {"teacher"} <= set(seen["upper"])
    assert res.losses["upper/total"] > 0
