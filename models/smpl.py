"""SMPL giving the 49 joints of the SPIN / DynaBOA convention (docs/method.md §2.5).

`SMPL` wraps `smplx.SMPL`, built from arrays read by `load_smpl_model_data`, which reads the official `.pkl` files
without chumpy (their chumpy objects are unpickled into a stub), plain-numpy `.pkl` files (such as the procedural
stand-in of `datasets.synthetic.body_model`) and `.npz` files. The model has no translation: the root sits near the
SMPL origin.
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import smplx
import torch
from smplx.lbs import vertices2joints

from config import DataPaths
from utils.constants import NUM_EXTRA_JOINTS, NUM_SMPL_JOINTS, SMPL_TO_J49
from utils.io import COPYREG_GLOBALS, NUMPY_GLOBALS, SET_GLOBALS, restricted_load, restricted_npz_load

logger = logging.getLogger(__name__)

NUM_VERTICES = 6890
NUM_BETAS = 10
# official file names per gender, after our own SMPL_{GENDER}.pkl / .npz
OFFICIAL_NAMES = {
    "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
    "male": "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
    "female": "basicmodel_f_lbs_10_207_0_v1.0.0.pkl",
}
_HOW_TO_GET = (
    "The SMPL model needs registration at https://smpl.is.tue.mpg.de: the neutral model comes with SMPLify "
    "(basicModel_neutral_lbs_10_207_0_v1.0.0.pkl) or the 'SMPL for Python' download, the male and female ones with "
    "SMPL v1.0/v1.1; save them as SMPL_NEUTRAL.pkl, SMPL_MALE.pkl, SMPL_FEMALE.pkl. Without the licensed model, "
    "`python -m datasets.synthetic.body_model --out DIR` writes a procedural stand-in in the same format."
)
_EXPECTED_SHAPES = {  # key -> shape; None matches any size
    "v_template": (NUM_VERTICES, 3),
    "shapedirs": (NUM_VERTICES, 3, None),
    "posedirs": (NUM_VERTICES, 3, 207),
    "J_regressor": (NUM_SMPL_JOINTS, NUM_VERTICES),
    "weights": (NUM_VERTICES, NUM_SMPL_JOINTS),
    "kintree_table": (2, NUM_SMPL_JOINTS),
    "f": (None, 3),
}


class _ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the pickled state (the array is under 'x')."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"x": state}


_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
# An SMPL pickle holds numpy arrays, a scipy sparse regressor and (official files) chumpy objects, nothing else.
_SMPL_GLOBALS = NUMPY_GLOBALS | COPYREG_GLOBALS | SET_GLOBALS


def _chumpy_stub(module: str, name: str) -> type:
    """Every `chumpy.*` class becomes `_ChumpyStub` (which only stores the pickled state)."""
    return _ChumpyStub


def _sparse_class(module: str, name: str) -> type | None:
    """`scipy.sparse.<any old module path>.<format>` -> the scipy.sparse class; None (refused) for other names."""
    return getattr(scipy.sparse, name) if name in _SPARSE_CLASSES else None


_SMPL_SUBSTITUTES = {"chumpy": _chumpy_stub, "scipy.sparse": _sparse_class}


def _to_array(key: str, value: Any) -> Any:
    """Unwrap chumpy stubs and 0-d object arrays; keep scipy sparse matrices and other values as they are."""
    if isinstance(value, _ChumpyStub):
        if "x" not in value.state:
            raise ValueError(f"SMPL key '{key}' is a chumpy object without an array 'x' (keys {list(value.state)})")
        return np.asarray(value.state["x"])
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        return _to_array(key, value.item())
    return value


def load_smpl_model_data(path: Path) -> dict[str, Any]:
    """Read an SMPL model file (official chumpy `.pkl`, plain `.pkl` or `.npz`) without chumpy.

    Args:
        path: the model file.
    Returns:
        key -> numpy array (`J_regressor` may stay a scipy sparse matrix; string entries such as `bs_style` stay).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL model file {path} not found. {_HOW_TO_GET}")
    if path.suffix == ".npz":
        # official .npz conversions hold a pickled sparse regressor: object entries are read with the allow-list
        raw = restricted_npz_load(path, "SMPL model", _SMPL_GLOBALS, _SMPL_SUBSTITUTES)
    else:
        raw = restricted_load(path, "SMPL model", _SMPL_GLOBALS, _SMPL_SUBSTITUTES)
    return {key: _to_array(key, value) for key, value in raw.items()}


def validate_smpl_data(data: dict[str, Any], path: Path) -> None:
    """Raise ValueError naming the key, the expected and the found shape if an SMPL array is missing or wrong."""
    for key, expected in _EXPECTED_SHAPES.items():
        if key not in data:
            raise ValueError(f"SMPL model {path}: key '{key}' is missing (found keys {sorted(data)})")
        found = tuple(data[key].shape)
        if len(found) != len(expected) or any(e is not None and e != f for e, f in zip(expected, found, strict=True)):
            raise ValueError(f"SMPL model {path}: '{key}' should have shape {expected}, found {found}")
    if data["shapedirs"].shape[-1] < NUM_BETAS:
        raise ValueError(f"SMPL model {path}: 'shapedirs' has {data['shapedirs'].shape[-1]} < {NUM_BETAS} components")


