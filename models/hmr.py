"""The HMR regressor with GroupNorm (DynaBOA's base model), its checkpoints and its mean parameters.

A ResNet backbone in which every norm is `GroupNorm(4, C)` (batch size 1 during online adaptation), followed by
the 3-iteration error-feedback regressor of SPIN. Parameter names and shapes equal the original's, so the released
`basemodel.pt` loads strictly (docs/method.md §2.1-2.2). Features the algorithm uses are returned by name:
`"xf"` (retrieval) and `"fc1_iter3"` (the dynamic stop rule).
"""
from __future__ import annotations

import logging
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from utils.geometry import rot6d_to_rotmat
from utils.io import torch_load_tensors

logger = logging.getLogger(__name__)

NUM_JOINTS_SMPL = 24
POSE_DIM = 6 * NUM_JOINTS_SMPL  # 144: 6-D rotation per SMPL joint
SHAPE_DIM = 10  # SMPL betas
CAM_DIM = 3  # weak-perspective (s, tx, ty)
GN_GROUPS = 4  # the original's gn_helper: GroupNorm(32 // 8, C)
HIDDEN_DIM = 1024  # width of fc1 / fc2
MIN_INPUT = 32  # the backbone downsamples 32x; anything smaller leaves no final map
CHECKPOINT_PREFIX = "module."  # DDP / learn2learn-MAML attribute name carried by the released keys
MEAN_PARAM_SHAPES = {"pose": (POSE_DIM,), "shape": (SHAPE_DIM,), "cam": (CAM_DIM,)}
# backbone name -> (block kind, blocks per layer)
BACKBONES: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    # resnet10 (one basic block per stage): the synthetic world's committed base model, ~15 MB in half precision
    "resnet10": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)), "resnet50": ("bottleneck", (3, 4, 6, 3))}
BASEMODEL_HELP = (
    "it is the original release's basemodel.pt (the authors' Google Drive link in the DynaBOA README), "
    "or train one with `python train_basemodel.py`"
)
_MAX_LISTED = 8  # keys listed per category in a CheckpointError


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the model."""


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GN_GROUPS, channels)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: 3x3 conv (stride) -> GN -> ReLU -> 3x3 conv -> GN, plus the residual, -> ReLU."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _gn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _gn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + residual)


class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), GN after each, plus the residual, -> ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _gn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _gn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _gn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _make_layer(block: type, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """`blocks` residual blocks; the first one strides and, when the shape changes, has a 1x1 downsample."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_planes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out_planes, 1, stride=stride, bias=False), _gn(out_planes))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out_planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def default_mean_params() -> dict[str, np.ndarray]:
    """Placeholder initial parameters: identity rotations, mean shape, camera scale 0.9 (HMR's convention).

    Used only when no `smpl_mean_params.npz` is given, e.g. for a model that a checkpoint will overwrite (the
    `init_*` buffers are part of the strict state dict).
    """
    identity_6d = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)  # rows of I[:, :2]
    return {"pose": np.tile(identity_6d, NUM_JOINTS_SMPL), "shape": np.zeros(SHAPE_DIM, dtype=np.float32),
            "cam": np.array([0.9, 0.0, 0.0], dtype=np.float32)}


@dataclass
class HMROutput:
    """What `HMR.forward` returns.

    Attributes:
        pred_rotmat: [B, 24, 3, 3] SMPL joint rotations (global orientation first).
        pred_pose6d: [B, 144] the same rotations in the 6-D representation.
        pred_betas: [B, 10] SMPL shape.
        pred_cam: [B, 3] weak-perspective crop camera (s, tx, ty).
        feature: [B, F] pooled backbone feature `xf` (F = 2048 for resnet50, 512 for resnet18/34).
        features: named intermediate tensors (only with `return_features=True`): `conv1` (before its GN),
            `layer1`..`layer4`, `xf`, and per IEF iteration k = 1..n_iter `fc1_iter{k}`, `drop1_iter{k}`,
            `fc2_iter{k}` ([B, 1024] each). `fc1_iter3` is the original's feature index 12.
    """

    pred_rotmat: torch.Tensor
    pred_pose6d: torch.Tensor
    pred_betas: torch.Tensor
    pred_cam: torch.Tensor
    feature: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def smpl_params(self) -> dict[str, torch.Tensor | bool]:
        """The SMPL call's arguments for this prediction: `smpl(**out.smpl_params())`."""
        return rotmat_smpl_params(self.pred_rotmat, self.pred_betas)


def rotmat_smpl_params(rotmat: torch.Tensor, betas: torch.Tensor) -> dict[str, torch.Tensor | bool]:
    """Keyword arguments of an SMPL call from rotation matrices [B, 24, 3, 3] (global orientation first) and betas
    [B, 10]: `smpl(**rotmat_smpl_params(rotmat, betas))`."""
    return {"betas": betas, "body_pose": rotmat[:, 1:], "global_orient": rotmat[:, :1], "pose2rot": False}


