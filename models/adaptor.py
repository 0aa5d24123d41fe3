"""DynaBOA online adaptation (docs/method.md §3-7), with no file I/O and no printing.

One `Adaptor` serves every entry point (the 3DPW benchmark, internet videos, the webcam). Per frame `step(frame)`:

1. teacher forward on the frame (no grad): the teacher loss target, and the pooled feature used as the retrieval
   key (the teacher is 90% the student, so its nearest cluster is the student's; with the teacher off, a no-grad
   student forward gives the key instead);
2. lower level at theta: one batched forward of [frame, exemplar], loss = frame + labelled; the gradient gives the
   probe theta' = theta - fastlr * g (first order: g is a constant; second order: differentiated through, as BOA).
   The frame's `fc1_iter3` feature of this forward is the dynamic rule's "before" feature (no separate pass);
3. upper level at theta': one batched forward of [frame, new exemplar, history frame], loss = frame + teacher +
   motion + labelled, backward to theta, Adam step, teacher EMA;
4. a no-grad forward at the new theta on the frame: the dynamic rule's "after" feature and, when no further step
   follows, the frame's prediction. While 1 - cos(before, after) > threshold and fewer than `optim_steps` extra steps
   were taken: a single-level step at theta (batched forward of [frame, exemplar, history], teacher forward, backward,
   Adam, EMA) and another no-grad check forward.

Passes per frame, and why Adam is the fused implementation and the EMA one `_foreach_lerp_`: docs/method.md §12. Only
parameters with `requires_grad` are adapted (`freeze_unadapted` applies a preset's scope).

Motion history is a ring buffer of the last `interval` frames of the current track, reset whenever the track changes
(the original keeps every frame forever and pairs frames across tracks, docs/method.md §11 items 6-7). The motion
loss is active from the track's frame `interval` on (the original starts one frame later, docs/method.md §11 item 9).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
from typing import Any, Callable, ContextManager, Hashable

import torch

from config import AdaptConfig
from models import losses, robust, teacher3d
from models.adapt_types import ExemplarBatch, ExemplarSource, Frame, Runtime, StepResult, _Clock  # noqa: F401 (re-exported)
from models.hmr import HMR, HMROutput
from models.meta import NonFiniteGradientError, all_finite, inner_step
from models.prior import pose_prior_loss, shape_prior_loss
from utils.constants import GT_SLICE, OP_SLICE
from utils.geometry import project_to_crop

ADAM_IMPLS: dict[str, dict[str, bool]] = {"fused": {"fused": True}, "foreach": {"foreach": True},
                                          "loop": {"foreach": False}}


def _scalar(t: torch.Tensor) -> float:
    """A loss as a plain float for logging (no graph kept)."""
    return float(t.detach())



class Adaptor:
    """Online adaptation of an HMR model, one frame at a time (batch size 1).

    Args:
        model: the student HMR (adapted in place). It is kept in eval mode (dropout off), as the original. Only its
            parameters with `requires_grad` adapt.
        smpl: neutral SMPL module giving `.joints [B,49,3]` and `.vertices`.
        cfg: hyper-parameters (`config.AdaptConfig`).
        pose_prior: GMM prior module, or None to drop the pose prior.
        exemplars: the labelled source database, or None for source-free adaptation.
        runtime: precision, memory format, Adam implementation and profiling (`Runtime()` when None).
    """

    def __init__(self, model: HMR, smpl: torch.nn.Module, cfg: AdaptConfig,
                 pose_prior: torch.nn.Module | None = None, exemplars: ExemplarSource | None = None,
                 runtime: Runtime | None = None) -> None:
        self.runtime = runtime or Runtime()
        if self.runtime.adam not in ADAM_IMPLS:
            raise ValueError(f"unknown Adam implementation {self.runtime.adam!r}; expected one of {list(ADAM_IMPLS)}")
        if self.runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model, self.smpl, self.cfg = model.eval(), smpl, cfg
        # the rates the steps use: the configured ones times the base model's factor, applied here only
        scale = cfg.lr_scale * (cfg.adapt_every if cfg.budget_rates else 1)
        self.lr, self.fastlr = cfg.lr * scale, cfg.fastlr * scale  # --budget-rates: x K (pipelines/budget.py)
        self.device = next(model.parameters()).device
        self.pose_prior = pose_prior
        self.exemplars = exemplars if cfg.retrieval else None
        self.block = GT_SLICE if cfg.keypoint_block == "gt" else OP_SLICE
        self._initial_state = copy.deepcopy(model.state_dict())
        self._clock: _Clock | None = None
        # diagnostics: called as inspector(level, weighted loss terms, parameters the loss was computed at) before
        # each level's terms are summed (None: nothing is called; pipelines/diagnose.py sets it)
        self.inspector: Callable[[str, dict[str, torch.Tensor], dict[str, torch.Tensor]], None] | None = None
        self.reset()

    # ----------------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the base model: weights, Adam state, teacher and history."""
        self.model.load_state_dict(self._initial_state)
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=self.lr,
                                          betas=(self.cfg.beta1, self.cfg.beta2), **ADAM_IMPLS[self.runtime.adam])
        self.teacher = None
        self._ema: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        if self.cfg.use_meanteacher:
            self.teacher = copy.deepcopy(self.model).requires_grad_(False)
            self.teacher.train(self.cfg.teacher_dropout)
            teacher_params = dict(self.teacher.named_parameters())
            self._ema = ([teacher_params[n] for n in self.params], list(self.params.values()))
        self.history: collections.deque[Frame] = collections.deque(maxlen=max(self.cfg.interval, 1))
        self.track_id: Hashable | None = None
        self._base = [self._initial_state[n] for n in self.params]  # the soft reset's target
        self.tracks = robust.TrackPriors(self.cfg.track_shape_weight, self.cfg.bone_ratio_weight)
        self.landmarks = teacher3d.LandmarkTarget(self.cfg.landmark_weight, self.cfg.landmark_flip_deg,
                                                  self.cfg.landmark_2d_gate)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume the stream: weights, optimiser, teacher, history."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "history": [dataclasses.astuple(f) for f in self.history],
            "track_id": self.track_id,
            **self.tracks.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the rates in force are this adaptor's (a resume may change --lr)
            group["lr"], group["betas"] = self.lr, (self.cfg.beta1, self.cfg.beta2)
        if self.teacher is not None and state["teacher"] is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.history.clear()
        self.history.extend(Frame(*f) for f in state["history"])
        self.track_id = state["track_id"]
        self.tracks.load_state_dict(state)

    # ----------------------------------------------------------------------------------------------------------
    def step(self, frame: Frame, adapt: bool = True) -> StepResult:
        """Adapt on one frame, then predict it with the final weights; `adapt` False only predicts it (a frame a
        budgeted schedule skips: `pipelines.budget`), its history and track statistics kept as for any frame."""
        assert frame.image.dim() == 4 and frame.image.shape[0] == 1, frame.image.shape
        assert frame.keypoints.shape == (1, 49, 3), frame.keypoints.shape
        self._clock = _Clock(self.device) if self.runtime.profile else None
        with self._section("total"):
            result = self._step(frame, adapt)
        result.profile = self._clock.times if self._clock is not None else None
        return result

    def _step(self, frame: Frame, adapt: bool = True) -> StepResult:
        if frame.track_id != self.track_id:
            self.history.clear()
            self.track_id = frame.track_id
        passes = {"forward": 0, "backward": 0}
        kp = frame.keypoints[:, self.block]
        usable = bool(torch.isfinite(frame.keypoints).all()) and bool((kp[..., 2] > 0).any())
        result = None
        if self.cfg.adapt and usable and adapt:
            try:
                result = self._adapt(frame, passes)
            except NonFiniteGradientError as err:
                result = self._predict(frame, passes, updated=False, reason=str(err))
        if result is None:
            reason = None if not self.cfg.adapt else "no usable keypoints" if not usable else "not scheduled"
            result = self._predict(frame, passes, updated=False, reason=reason)
        if result.updated:
            robust.anchor_toward_base(self.params.values(), self._base, self.cfg.anchor_rate)
        self.tracks.observe(frame.track_id, result.output.pred_betas[:1], result.joints[:1, GT_SLICE])
        self.history.append(Frame(frame.image.detach(), torch.nan_to_num(frame.keypoints.detach()), frame.track_id))
        return result

    def _section(self, name: str) -> ContextManager[None]:
        """Times the block into the frame's profile when profiling; costs nothing otherwise."""
        return self._clock(name) if self._clock is not None else contextlib.nullcontext()

    # ----------------------------------------------------------------------------------------------------------
    def _adapt(self, frame: Frame, passes: dict[str, int]) -> StepResult:
        cfg = self.cfg
        logs: dict[str, float] = {}
        with self._section("step"):
            teacher_out, key = self._teacher_forward(frame, passes)
            frame, gated = self._gate(frame, teacher_out)
            if (cfg.landmark_flip_skip and teacher_out is not None and frame.landmarks is not None  # else no SMPL
                    and self.landmarks.flipped(frame.landmarks,
                                               self.smpl(**teacher_out.smpl_params()).joints[:, GT_SLICE])):
                return self._predict(frame, passes, updated=False, reason="landmarks flipped")  # teacher3d.py
            if cfg.use_boa:
                before = self._bilevel(frame, teacher_out, key, passes, logs)
            else:  # one level at theta (docs/method.md §3; the `fast` preset adds the teacher loss to it)
                loss, before = self._level_loss(frame, self.params, key, teacher_out, "lower", passes, logs)
                self._apply(loss, passes)
            check = self._check_forward(frame, passes)
        level = "upper" if cfg.use_boa else "lower"
        steps, reason, changes = 0, None, []
        change = losses.feature_cosine_change(before, check.features["fc1_iter3"])
        dynamic = cfg.use_boa and cfg.dynamic_boa
        while steps < cfg.fixed_steps or (dynamic and change > cfg.cos_sim_threshold and steps < cfg.optim_steps):
            changes.append(change)
            with self._section("dynamic"):
                try:
                    before, check = self._extra_step(frame, key, level, passes, logs)
                except NonFiniteGradientError as err:  # keep the steps already taken; stop here
                    reason = f"dynamic step {steps + 1}: {err}"
                    break
                steps += 1
            change = losses.feature_cosine_change(before, check.features["fc1_iter3"])
        result = self._result(check, frame, passes, True, steps, reason, logs)
        result.feature_changes = changes + [change]
        result.gated_joints = gated
        return result

    def _gate(self, frame: Frame, teacher_out: HMROutput | None) -> tuple[Frame, int]:
        """The frame with keypoints far from the teacher's projection gated (`outlier_gate`), and how many were."""
        if self.cfg.outlier_gate <= 0 or teacher_out is None:
            return frame, 0
        with torch.no_grad():
            reference = project_to_crop(self.smpl(**teacher_out.smpl_params()).joints, teacher_out.pred_cam)
        keypoints, gated = robust.gate_outliers(frame.keypoints, reference, self.cfg.outlier_gate)
        return dataclasses.replace(frame, keypoints=keypoints), gated

    def _extra_step(self, frame: Frame, key: torch.Tensor | None, level: str, passes: dict[str, int],
                    logs: dict[str, float]) -> tuple[torch.Tensor, HMROutput]:
        """One single-level step at theta (a dynamic or fixed extra step): the level's loss, Adam, EMA, and the check
        forward; returns the fc1_iter3 feature before the step and the check forward's output."""
        teacher_out, _ = self._teacher_forward(frame, passes, need_key=False)
        loss, before = self._level_loss(frame, self.params, key, teacher_out, level, passes, logs)
        self._apply(loss, passes)
        return before, self._check_forward(frame, passes)

    def _bilevel(self, frame: Frame, teacher_out: HMROutput | None, key: torch.Tensor, passes: dict[str, int],
                 logs: dict[str, float]) -> torch.Tensor:
        """Lower-level probe then upper-level Adam step; returns the frame's fc1_iter3 feature at theta."""
        cfg = self.cfg
        probed = self.params
        before = None
        for _ in range(max(cfg.inner_step, 1)):
            low, feat = self._level_loss(frame, probed, key, teacher_out, "lower", passes, logs)
            before = feat if before is None else before
            self._require_finite(low, "lower-level loss")
            probed = inner_step(low, probed, self.fastlr, first_order=cfg.first_order,
                                scale=self._probe_scale() if cfg.probe == "adam" else None)
            passes["backward"] += 1
        up, _ = self._level_loss(frame, probed, key, teacher_out, "upper", passes, logs)
        self._apply(up, passes)
        return before

    def _probe_scale(self) -> dict[str, torch.Tensor] | None:
        """Per-weight divisors of the `adam` probe: sqrt of the upper optimizer's bias-corrected second moment (+ its
        eps), so the probe moves each weight by about fastlr whatever the gradient's scale; None before the first
        Adam step (that probe is the plain SGD one)."""
        state = self.optimizer.state
        scale = {}
        for name, p in self.params.items():
            st = state.get(p)
            if not st or "exp_avg_sq" not in st:
                return None
            step = float(st["step"])
            scale[name] = (st["exp_avg_sq"] / (1 - self.cfg.beta2 ** step)).sqrt_().add_(1e-8)
        return scale

    def _level_loss(self, frame: Frame, params: dict[str, torch.Tensor], key: torch.Tensor,
                    teacher_out: HMROutput | None, level: str, passes: dict[str, int],
                    logs: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
        """The lower- or upper-level loss at `params`, from one batched forward of [frame, exemplars, history].

        Returns the loss and the frame's detached `fc1_iter3` feature of that forward.
        """
        cfg = self.cfg
        lower = level == "lower"
        use_frame = cfg.use_frame_losses_lower if lower else cfg.use_frame_losses_upper
        temporal = cfg.use_temporal_losses_lower if lower else cfg.use_temporal_losses_upper
        mixtrain = (cfg.lower_level_mixtrain if lower else cfg.upper_level_mixtrain) and self.exemplars is not None
        hist = self.history[0] if (temporal and cfg.use_motion and len(self.history) >= cfg.interval) else None
        ex = None
        if mixtrain:
            with self._section("retrieval"):
                ex = self.exemplars.retrieve(key, cfg.sample_num)
        images = [frame.image] + ([ex.images] if ex is not None else []) + ([hist.image] if hist else [])
        out = self._forward(params, torch.cat(images), passes)
        joints = self.smpl(**out.smpl_params()).joints
        kp2d = project_to_crop(joints, out.pred_cam)
        terms: dict[str, torch.Tensor] = {}  # weighted terms of this level's loss
        if use_frame:
            terms.update(self._frame_terms(out, kp2d, frame, level, logs))
            terms.update(self.tracks.terms(frame.track_id, out.pred_betas[:1], joints[:1, GT_SLICE]))
            terms.update(self.landmarks.terms(frame.landmarks, frame.keypoints[:, GT_SLICE], joints[:1, GT_SLICE],
                                              logs))
        if temporal and teacher_out is not None:
            t_joints = self.smpl(**teacher_out.smpl_params()).joints
            t_loss = losses.teacher_loss(kp2d[:1], project_to_crop(t_joints, teacher_out.pred_cam), joints[:1],
                                         t_joints, out.pred_rotmat[:1], teacher_out.pred_rotmat, out.pred_betas[:1],
                                         teacher_out.pred_betas)
            terms["teacher"] = cfg.teacherloss_weight * t_loss
            logs[f"{level}/teacher"] = _scalar(t_loss)
        if hist is not None:
            m_loss = losses.motion_loss(kp2d[:1, self.block], kp2d[-1:, self.block],
                                        frame.keypoints[:, self.block], hist.keypoints[:, self.block])
            terms["motion"] = cfg.motionloss_weight * m_loss
            logs[f"{level}/motion"] = _scalar(m_loss)
        if ex is not None:
            n = ex.images.shape[0]
            rows = slice(1, 1 + n)
            parts = self._labelled_terms(out, joints[rows], kp2d[rows], rows, ex)
            terms.update({f"exemplar_{k}": cfg.labelloss_weight * v for k, v in parts.items()})
            logs[f"{level}/labelled"] = _scalar(sum(parts.values()))
        if self.inspector is not None:
            self.inspector(level, terms, params)
        total = sum(terms.values(), joints.new_zeros(()))
        logs[f"{level}/total"] = _scalar(total)
        return total, out.features["fc1_iter3"][:1].detach()

    def _frame_terms(self, out: HMROutput, kp2d: torch.Tensor, frame: Frame, level: str,
                     logs: dict[str, float]) -> dict[str, torch.Tensor]:
        """The frame's weighted 2D reprojection, shape prior and (when present) pose prior terms."""
        cfg = self.cfg
        l2d = losses.keypoint_2d_loss(kp2d[:1, self.block], frame.keypoints[:, self.block])
        terms = {"kp2d": cfg.s2dloss_weight * l2d, "shape_prior": cfg.shape_prior_weight *
                 shape_prior_loss(out.pred_betas[:1])}
        if self.pose_prior is not None:
            terms["pose_prior"] = cfg.pose_prior_weight * pose_prior_loss(self.pose_prior, out.pred_rotmat[:1])
        logs[f"{level}/kp2d"] = _scalar(l2d)
        return terms

    def _labelled_terms(self, out: HMROutput, joints: torch.Tensor, kp2d: torch.Tensor, rows: slice,
                        ex: ExemplarBatch) -> dict[str, torch.Tensor]:
        """SPIN's loss with the original's weights `5 L2d + 5 L3d + 0.001 MSE(beta) + 1 MSE(R)` on the exemplar rows
        (docs/method.md §6), on the 24 GT joints, by term."""
        parts = losses.SpinWeights().apply(losses.spin_terms(out.pred_rotmat[rows], out.pred_betas[rows], joints, kp2d,
                                                             ex.keypoints, ex.joints3d, ex.pose, ex.betas))
        return {"2d": parts["kp2d"], "3d": parts["kp3d"], "shape": parts["betas"], "pose": parts["pose"]}

    # ----------------------------------------------------------------------------------------------------------
    def _run(self, module: torch.nn.Module, images: torch.Tensor, features: bool = False,
             params: dict[str, torch.Tensor] | None = None) -> HMROutput:
        """`module` (with `params` in place of its own, if given) on `images`, under the runtime's precision and
        memory format; the outputs the algorithm reads come back as float32."""
        if self.runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.runtime.bf16
                    else contextlib.nullcontext())
        with autocast:
            if params is None:
                out = module(images, return_features=features)
            else:
                out = torch.func.functional_call(module, params, (images,), {"return_features": features})
        if not self.runtime.bf16:
            return out
        named = dict(out.features)
        if "fc1_iter3" in named:
            named["fc1_iter3"] = named["fc1_iter3"].float()
        return HMROutput(out.pred_rotmat.float(), out.pred_pose6d.float(), out.pred_betas.float(),
                         out.pred_cam.float(), out.feature.float(), named)

    def _forward(self, params: dict[str, torch.Tensor], images: torch.Tensor, passes: dict[str, int]) -> HMROutput:
        passes["forward"] += 1
        return self._run(self.model, images, True, None if params is self.params else params)

    def _teacher_forward(self, frame: Frame, passes: dict[str, int], need_key: bool = True
                         ) -> tuple[HMROutput | None, torch.Tensor | None]:
        """The teacher's prediction on the frame and the retrieval key (its pooled feature)."""
        cfg = self.cfg
        with torch.no_grad(), self._section("teacher"):
            if self.teacher is not None and (cfg.use_temporal_losses_upper or cfg.use_temporal_losses_lower):
                passes["forward"] += 1
                out = self._run(self.teacher, frame.image)
                return out, out.feature
            if need_key and self.exemplars is not None:
                passes["forward"] += 1
                return None, self._run(self.model, frame.image).feature
        return None, None

    def _check_forward(self, frame: Frame, passes: dict[str, int]) -> HMROutput:
        with torch.no_grad():
            passes["forward"] += 1
            return self._run(self.model, frame.image, features=True)

    def _apply(self, loss: torch.Tensor, passes: dict[str, int]) -> None:
        """Backward to theta and one Adam step, unless the loss or a gradient is non-finite; then the EMA."""
        self._require_finite(loss, "loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        passes["backward"] += 1
        if not all_finite([p.grad for p in self.params.values() if p.grad is not None]):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteGradientError("non-finite gradient")
        with self._section("adam"):
            self.optimizer.step()
            self._update_teacher()

    def _update_teacher(self) -> None:
        """teacher = alpha * teacher + (1 - alpha) * student on the adapted parameters, after every Adam step
        (docs/method.md §5); the others are equal in both and stay so."""
        if self.teacher is None:
            return
        with torch.no_grad():
            torch._foreach_lerp_(self._ema[0], self._ema[1], 1.0 - self.cfg.alpha)

    @staticmethod
    def _require_finite(loss: torch.Tensor, what: str) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteGradientError(f"non-finite {what}")

    def _predict(self, frame: Frame, passes: dict[str, int], updated: bool, reason: str | None) -> StepResult:
        return self._result(self._check_forward(frame, passes), frame, passes, updated, 0, reason, {})

    def _result(self, out: HMROutput, frame: Frame, passes: dict[str, int], updated: bool, steps: int,
                reason: str | None, logs: dict[str, float]) -> StepResult:
        with torch.no_grad(), self._section("output"):
            smpl_out = self.smpl(**out.smpl_params())
        return StepResult(output=out, vertices=smpl_out.vertices, joints=smpl_out.joints, updated=updated,
                          dynamic_steps=steps, skipped_reason=reason, losses=logs, passes=passes)
