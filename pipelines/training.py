"""Training of the GroupNorm HMR base model on Human3.6M-format data (the library of `train_basemodel.py`).

The released base model was trained on Human3.6M alone with SPIN's losses and weights, without SMPLify
(docs/method.md §2.7). Here, per batch, with the neutral SMPL and the camera of the 224-px crop (as the
adaptor uses it, whatever the input size):

    loss = loss_scale * (5 L2d + 5 L3d + 1 MSE(R) + 0.001 MSE(beta) + 1 exp(-10 s)^2),   loss_scale = 60

L2d and L3d are on the 24 GT joints (`models.losses`), the SMPL terms only on frames with `has_smpl`; the camera
regulariser keeps the weak-perspective scale s positive. This is SPIN's total (its regulariser is inside the sum
that is multiplied by 60). Validation on `h36m_valid.npz` reports MPJPE / PA-MPJPE in mm on the 14 LSP joints of
the GT block, both skeletons centred at the middle of the hips. A run directory is resumed from its
`checkpoint_last.pt` (a new epoch starts; the optimiser state and step count continue).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from config import DataPaths, option
from datasets.checkpoint import (
    FINAL_CHECKPOINT,
    LAST_CHECKPOINT,
    METRICS_FILE,
    load_backbone_init,
    prepare_run_dir,
    read_checkpoint_extras,
    save_training_checkpoint,
)
from datasets.h36m import AugmentSettings, H36MDataset, load_h36m_annotations
from models import losses
from models.hmr import BACKBONES, HMR, default_mean_params, load_hmr_checkpoint, load_mean_params, rotmat_smpl_params
from models.smpl import SMPL, build_smpl
from utils.constants import GT_SLICE, IMG_RES, J24_TO_J14
from utils.geometry import batch_rodrigues, project_to_crop
from utils.io import write_json
from utils.metrics import mpjpe, pa_mpjpe, rotation_error_deg
from utils.runtime import git_commit, resolve_device, seed_everything

logger = logging.getLogger("train_basemodel")
_AUG = AugmentSettings()
HIPS_J14 = [2, 3]  # R hip, L hip in the LSP-14 order (J24_TO_J14)
BEST_CHECKPOINT = "basemodel_best.pt"  # the validation with the lowest PA-MPJPE so far




@dataclass
class TrainConfig:
    """Options of train_basemodel.py (defaults: SPIN's training recipe, docs/method.md §2.7)."""

    data_root: Path | None = option("data root: dataset_extras/, h36m/, smpl/ ($DYNABOA_DATA or data/ when unset)", None)
    run_dir: Path | None = option("run directory (config, checkpoints, metrics); resumed if it has a checkpoint", None)
    evaluate: str = option("only validate this checkpoint (or 'mean-pose': the untrained network's mean pose) on "
                         "h36m_valid.npz and print the errors", "")
    make_priors: bool = option("write smpl_mean_params.npz and gmm_08.pkl from the training poses, then stop", False)
    out: Path | None = option("folder --make-priors writes to (the data root when unset)", None)
    prior_max_samples: int = option("poses the GMM is fitted on (a seeded random subset; 0 = all)", 20000)
    backbone: str = option("ResNet depth; the released base model is resnet50", "resnet50", choices=tuple(BACKBONES))
    img_res: int = option("network input side, pixels (224 as released; 128 is ~3x cheaper on a CPU)", IMG_RES)
    epochs: int = option("passes over the training set (the original trained ~90)", 90)
    steps: int = option("stop after this many optimiser steps in all (0 = the epochs decide)", 0)
    lr: float = option("Adam learning rate (SPIN: 5e-5; small models from scratch like ~1e-4)", 5e-5)
    batch_size: int = option("frames per step (SPIN: 64)", 64)
    workers: int = option("DataLoader worker processes (0 = decode in the main process)", 4)
    seed: int = option("seeds model initialisation, data order and augmentation", 0)
    device: str = option("'auto' (CUDA when available), 'cpu' or 'cuda'", "auto")
    log_every: int = option("steps between loss records in metrics.json", 50)
    val_every: int = option("steps between validations (0 = only at the end)", 1000)
    val_max_samples: int = option("validation frames, evenly spaced (0 = all)", 2000)
    ckpt_every: int = option("steps between checkpoints (the last one is always written)", 1000)
    init_backbone: Path | None = option("torchvision-style ResNet state dict to start the backbone from", None)
    half: bool = option("store the final basemodel.pt in float16", False)
    fast_decode: bool = option("decode training JPEGs at 1/2..1/8 size when the box stays >= img_res px", True)
    augment: bool = option("SPIN augmentation (rotation, scale, flip, colour and pixel noise)", True)
    rot_factor: float = option("rotation std, degrees (clipped at 2x)", _AUG.rot_factor)
    rot_prob: float = option("probability of a rotation", _AUG.rot_prob)
    scale_factor: float = option("box scale std (clipped at 1x)", _AUG.scale_factor)
    flip_prob: float = option("probability of a horizontal flip", _AUG.flip_prob)
    noise_factor: float = option("per-channel colour factor range 1 +- this", _AUG.noise_factor)
    pixel_noise: float = option("per-pixel Gaussian noise std, grey levels", _AUG.pixel_noise)
    kp2d_weight: float = option("2D keypoint loss weight (SPIN)", 5.0)
    kp3d_weight: float = option("3D keypoint loss weight (SPIN)", 5.0)
    pose_weight: float = option("rotation-matrix MSE weight (SPIN)", 1.0)
    beta_weight: float = option("betas MSE weight (SPIN)", 0.001)
    cam_weight: float = option("camera regulariser exp(-10 s)^2 weight inside the sum (SPIN)", 1.0)
    loss_scale: float = option("factor on the whole loss (SPIN's 60)", 60.0)
    kp2d_warmup: int = option("steps over which the 2D keypoint weight ramps linearly from 0 to its value (0 = none; "
                            "from scratch, an early 2D loss can keep the root orientation at chance: docs/base_model.md)", 0)
    grad_clip: float = option("clip the gradient's global norm at this value (0 = off; SPIN does not clip)", 0.0)


def augment_settings(cfg: TrainConfig) -> AugmentSettings | None:
    names = [f.name for f in dataclasses.fields(AugmentSettings)]
    return AugmentSettings(**{name: getattr(cfg, name) for name in names}) if cfg.augment else None


def smpl_joints(smpl: SMPL, pred_rotmat: torch.Tensor, pred_betas: torch.Tensor) -> torch.Tensor:
    """[B, 49, 3] joints of the neutral SMPL for rotations [B, 24, 3, 3] and betas [B, 10]."""
    return smpl(**rotmat_smpl_params(pred_rotmat, pred_betas)).joints


def kp2d_ramp(cfg: TrainConfig, step: int | None) -> float:
    """Factor on the 2D keypoint weight at optimiser step `step` (0-based; None = fully on)."""
    if step is None or cfg.kp2d_warmup <= 0:
        return 1.0
    return min(1.0, step / cfg.kp2d_warmup)


def compute_losses(model: HMR, smpl: SMPL, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                   step: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The SPIN-style total loss of one batch (module docstring) and its terms as floats; `step` applies the 2D
    keypoint warm-up (`kp2d_ramp`)."""
    out = model(batch["img"])
    joints = smpl_joints(smpl, out.pred_rotmat, out.pred_betas)
    kp2d = project_to_crop(joints, out.pred_cam, IMG_RES)
    spin = losses.spin_terms(out.pred_rotmat, out.pred_betas, joints, kp2d, batch["keypoints"], batch["pose_3d"],
                             batch["pose"], batch["betas"], has_smpl=batch["has_smpl"] > 0.5)
    weights = losses.SpinWeights(cfg.kp2d_weight * kp2d_ramp(cfg, step), cfg.kp3d_weight, cfg.pose_weight,
                                 cfg.beta_weight)
    terms = {**spin, "cam": losses.camera_regulariser(out.pred_cam)}
    total = cfg.loss_scale * (sum(weights.apply(spin).values()) + cfg.cam_weight * terms["cam"])
    return total, {"total": float(total.detach()), **{name: float(value.detach()) for name, value in terms.items()}}


@torch.no_grad()
def validate(model: HMR, smpl: SMPL, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """MPJPE and PA-MPJPE (mm) on the 14 LSP joints of the GT block, both centred at the middle of the hips, and
    `root_deg_median`, the median angle between predicted and GT root orientation (frames with `has_smpl`): PA-MPJPE
    cannot see a wrong facing direction, MPJPE mixes it with everything else."""
    model.eval()
    errors: dict[str, list[np.ndarray]] = {"mpjpe": [], "pa_mpjpe": []}
    root: list[np.ndarray] = []
    for batch in loader:
        out = model(batch["img"].to(device))
        has = batch["has_smpl"].to(device) > 0.5
        gt_root = batch_rodrigues(batch["pose"].to(device)[has, :3])
        root.append(rotation_error_deg(out.pred_rotmat[has, 0], gt_root).cpu().numpy())
        pred = smpl_joints(smpl, out.pred_rotmat, out.pred_betas)[:, GT_SLICE][:, J24_TO_J14]
        gt = batch["pose_3d"].to(device)[:, J24_TO_J14, :3]
        pred = pred - pred[:, HIPS_J14].mean(dim=1, keepdim=True)
        gt = gt - gt[:, HIPS_J14].mean(dim=1, keepdim=True)
        errors["mpjpe"].append(mpjpe(pred, gt).cpu().numpy())
        errors["pa_mpjpe"].append(pa_mpjpe(pred, gt).cpu().numpy())
    result = {name: 1000.0 * float(np.concatenate(values).mean()) for name, values in errors.items()}
    roots = np.concatenate(root)
    result["root_deg_median"] = float(np.median(roots)) if len(roots) else float("nan")
    return result


def build_model(cfg: TrainConfig, paths: DataPaths) -> HMR:
    """A fresh HMR with the data root's mean parameters (placeholders, with a warning, when there are none)."""
    if paths.smpl_mean_params.is_file():
        mean = load_mean_params(paths.smpl_mean_params)
    else:
        logger.warning("%s not found: starting from identity rotations (write it with --make-priors)",
                       paths.smpl_mean_params)
        mean = default_mean_params()
    model = HMR(cfg.backbone, mean)
    if cfg.init_backbone is not None:
        load_backbone_init(model, cfg.init_backbone)
    return model


def _loaders(cfg: TrainConfig, paths: DataPaths) -> tuple[DataLoader, DataLoader | None]:
    """Shuffled training loader and (if `h36m_valid.npz` exists) the validation loader."""
    train_set = H36MDataset(load_h36m_annotations(paths.dataset_extras / "h36m_train.npz"), paths.h36m_root,
                            cfg.img_res, augment_settings(cfg), cfg.fast_decode)
    train = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                       drop_last=len(train_set) >= cfg.batch_size, persistent_workers=cfg.workers > 0)
    valid_file = paths.dataset_extras / "h36m_valid.npz"
    if not valid_file.is_file():
        logger.warning("%s not found: no validation", valid_file)
        return train, None
    valid_set = H36MDataset(load_h36m_annotations(valid_file), paths.h36m_root, cfg.img_res)
    if 0 < cfg.val_max_samples < len(valid_set):
        valid_set = Subset(valid_set, np.linspace(0, len(valid_set) - 1, cfg.val_max_samples).astype(int).tolist())
    return train, DataLoader(valid_set, batch_size=cfg.batch_size, num_workers=cfg.workers)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The `metrics.json` of a run directory (empty when there is none yet)."""
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}


class _Run:
    """One training run: model, optimiser, data, step counters and the metrics record."""

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.run_dir is None:
            raise ValueError("--run-dir is required for training")
        paths = DataPaths.from_root(cfg.data_root)
        self.cfg, self.device = cfg, resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.run_dir = prepare_run_dir(cfg.run_dir, cfg)
        self.train_loader, self.valid_loader = _loaders(cfg, paths)
        self.smpl = build_smpl(paths, "neutral").to(self.device)
        self.model = build_model(cfg, paths).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step = self.epoch = self.skipped = 0
        self.total = cfg.steps if cfg.steps > 0 else cfg.epochs * len(self.train_loader)
        self.record: dict[str, Any] = {"train": [], "valid": [], **read_metrics(self.run_dir),
                                       "git_commit": git_commit(), "device": str(self.device)}
        self._resume()
        self._sums: dict[str, float] = {}
        self._tick, self._tick_step = time.perf_counter(), self.step

    def _resume(self) -> None:
        """Continue from `checkpoint_last.pt` when the run directory has one."""
        path = self.run_dir / LAST_CHECKPOINT
        if not path.is_file():
            self.record["train"], self.record["valid"] = [], []
            return
        load_hmr_checkpoint(path, self.model)
        extras = read_checkpoint_extras(path)
        self.optimizer.load_state_dict(extras["optimizer"])
        self.step, self.epoch = int(extras["step"]), int(extras["epoch"])
        logger.info("resumed %s at step %d (epoch %d)", path, self.step, self.epoch)

    def fit(self) -> HMR:
        with tqdm(total=self.total, initial=self.step, desc="train", dynamic_ncols=True) as bar:
            while self.step < self.total:
                torch.manual_seed(self.cfg.seed + self.epoch)  # data order and augmentation of this epoch
                for batch in self.train_loader:
                    loss = self._optimise(_to(batch, self.device))
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}")
                    self._bookkeeping()
                    if self.step >= self.total:
                        break
                else:
                    self.epoch += 1
        save_training_checkpoint(self.run_dir / FINAL_CHECKPOINT, self.model, None, self.step, self.epoch,
                                 self.cfg.img_res, half=self.cfg.half)
        write_json(self.run_dir / METRICS_FILE, self.record)
        logger.info("wrote %s", self.run_dir / FINAL_CHECKPOINT)
        return self.model.eval()

    def _optimise(self, batch: dict[str, Any]) -> float:
        """One Adam step; returns the total loss."""
        self.model.train()
        loss, terms = compute_losses(self.model, self.smpl, batch, self.cfg, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if np.isfinite(grad_norm):
            self.optimizer.step()
        else:  # a non-finite loss or gradient: keep the weights and Adam's moments, count the skip
            self.skipped += 1
            logger.warning("step %d: non-finite gradient, update skipped (%d so far)", self.step + 1, self.skipped)
        terms["grad_norm"] = grad_norm if np.isfinite(grad_norm) else 0.0
        self.step += 1
        self._sums = {k: self._sums.get(k, 0.0) + v for k, v in terms.items()}
        return terms["total"]

    def _bookkeeping(self) -> None:
        """Loss records, validation and checkpoints when they are due."""
        cfg, step, last = self.cfg, self.step, self.step == self.total
        if step % cfg.log_every == 0 or last:
            done = step - self._tick_step
            self.record["train"].append({"step": step, "epoch": self.epoch,
                                         "steps_per_s": done / (time.perf_counter() - self._tick),
                                         **{k: v / done for k, v in self._sums.items()}})
            self._sums, self._tick, self._tick_step = {}, time.perf_counter(), step
        if self.valid_loader is not None and (last or (cfg.val_every > 0 and step % cfg.val_every == 0)):
            self.record["valid"].append({"step": step, **validate(self.model, self.smpl, self.valid_loader,
                                                                   self.device)})
            logger.info("validation at step %d: %s", step, self.record["valid"][-1])
            if self.record["valid"][-1]["pa_mpjpe"] <= min(v["pa_mpjpe"] for v in self.record["valid"]):
                save_training_checkpoint(self.run_dir / BEST_CHECKPOINT, self.model, None, step, self.epoch,
                                         cfg.img_res, half=cfg.half)
        if step % cfg.ckpt_every == 0 or last:
            save_training_checkpoint(self.run_dir / LAST_CHECKPOINT, self.model, self.optimizer, step, self.epoch,
                                     cfg.img_res)
            write_json(self.run_dir / METRICS_FILE, self.record)


def train(cfg: TrainConfig) -> HMR:
    """Train (or resume) in `cfg.run_dir`; returns the trained model in eval mode."""
    return _Run(cfg).fit()


def mean_pose_model(cfg: TrainConfig, paths: DataPaths) -> HMR:
    """A network of `cfg.backbone` whose prediction for every image is exactly the data root's mean parameters
    (pose, shape, camera): the regressor's output layers are zero, so no iteration moves away from them."""
    model = build_model(cfg, paths)
    with torch.no_grad():
        for decoder in (model.decpose, model.decshape, model.deccam):
            decoder.weight.zero_()
            decoder.bias.zero_()
    return model


def evaluate(cfg: TrainConfig) -> dict[str, float]:
    """Held-out errors (mm) of `cfg.evaluate`: a checkpoint, or `mean-pose` (`mean_pose_model`, the baseline a
    trained model has to beat)."""
    paths = DataPaths.from_root(cfg.data_root)
    model = mean_pose_model(cfg, paths) if cfg.evaluate == "mean-pose" else load_hmr_checkpoint(Path(cfg.evaluate))
    _, valid = _loaders(cfg, paths)
    if valid is None:
        raise FileNotFoundError(f"{paths.dataset_extras / 'h36m_valid.npz'} not found: nothing to evaluate on")
    device = resolve_device(cfg.device)
    with torch.no_grad():
        return validate(model.to(device), build_smpl(paths, "neutral").to(device), valid, device)