class HMR(nn.Module):
    """GroupNorm ResNet + iterative error-feedback SMPL regressor (docs/method.md §2.1).

    Args:
        backbone: one of `BACKBONES`.
        mean_params: `pose (144,)`, `shape (10,)`, `cam (3,)` initial estimates; `default_mean_params()` if None.
    """

    def __init__(self, backbone: str = "resnet50", mean_params: Mapping[str, np.ndarray] | None = None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; expected one of {sorted(BACKBONES)}")
        self.backbone = backbone
        kind, blocks = BACKBONES[backbone]
        block = _BLOCKS[kind]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = _gn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _make_layer(block, 64, 64, blocks[0], stride=1)
        self.layer2 = _make_layer(block, 64 * block.expansion, 128, blocks[1], stride=2)
        self.layer3 = _make_layer(block, 128 * block.expansion, 256, blocks[2], stride=2)
        self.layer4 = _make_layer(block, 256 * block.expansion, 512, blocks[3], stride=2)
        self.feature_dim = 512 * block.expansion
        self.fc1 = nn.Linear(self.feature_dim + POSE_DIM + SHAPE_DIM + CAM_DIM, HIDDEN_DIM)
        self.drop1 = nn.Dropout(p=0.5)
        self.fc2 = nn.Linear(HIDDEN_DIM, HIDDEN_DIM)
        self.drop2 = nn.Dropout(p=0.5)
        self.decpose = nn.Linear(HIDDEN_DIM, POSE_DIM)
        self.decshape = nn.Linear(HIDDEN_DIM, SHAPE_DIM)
        self.deccam = nn.Linear(HIDDEN_DIM, CAM_DIM)
        self._init_weights()
        mean = validate_mean_params(default_mean_params() if mean_params is None else mean_params)
        self.register_buffer("init_pose", torch.as_tensor(mean["pose"], dtype=torch.float32).view(1, POSE_DIM))
        self.register_buffer("init_shape", torch.as_tensor(mean["shape"], dtype=torch.float32).view(1, SHAPE_DIM))
        self.register_buffer("init_cam", torch.as_tensor(mean["cam"], dtype=torch.float32).view(1, CAM_DIM))

    def _init_weights(self) -> None:
        """He-normal convs, GN weight 1 / bias 0, xavier gain 0.01 on the decoders (docs/method.md §2.1)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for decoder in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(decoder.weight, gain=0.01)

    def forward(
        self,
        x: torch.Tensor,
        n_iter: int = 3,
        return_features: bool = False,
        init_pose: torch.Tensor | None = None,
        init_shape: torch.Tensor | None = None,
        init_cam: torch.Tensor | None = None,
    ) -> HMROutput:
        """Regress SMPL and camera from normalised crops.

        Args:
            x: [B, 3, H, W] ImageNet-normalised RGB crops, H, W >= 32 (224 for the released model).
            n_iter: IEF iterations (3 in the original).
            return_features: fill `HMROutput.features` with the named intermediate tensors.
            init_pose: [B, 144] starting 6-D pose; the mean pose when None.
            init_shape: [B, 10] starting betas; the mean shape when None.
            init_cam: [B, 3] starting camera; the mean camera when None.
        Returns:
            `HMROutput`.
        """
        assert x.dim() == 4 and x.shape[1] == 3, x.shape
        assert x.shape[2] >= MIN_INPUT and x.shape[3] >= MIN_INPUT, x.shape
        assert n_iter >= 1, n_iter
        batch = x.shape[0]
        features: dict[str, torch.Tensor] = {}
        xf = self._encode(x, features)
        pose = self._start(init_pose, self.init_pose, batch)
        shape = self._start(init_shape, self.init_shape, batch)
        cam = self._start(init_cam, self.init_cam, batch)
        for k in range(1, n_iter + 1):
            hidden = self.fc1(torch.cat([xf, pose, shape, cam], dim=1))  # no nonlinearity, as the original
            features[f"fc1_iter{k}"] = hidden
            hidden = self.drop1(hidden)
            features[f"drop1_iter{k}"] = hidden
            hidden = self.fc2(hidden)
            features[f"fc2_iter{k}"] = hidden
            hidden = self.drop2(hidden)
            pose = self.decpose(hidden) + pose
            shape = self.decshape(hidden) + shape
            cam = self.deccam(hidden) + cam
        rotmat = rot6d_to_rotmat(pose).view(batch, NUM_JOINTS_SMPL, 3, 3)
        return HMROutput(rotmat, pose, shape, cam, xf, features if return_features else {})

    def _encode(self, x: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Backbone: [B, 3, H, W] -> pooled feature xf [B, F]; records `conv1`, `layer1`..`layer4`, `xf`."""
        out = self.conv1(x)
        features["conv1"] = out  # before its GroupNorm, as the original's feature 0
        out = self.maxpool(self.relu(self.bn1(out)))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            out = getattr(self, name)(out)
            features[name] = out
        xf = out.mean(dim=(2, 3))  # equals the original AvgPool2d(7) at 224 px, and works at any size
        features["xf"] = xf
        return xf

    @staticmethod
    def _start(given: torch.Tensor | None, mean: torch.Tensor, batch: int) -> torch.Tensor:
        """The given starting estimate [B, D], or the mean [1, D] expanded to the batch."""
        if given is None:
            return mean.expand(batch, -1)
        assert given.shape == (batch, mean.shape[1]), (given.shape, mean.shape)
        return given





def load_hmr_checkpoint(path: Path, model: HMR | None = None) -> HMR:
    """Load an HMR checkpoint strictly.

    Accepts the original layout `{'model': {'module.' + key: tensor}}`, the same without the prefix, and a bare
    state dict. Half-precision weights are converted to float32.

    Args:
        path: the checkpoint file (e.g. `data/basemodel.pt`).
        model: the model to fill; when None one is built with the backbone inferred from the keys.
    Returns:
        The model, with every parameter and buffer from the file.
    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a torch checkpoint, no state dict in it, or keys / shapes that do not match.
    """
    state = read_state_dict(path)
    if model is None:
        model = HMR(infer_backbone(state, path))
    _check_keys(model, state, path)
    model.load_state_dict(state, strict=True)
    logger.info("loaded %s (%s, %d tensors)", path, model.backbone, len(state))
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The HMR state dict of a checkpoint file, `module.` prefix removed, floating tensors as float32.

    Read with `weights_only=True`: tensors and plain containers only, a pickled object that would run code is
    refused (docs/method.md §8).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HMR checkpoint {path} not found: {BASEMODEL_HELP}.")
    try:
        obj = torch_load_tensors(path, "HMR checkpoint")
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, UnicodeDecodeError) as err:
        reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({reason}); {BASEMODEL_HELP}. Only tensors "
                              "and plain containers are read (weights_only).") from err
    state = obj.get("model") if isinstance(obj, dict) and "model" in obj else obj
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        found = list(obj)[:_MAX_LISTED] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} holds no HMR state dict: expected {{'model': state_dict}} or a bare state "
                              f"dict, found {found}")
    if all(key.startswith(CHECKPOINT_PREFIX) for key in state):
        state = {key[len(CHECKPOINT_PREFIX):]: value for key, value in state.items()}
    if any(value.dtype == torch.float16 for value in state.values()):
        logger.info("%s holds half-precision weights; converting to float32", path)
    return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}