def find_smpl_model_file(model_dir: Path, gender: str) -> Path:
    """The model file of a gender in model_dir: SMPL_{GENDER}.pkl, SMPL_{GENDER}.npz or the official long name."""
    gender = gender.lower()
    if gender not in OFFICIAL_NAMES:
        raise ValueError(f"gender must be one of {sorted(OFFICIAL_NAMES)}, got {gender!r}")
    model_dir = Path(model_dir)
    names = [f"SMPL_{gender.upper()}.pkl", f"SMPL_{gender.upper()}.npz", OFFICIAL_NAMES[gender]]
    for name in names:
        if (model_dir / name).is_file():
            return model_dir / name
    raise FileNotFoundError(f"SMPL model file {model_dir / names[0]} not found (nor {', '.join(names[1:])}). "
                            f"{_HOW_TO_GET}")


def load_j_regressor(path: Path) -> torch.Tensor:
    """Read a joint regressor `.npy` ([J, 6890], e.g. J_regressor_extra.npy or J_regressor_h36m.npy) as float32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"joint regressor {path} not found. SPIN's data (scripts/fetch_data.sh of nkolot/SPIN, the "
            f"'data/' folder of the DynaBOA release) has J_regressor_extra.npy and J_regressor_h36m.npy; "
            f"`python -m datasets.synthetic.body_model --out DIR` writes stand-ins for the procedural body.")
    regressor = np.load(path)
    if regressor.ndim != 2 or regressor.shape[1] != NUM_VERTICES:
        raise ValueError(f"joint regressor {path} should have shape (J, {NUM_VERTICES}), found {regressor.shape}")
    return torch.as_tensor(regressor, dtype=torch.float32)



@dataclass
class SMPLOutput:
    """Named SMPL outputs.

    Attributes:
        vertices: [B, 6890, 3] metres.
        joints: [B, 49, 3] metres, order `utils.constants.JOINT_NAMES`.
        smpl_joints: [B, 24, 3] metres, the kinematic joints.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    smpl_joints: torch.Tensor


class SMPL(torch.nn.Module):
    """SMPL without translation returning the 49 joints (45 smplx joints + 9 J_regressor_extra joints, mapped).

    Args:
        model_dir: folder holding the model file (see `find_smpl_model_file`).
        gender: 'neutral', 'male' or 'female'.
        j_regressor_extra: the 9-row regressor; default `model_dir/../J_regressor_extra.npy` (the data layout).
    """

    def __init__(self, model_dir: Path, gender: str = "neutral", j_regressor_extra: Path | None = None) -> None:
        super().__init__()
        path = find_smpl_model_file(model_dir, gender)
        data = load_smpl_model_data(path)
        validate_smpl_data(data, path)
        # smplx prints a warning for every 10-component model (all SMPL v1.0 files); keep stdout clean
        with contextlib.redirect_stdout(io.StringIO()):
            self.body = smplx.SMPL(
                model_path=str(path), data_struct=smplx.utils.Struct(**data), gender=gender, num_betas=NUM_BETAS,
                create_betas=False, create_global_orient=False, create_body_pose=False, create_transl=False)
        extra_path = Path(j_regressor_extra) if j_regressor_extra else Path(model_dir).parent / "J_regressor_extra.npy"
        extra = load_j_regressor(extra_path)
        if extra.shape[0] != NUM_EXTRA_JOINTS:
            raise ValueError(f"{extra_path} should have {NUM_EXTRA_JOINTS} rows, found {extra.shape[0]}")
        self.register_buffer("j_regressor_extra", extra)
        self.register_buffer("joint_map", torch.tensor(SMPL_TO_J49, dtype=torch.long))
        self.faces = np.asarray(data["f"], dtype=np.int64)  # [F, 3]
        self.gender = gender
        logger.debug("loaded SMPL %s from %s", gender, path)

    def forward(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor,
                pose2rot: bool = True) -> SMPLOutput:
        """Pose and shape the body.

        Args:
            betas: [B, 10].
            body_pose: [B, 69] (or [B, 23, 3]) axis-angle radians if pose2rot, else [B, 23, 3, 3] rotation matrices.
            global_orient: [B, 3] (or [B, 1, 3]) axis-angle if pose2rot, else [B, 1, 3, 3].
            pose2rot: whether the pose is axis-angle.
        Returns:
            SMPLOutput with vertices [B, 6890, 3], joints [B, 49, 3], smpl_joints [B, 24, 3] (metres).
        """
        batch = betas.shape[0]
        assert betas.shape == (batch, NUM_BETAS), betas.shape
        if pose2rot:
            body_pose, global_orient = body_pose.reshape(batch, 69), global_orient.reshape(batch, 3)
        else:
            assert body_pose.shape[-2:] == (3, 3) and global_orient.shape[-2:] == (3, 3), (body_pose.shape,
                                                                                          global_orient.shape)
            body_pose, global_orient = body_pose.reshape(batch, 23, 3, 3), global_orient.reshape(batch, 1, 3, 3)
        out = self.body(betas=betas, body_pose=body_pose, global_orient=global_orient, pose2rot=pose2rot)
        extra = vertices2joints(self.j_regressor_extra, out.vertices)  # [B, 9, 3]
        joints = torch.cat((out.joints, extra), dim=1)[:, self.joint_map]
        return SMPLOutput(vertices=out.vertices, joints=joints, smpl_joints=out.joints[:, :NUM_SMPL_JOINTS])


def build_smpl(paths: DataPaths, gender: str) -> SMPL:
    """The SMPL model of a gender from the data layout (`paths.smpl_model_dir`, `paths.j_regressor_extra`)."""
    return SMPL(paths.smpl_model_dir, gender=gender, j_regressor_extra=paths.j_regressor_extra)
