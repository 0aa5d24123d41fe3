"""Named adaptation schedules (`--preset paper|fast|finetune`) and which parameters adapt
(`--adapted all|layer4|head`)."""
from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import torch

from config import AdaptConfig

# parameter-name prefixes adapted under each scope (None = every parameter)
HEAD_PREFIXES = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.")
ADAPTED_SCOPES: dict[str, tuple[str, ...] | None] = {
    "all": None, "layer4": ("layer4.",) + HEAD_PREFIXES, "head": HEAD_PREFIXES}


@dataclass(frozen=True)
class Preset:
    """A named schedule: the parameters adapted (a key of `ADAPTED_SCOPES`) and `AdaptConfig` fields it changes."""

    adapted: str
    overrides: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "paper": Preset("all", {}),  # DynaBOA as published
    # one level at theta (frame + teacher losses; no probe, no exemplar, no motion row), no dynamic steps, only
    # layer4 and the regressor adapt: on the synthetic benchmark (300 frames, resnet10 at 128 px) PA-MPJPE within
    # 1% (GT 2D) and 3% (estimated 2D) of the paper schedule at a third of its cost; motion and exemplar rows
    # changed it by less than 0.1 mm there, at +20% and +30% cost. Needs no source data.
    "fast": Preset("layer4", {"use_boa": False, "use_temporal_losses_lower": True, "dynamic_boa": False,
                              "use_motion": False, "retrieval": False, "lower_level_mixtrain": False,
                              "upper_level_mixtrain": False}),
    # the schedule recommended by the synthetic validation world (docs/benchmark.md §6): one level at theta with the
    # frame and exemplar losses, every weight adapts, no probe, no dynamic steps. DynaBOA's bilevel step and rule,
    # the outlier gate, confidence weights, per-track shape and bone ratios did not lower the validation error there.
    # The learning rates stay an option (`--lr-scale`): choose them for your base model on a validation stream.
    "finetune": Preset("all", {"use_boa": False}),  # one level: the dynamic rule needs the bilevel step
    # finetune on every 4th frame only (the others predicted), both rates x 4: on the validation world's first 600
    # frames 80 % of finetune's PA-MPJPE gain at 0.35 of its cost per frame (docs/speed.md §4); for live and
    # recorded video where every frame must come out fast. `--lr-scale` stays the base model's factor.
    "live": Preset("all", {"use_boa": False, "adapt_every": 4, "budget_rates": True}),
}


def apply_preset(cfg: AdaptConfig, name: str, keep: Collection[str] = ()) -> AdaptConfig:
    """`cfg` with the preset's overrides, except for the fields named in `keep` (those the user set explicitly)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return dataclasses.replace(cfg, **{k: v for k, v in PRESETS[name].overrides.items() if k not in keep})


def freeze_unadapted(model: torch.nn.Module, scope: str) -> int:
    """Switch off `requires_grad` outside `scope` (a key of `ADAPTED_SCOPES`); returns the adapted element count."""
    if scope not in ADAPTED_SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {sorted(ADAPTED_SCOPES)}")
    prefixes = ADAPTED_SCOPES[scope]
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(prefixes is None or name.startswith(prefixes))
        count += param.numel() if param.requires_grad else 0
    if count == 0:
        raise ValueError(f"scope {scope!r} matches no parameter of {type(model).__name__}")
    return count


def scoped_adaptor(model: torch.nn.Module, smpl: torch.nn.Module, cfg: AdaptConfig, scope: str,
                   pose_prior: torch.nn.Module | None = None, exemplars: Any = None, runtime: Any = None) -> Any:
    """The one assembly of an adaptor: `model` with only the `scope`'s parameters trainable, wrapped in an `Adaptor`
    with `cfg`, the prior, the exemplars (None: source-free) and the runtime."""
    from models.adaptor import Adaptor

    freeze_unadapted(model, scope)
    return Adaptor(model, smpl, cfg, pose_prior=pose_prior, exemplars=exemplars, runtime=runtime)
