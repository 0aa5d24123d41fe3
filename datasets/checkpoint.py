"""Run directories, training checkpoints with resume state, and backbone initialisation from a ResNet state dict.

A run directory holds `config.json` (the resolved config, the one run-config format: `--config` reads it back), `metrics.json` (the run's record, with the git commit),
`checkpoint_last.pt` (the latest training state) and `basemodel.pt` (the final model). Checkpoints are in the
original's layout (`{'model': {'module.' + key: tensor}}`, readable strictly by `models.hmr.load_hmr_checkpoint`)
with the resume state in extra top-level keys (`optimizer`, `step`, `epoch`, `backbone`, `img_res`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from config import config_to_dict
from models.hmr import CHECKPOINT_PREFIX, HMR
from utils.constants import IMG_RES
from utils.io import atomic_path, torch_load_tensors, write_json

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = "checkpoint_last.pt"
FINAL_CHECKPOINT = "basemodel.pt"
_IGNORED_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")  # BN statistics; GN has none


def prepare_run_dir(run_dir: Path, cfg: Any) -> Path:
    """Create `run_dir` and write the resolved config into it (overwriting an older one on resume)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config_to_dict(cfg))
    return run_dir


def save_hmr_checkpoint(model: HMR, path: Path, half: bool = False, extra: dict[str, Any] | None = None) -> None:
    """Write `{'model': {'module.' + key: tensor}, **extra}`, the layout the original code reads.

    Args:
        model: the network to save.
        path: output file; its folder is created.
        half: store floating tensors as float16 (half the size; `load_hmr_checkpoint` restores float32).
        extra: other top-level entries (e.g. `{'epoch': 3}`); must not contain 'model'.
    """
    extra = dict(extra or {})
    if "model" in extra:
        raise ValueError("extra must not contain the key 'model'")
    state = {CHECKPOINT_PREFIX + key: (value.half() if half and value.is_floating_point() else value).detach().cpu()
             for key, value in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, **extra}, path)


def save_training_checkpoint(path: Path, model: HMR, optimizer: torch.optim.Optimizer | None, step: int,
                             epoch: int, img_res: int, half: bool = False) -> None:
    """Write an original-layout checkpoint plus the resume state, atomically.

    Args:
        path: output file.
        model: the network.
        optimizer: its optimiser (state stored under `optimizer`), or None for a final model.
        step: optimiser steps taken; epoch: epochs completed.
        img_res: the input size the model was trained at (read back by the retrieval builder).
        half: store the weights in float16.
    """
    extra: dict[str, Any] = {"step": step, "epoch": epoch, "backbone": model.backbone, "img_res": img_res}
    if optimizer is not None:
        extra["optimizer"] = optimizer.state_dict()
    with atomic_path(path) as tmp:
        save_hmr_checkpoint(model, tmp, half=half, extra=extra)


def input_size(model_file: Path, img_res: int = 0) -> int:
    """The crop side fed to a base model: `img_res` when given (> 0), else the checkpoint's `img_res` entry (written
    by `save_training_checkpoint`), else 224 (the released model, which records none)."""
    return img_res or int(read_checkpoint_extras(model_file).get("img_res", IMG_RES))


def read_checkpoint_extras(path: Path) -> dict[str, Any]:
    """The top-level entries of a checkpoint other than `model` (empty for a bare state dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (write one with `python train_basemodel.py`)")
    obj = torch_load_tensors(path, "checkpoint")
    if not isinstance(obj, dict) or "model" not in obj:
        return {}
    return {key: value for key, value in obj.items() if key != "model"}


@dataclass
class BackboneInitReport:
    """What `load_backbone_init` did: keys copied, keys of the file left out (with the reason), model keys kept."""

    loaded: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    not_in_file: list[str] = field(default_factory=list)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for reason in self.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())) or "none"
        return (f"loaded {len(self.loaded)} tensors; ignored: {detail}; "
                f"{len(self.not_in_file)} backbone tensors of the model not in the file (kept)")


def _read_resnet_state(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision-style ResNet state dict from a file (bare, or under 'state_dict' / 'model'; 'module.' dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights {path} not found: pass a torchvision-style ResNet state dict "
                                "(e.g. torch.save(torchvision.models.resnet50(weights=...).state_dict(), path))")
    obj = torch_load_tensors(path, "backbone state dict")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return {key.removeprefix("module."): value for key, value in obj.items()}


def load_backbone_init(model: HMR, path: Path) -> BackboneInitReport:
    """Initialise the backbone of `model` from a torchvision-style ResNet state dict.

    torchvision's names equal ours (`conv1`, `bn1`, `layer{L}.{b}.conv{k}`, `.bn{k}`, `.downsample.{0,1}`); a
    BatchNorm's `weight`/`bias` become the GroupNorm's affine parameters when the shapes match, its running statistics
    are dropped, and the classifier `fc.*` is ignored (our `fc1`/`fc2` are the regressor's).

    Raises:
        ValueError: a convolution of the file does not fit the model (e.g. ResNet-50 weights into resnet18),
            or nothing could be loaded.
    """
    state = _read_resnet_state(path)
    own = model.state_dict()
    backbone_keys = [key for key in own if key.startswith(("conv1.", "bn1.", "layer"))]
    report = BackboneInitReport()
    update = {}
    for key, value in state.items():
        if key.endswith(_IGNORED_SUFFIXES):
            report.ignored[key] = "batch-norm statistics"
        elif key not in backbone_keys:
            report.ignored[key] = "not a backbone tensor of the model"
        elif own[key].shape != value.shape:
            if ".conv" in key or key.startswith("conv1") or "downsample.0" in key:
                raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the {model.backbone} model needs "
                                 f"{tuple(own[key].shape)}; is it a different ResNet depth?")
            report.ignored[key] = "shape mismatch"
        else:
            update[key] = value.to(own[key].dtype)
    if not update:
        raise ValueError(f"{path}: no tensor matches the {model.backbone} backbone (found e.g. {list(state)[:4]})")
    model.load_state_dict(update, strict=False)
    report.loaded = sorted(update)
    report.not_in_file = [key for key in backbone_keys if key not in update]
    logger.info("backbone init from %s: %s", path, report.summary())
    return report
