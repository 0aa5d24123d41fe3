"""Paths and typed configuration.

What a user edits: nothing here. Every data path derives from one root, `data/` next to this file, which the
environment variable `DYNABOA_DATA` overrides (e.g. `DYNABOA_DATA=data/synthetic` for the synthetic world, which
is written in the same layout). `PW3D_ROOT`, `H36M_ROOT` and `INTERNET_ROOT` may also be set on their own.
`data/README.md` shows the expected tree and where each file comes from.

Configs are dataclasses; `build_parser` turns one into an argparse parser with `--x/--no-x` booleans and, for
compatibility with the original scripts, the underscore spellings (`--use_boa 1`) as well.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

# The one thread-environment rule, here because every program and package imports config before torch loads:
# busy-waiting OpenMP threads collapse on a shared machine (a 4 s test took 57 s), so they sleep unless the user says
# otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parent


def data_root() -> Path:
    """The data root: `$DYNABOA_DATA` if set (relative paths are taken from the working directory), else `data/`."""
    env = os.environ.get("DYNABOA_DATA")
    return Path(env).resolve() if env else REPO_ROOT / "data"


@dataclass(frozen=True)
class DataPaths:
    """Every file and folder a run may read, derived from one root (the original release's layout, docs/method.md
    §8.1)."""

    root: Path
    smpl_model_dir: Path
    j_regressor_extra: Path
    j_regressor_h36m: Path
    smpl_mean_params: Path
    gmm_prior: Path
    base_model: Path
    dataset_extras: Path
    retrieval_dir: Path
    pw3d_root: Path
    h36m_root: Path
    internet_root: Path

    @classmethod
    def from_root(cls, root: Path | str | None = None) -> "DataPaths":
        root = Path(root).resolve() if root is not None else data_root()
        env = os.environ
        return cls(
            root=root,
            smpl_model_dir=root / "smpl",
            j_regressor_extra=root / "J_regressor_extra.npy",
            j_regressor_h36m=root / "J_regressor_h36m.npy",
            smpl_mean_params=root / "smpl_mean_params.npz",
            gmm_prior=_first_existing(root / "gmm_08.pkl", root / "spin_data" / "gmm_08.pkl"),
            base_model=root / "basemodel.pt",
            dataset_extras=root / "dataset_extras",
            retrieval_dir=root / "retrieval_res",
            pw3d_root=Path(env["PW3D_ROOT"]) if "PW3D_ROOT" in env else root / "3dpw",
            h36m_root=Path(env["H36M_ROOT"]) if "H36M_ROOT" in env else root / "h36m",
            internet_root=Path(env["INTERNET_ROOT"]) if "INTERNET_ROOT" in env else root / "internet",
        )


def _first_existing(*candidates: Path) -> Path:
    """The first candidate that exists, else the first (so error messages name the preferred place)."""
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


# ------------------------------------------------------------------------------------------------------------------
# Config dataclass -> command line
# ------------------------------------------------------------------------------------------------------------------


def _strip_optional(tp: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _parse_bool01(text: str) -> bool:
    """The original's integer flags: `--use_boa 1` / `--use_boa 0` (also true/false)."""
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0 or 1, got {text!r}")


class _BoolFlag(argparse.Action):
    """`--x` alone, or `--x 1/0` (the original's integer flags); help and usage show it as `--x / --no-x`."""

    def __init__(self, option_strings, dest, negative: str = "", **kwargs):
        super().__init__(option_strings, dest, nargs="?", const=True, type=_parse_bool01, metavar="{0,1}", **kwargs)
        self.negative = negative

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