def infer_backbone(state: Mapping[str, torch.Tensor], path: Path | str = "checkpoint") -> str:
    """The backbone name whose block counts and block kind match the keys of `state`."""
    counts = [0, 0, 0, 0]
    for key in state:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            layer, block = int(match.group(1)) - 1, int(match.group(2))
            counts[layer] = max(counts[layer], block + 1)
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    for name, spec in BACKBONES.items():
        if spec == (kind, tuple(counts)):
            return name
    raise CheckpointError(f"{path}: cannot infer the backbone: {kind} blocks per layer {counts} match none of "
                          f"{sorted(BACKBONES)}")


def _check_keys(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path | str) -> None:
    """Raise a CheckpointError listing missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [f"{key}: expected {tuple(expected[key].shape)}, found {tuple(state[key].shape)}"
                 for key in expected if key in state and expected[key].shape != state[key].shape]
    if not (missing or unexpected or misshaped):
        return
    backbone = getattr(model, "backbone", type(model).__name__)
    lines = [f"{path} does not match the {backbone} HMR:"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
        if items:
            lines.append(f"  {len(items)} {title}:")
            lines += [f"    {item}" for item in items[:_MAX_LISTED]]
            if len(items) > _MAX_LISTED:
                lines.append(f"    ... and {len(items) - _MAX_LISTED} more")
    raise CheckpointError("\n".join(lines))


def validate_mean_params(params: Mapping[str, Any], source: Path | str = "mean parameters") -> dict[str, np.ndarray]:
    """`pose (144,)`, `shape (10,)`, `cam (3,)` as float32 arrays; ValueError naming what is wrong."""
    missing = [key for key in MEAN_PARAM_SHAPES if key not in params]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; expected {MEAN_PARAM_SHAPES}")
    out = {}
    for key, shape in MEAN_PARAM_SHAPES.items():
        value = np.asarray(params[key], dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f"{source}: '{key}' has shape {value.shape}, expected {shape}")
        out[key] = value
    return out


def load_mean_params(path: Path) -> dict[str, np.ndarray]:
    """Read SPIN's `smpl_mean_params.npz`.

    Returns:
        `pose (144,)` mean pose in 6-D, `shape (10,)` mean betas, `cam (3,)` initial camera, all float32.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL mean parameters {path} not found: it is SPIN's data/smpl_mean_params.npz "
                                "(SPIN's fetch_data.sh), or write one with models.hmr.save_mean_params.")
    with np.load(path) as data:
        return validate_mean_params({key: data[key] for key in data.files}, path)


def save_mean_params(path: Path, pose6d: np.ndarray, shape: np.ndarray, cam: np.ndarray) -> None:
    """Write `smpl_mean_params.npz` (float32 `pose (144,)`, `shape (10,)`, `cam (3,)`, the layout HMR reads)."""
    params = validate_mean_params({"pose": pose6d, "shape": shape, "cam": cam}, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **params)