def _bool_help(base: type) -> type:
    """`base` (a HelpFormatter class) showing `_BoolFlag` options as `--x / --no-x` in help and usage."""
    if getattr(base, "_shows_bool_flags", False):
        return base

    class BoolHelpFormatter(base):
        _shows_bool_flags = True

        def _format_action_invocation(self, action):
            if isinstance(action, _BoolFlag):
                return " / ".join([*action.option_strings, action.negative])
            return super()._format_action_invocation(action)

        def _format_args(self, action, default_metavar):
            if isinstance(action, _BoolFlag):  # usage: `[--x | --no-x]`
                return f"| {action.negative}"
            return super()._format_args(action, default_metavar)

    return BoolHelpFormatter


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, group_title: str | None = None, aliases: dict | None = None
) -> None:
    """Add one option per field of dataclass `cls`.

    A field `use_boa: bool` becomes `--use-boa` / `--no-use-boa` (what `--help` shows), and also accepts
    `--use-boa 1/0` and the original spelling `--use_boa {0,1}`; other fields become `--field-name VALUE` plus `--field_name VALUE`. `aliases` maps a field name to extra option
    strings (e.g. the original's `--vid_path` for `video`). Help text is the field's `metadata["help"]`.
    """
    parser.formatter_class = _bool_help(parser.formatter_class)
    group = parser.add_argument_group(group_title or cls.__name__)
    hints = typing.get_type_hints(cls)
    aliases = aliases or {}
    for f in fields(cls):
        tp = _strip_optional(hints[f.name])
        dashed = "--" + f.name.replace("_", "-")
        under = "--" + f.name
        extra = list(aliases.get(f.name, ()))
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if tp is bool:
            # `--x` alone or `--x 1/0` (the original's integer flags), `--no-x`, and the spelling `--x_y 1/0`
            group.add_argument(dashed, *extra, dest=f.name, action=_BoolFlag, negative="--no-" + dashed[2:],
                               default=argparse.SUPPRESS, help=help_text)
            group.add_argument("--no-" + dashed[2:], dest=f.name, action="store_false", default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)
            if under != dashed:
                group.add_argument(under, dest=f.name, type=_parse_bool01, metavar="{0,1}",
                                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        choices = f.metadata.get("choices")
        if choices:
            kwargs["choices"] = choices
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = _checked_type(typing.get_args(tp)[0], field_check(f, hints[f.name]))
        elif tp in (int, float, str):
            kwargs["type"] = _checked_type(tp, field_check(f, hints[f.name]))
        elif tp is Path:
            kwargs["type"] = Path
        else:
            raise TypeError(f"unsupported field type {tp!r} for {cls.__name__}.{f.name}")
        names = [dashed] + ([under] if under != dashed else []) + extra
        group.add_argument(*names, **kwargs)


def config_from_namespace(cls: type, ns: argparse.Namespace, yaml_path: Path | str | None = None) -> Any:
    """Build `cls` from defaults, then a YAML file (if given), then the options given on the command line."""
    values: dict[str, Any] = {}
    names = {f.name for f in fields(cls)}
    if yaml_path:
        text = Path(yaml_path).read_text()
        # a run's config.json, or a YAML file (PyYAML would read JSON's `3e-06` as a string)
        loaded = (json.loads(text) if Path(yaml_path).suffix == ".json" else yaml.safe_load(text)) or {}
        unknown = set(loaded) - names
        if unknown:
            raise ValueError(f"{yaml_path}: unknown keys {sorted(unknown)} for {cls.__name__}")
        values.update(loaded)
    values.update({k: v for k, v in vars(ns).items() if k in names})
    hints = typing.get_type_hints(cls)
    for name, value in list(values.items()):
        if _strip_optional(hints[name]) is Path and value is not None:
            values[name] = Path(value)
    cfg = cls(**values)
    validate_config(cfg, f"{yaml_path}: " if yaml_path else "")
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of a config dataclass (paths as strings)."""
    out = {}
    for key, value in dataclasses.asdict(cfg).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out


@dataclass(frozen=True)
class Check:
    """A bound on an option's value, checked when the command line or a YAML file is parsed: `text` states it
    ("> 0"), `test` decides."""

    text: str
    test: typing.Callable[[Any], bool]


POSITIVE = Check("> 0", lambda value: value > 0)
NON_NEGATIVE = Check(">= 0", lambda value: value >= 0)


def field_check(f: dataclasses.Field, hint: Any) -> Check | None:
    """The field's `check` (option(..., check=...)); numbers without one must be >= 0 (`check=None`: any value)."""
    if "check" in f.metadata:
        return f.metadata["check"]
    tp = _strip_optional(hint)
    if typing.get_origin(tp) in (list, tuple):
        tp = typing.get_args(tp)[0]
    return NON_NEGATIVE if tp in (int, float) else None


def _checked_type(tp: type, check: Check | None) -> typing.Callable[[str], Any]:
    """An argparse `type` converting to `tp` and rejecting values outside `check` (argparse names the option)."""
    if check is None:
        return tp

    def convert(text: str) -> Any:
        value = tp(text)
        if not check.test(value):
            raise argparse.ArgumentTypeError(f"{text!r} (must be {check.text})")
        return value

    convert.__name__ = tp.__name__  # argparse's "invalid int value" message
    return convert


def validate_config(cfg: Any, where: str = "") -> None:
    """Raise ValueError naming the first field whose value breaks its `Check` (YAML values are not argparse's)."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        check, value = field_check(f, hints[f.name]), getattr(cfg, f.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if check is not None and any(v is not None and not check.test(v) for v in values):
            raise ValueError(f"{where}{f.name} = {value!r}: must be {check.text}")


def option(text: str, default: Any, **extra: Any) -> Any:
    """The one way to declare a config field: its default with help text kept next to it (nanoGPT style); `extra`
    goes into the field's metadata (`choices`, `check`, ...)."""
    return field(default=default, metadata={"help": text, **extra})


@dataclass
class AdaptConfig:
    """Hyper-parameters of online adaptation; defaults are the original 3DPW settings (docs/method.md §10)."""

    adapt: bool = option("adapt online; off = the base model alone", default=True)
    lr: float = option("upper-level Adam learning rate", default=3e-6)
    beta1: float = option("Adam beta1", default=0.5)
    beta2: float = option("Adam beta2", default=0.9)
    use_boa: bool = option("bilevel (BOA) step; off = plain online fine-tuning", default=True)
    fastlr: float = option("lower-level (probe) SGD step size", default=8e-6)
    inner_step: int = option("number of lower-level steps", default=1)
    first_order: bool = option("first-order bilevel gradient as the original; off = second order as BOA", default=True)
    s2dloss_weight: float = option("2D reprojection loss weight", default=10.0)
    shape_prior_weight: float = option("shape prior weight (2e-4 for internet videos)", default=2e-6)
    pose_prior_weight: float = option("GMM pose prior weight", default=1e-4)
    use_frame_losses_lower: bool = option("frame losses at the lower level", default=True)
    use_frame_losses_upper: bool = option("frame losses at the upper level", default=True)
    use_temporal_losses_lower: bool = option("teacher and motion losses at the lower level", default=False)
    use_temporal_losses_upper: bool = option("teacher and motion losses at the upper level", default=True)
    sample_num: int = option("source exemplars retrieved per loss evaluation", default=1)
    retrieval: bool = option("retrieve source exemplars (off with --source-free)", default=True)
    dynamic_boa: bool = option("dynamic extra steps while the update still changes the features", default=True)
    cos_sim_threshold: float = option("stop when 1 - cos(fc1 before, after) falls below this", default=3.1e-4)
    optim_steps: int = option("most dynamic extra steps per frame", default=7)
    lower_level_mixtrain: bool = option("labelled source loss at the lower level", default=True)
    upper_level_mixtrain: bool = option("labelled source loss at the upper level", default=True)
    labelloss_weight: float = option("labelled source loss weight", default=0.1)
    use_meanteacher: bool = option("EMA mean teacher", default=True)
    alpha: float = option("EMA factor: teacher = alpha*teacher + (1-alpha)*student", default=0.1)
    teacherloss_weight: float = option("teacher consistency weight", default=0.1)
    use_motion: bool = option("2D motion loss", default=True)
    interval: int = option("frame gap of the motion loss", default=5)
    motionloss_weight: float = option("motion loss weight", default=0.8)
    keypoint_block: str = option("joints that drive adaptation: the 24 GT joints or the 25 OpenPose joints",
                             default="gt", choices=("gt", "openpose"))
    teacher_dropout: bool = option("dropout on in the teacher (the original's benchmark); off = eval mode", default=False)
    lr_scale: float = option("multiplies both learning rates (lr, fastlr): the paper's rates suit its ImageNet-initialised "
                             "ResNet-50; choose the factor for another base model on a validation world", default=1.0)
    probe: str = option("lower-level step: sgd (the paper: fastlr x gradient, so its size follows the gradient's "
                        "scale) or adam (fastlr x the gradient preconditioned by the upper optimizer's second "
                        "moment: about fastlr per weight whatever the network)", default="sgd", choices=("sgd", "adam"))
    anchor_rate: float = option("soft reset: after every frame the adapted weights move this fraction of the way back "
                                "to the base model's (0 = off; models/robust.py)", default=0.0)
    outlier_gate: float = option("a keypoint further than this from the teacher's projection of its joint (normalised "
                                 "crop units; the crop spans [-1, 1]) gets confidence 0 for the frame (0 = off)",
                                 default=0.0)
    track_shape_weight: float = option("weight of a loss pulling the betas toward the running mean of the person "
                                       "track's predicted betas: one body shape per person (0 = off)", default=0.0)
    bone_ratio_weight: float = option("weight of a loss pulling the predicted bone-length ratios (limbs over torso) "
                                      "toward the person track's running mean: constant proportions (0 = off)",
                                      default=0.0)
    landmark_weight: float = option("weight of the detector's 3D pose as a target: the predicted body joints against "
                                    "the frame's MediaPipe world landmarks, aligned by a similarity (0 = off; needs "
                                    "landmarks in the stream; models/teacher3d.py)", default=0.0)
    landmark_flip_deg: float = option("landmarks whose torso faces more than this many degrees away from the "
                                      "prediction's are dropped for the frame (front/back flip; 0 = no check)",
                                      default=90.0)
    landmark_2d_gate: float = option("landmarks whose projection disagrees with the 2D keypoints by more than this "
                                     "(RMS residual over the keypoints' spread) are dropped (0 = no check)",
                                     default=0.3)
    landmark_flip_skip: bool = option("no update on a frame whose landmarks face away from the teacher's prediction "
                                      "(the detector's front/back confusion also swaps its 2D keypoints' left and "
                                      "right); needs landmarks and the teacher", default=False)
    fixed_steps: int = option("extra single-level steps on every frame, without the dynamic rule (0 = none); gives "
                              "plain fine-tuning as many updates per frame as DynaBOA takes", default=0)
    adapt_every: int = option("budget: adapt only on every K-th frame of the stream; the others are predicted with the "
                              "current weights (1 = every frame; pipelines/budget.py)", default=1, check=POSITIVE)
    frame_budget: float = option("budget: mean seconds of step time per frame; a frame is adapted on only while the "
                                 "credit lasts (0 = no time budget; decisions follow the measured time, so they are "
                                 "not reproducible; pipelines/budget.py)", default=0.0)
    budget_rates: bool = option("with --adapt-every K: both learning rates times K, the same step per frame of stream "
                                "as adapting on every frame (validation world: K = 4 keeps 80 %% of the gain with it, "
                                "36 %% without; docs/speed.md)", default=False)


def build_parser(
    description: str, configs: Sequence[tuple[type, str]], aliases: dict | None = None
) -> argparse.ArgumentParser:
    """A parser with `--config YAML` and one argument group per (dataclass, title)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, default=None, help="YAML file overriding the defaults")
    for cls, title in configs:
        add_dataclass_arguments(parser, cls, title, aliases)
    return parser
