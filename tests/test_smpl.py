"""Tests of the 49-joint SMPL wrapper and the chumpy-free loader (models/smpl.py), on the procedural body."""
from __future__ import annotations

import math
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from smplx.vertex_ids import vertex_ids

from config import DataPaths
from models.smpl import SMPL, build_smpl, find_smpl_model_file, load_j_regressor, load_smpl_model_data
from utils.constants import JOINT_IDS, SMPL_TO_J49
from utils.geometry import batch_rodrigues

VIDS = vertex_ids["smplh"]


@pytest.fixture(scope="module")
def smpl(body_root: Path) -> SMPL:
    return build_smpl(DataPaths.from_root(body_root), "neutral")


def _zero_pose(batch: int) -> dict[str, torch.Tensor]:
    return {"betas": torch.zeros(batch, 10), "body_pose": torch.zeros(batch, 69),
            "global_orient": torch.zeros(batch, 3)}


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_shapes_and_rotmat_input_agree_with_axis_angle(smpl: SMPL, batch: int) -> None:
    torch.manual_seed(batch)
    betas, pose = torch.randn(batch, 10), 0.3 * torch.randn(batch, 24, 3)
    out = smpl(betas, pose[:, 1:].reshape(batch, 69), pose[:, 0], pose2rot=True)
    rotmat = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, 24, 3, 3)
    out_rot = smpl(betas, rotmat[:, 1:], rotmat[:, :1], pose2rot=False)
    assert out.vertices.shape == (batch, 6890, 3) and out.joints.shape == (batch, 49, 3)
    assert out.smpl_joints.shape == (batch, 24, 3)
    assert torch.allclose(out.vertices, out_rot.vertices, atol=1e-5)
    assert torch.allclose(out.joints, out_rot.joints, atol=1e-5)
    assert smpl.faces.shape == (13776, 3) and list(smpl.parameters()) == []  # nothing for an optimiser to move


def test_49_joints_come_from_the_right_sources(smpl: SMPL, body_root: Path) -> None:
    torch.manual_seed(0)
    out = smpl(torch.randn(1, 10), 0.2 * torch.randn(1, 69), torch.zeros(1, 3))
    v = out.vertices[0]
    extra = torch.as_tensor(np.load(body_root / "J_regressor_extra.npy"), dtype=torch.float32) @ v
    landmarks = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
                 "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
                 "rpinky"]
    sources = torch.cat((out.smpl_joints[0], v[[VIDS[k] for k in landmarks]], extra))  # the 54 of docs/method.md §2.5
    assert torch.allclose(out.joints[0], sources[SMPL_TO_J49], atol=1e-6)
    j = out.joints[0]
    assert torch.equal(j[JOINT_IDS["OP Nose"]], v[VIDS["nose"]]) and torch.equal(j[JOINT_IDS["Nose"]], j[0])
    assert torch.equal(j[JOINT_IDS["Left Hip"]], extra[1]) and torch.equal(j[JOINT_IDS["OP LHip"]],
                                                                            out.smpl_joints[0, 1])


def test_49_joints_mean_what_their_names_say(smpl: SMPL) -> None:
    j = smpl(**_zero_pose(1)).joints[0].numpy()
    for name in ("Hip", "Knee", "Ankle", "Wrist", "Elbow", "Shoulder", "Eye", "Ear"):
        assert j[JOINT_IDS[f"Left {name}"], 0] > 0 > j[JOINT_IDS[f"Right {name}"], 0], name
    for name in ("LBigToe", "LHeel", "LAnkle", "LWrist", "LEar"):
        assert j[JOINT_IDS[f"OP {name}"], 0] > 0 > j[JOINT_IDS[f"OP R{name[1:]}"], 0], name
    y = {n: j[JOINT_IDS[n], 1] for n in ("Top of Head (LSP)", "Head (H36M)", "Neck (LSP)", "Thorax (MPII)",
                                          "Spine (H36M)", "Pelvis (MPII)", "Left Knee", "Left Ankle")}
    assert list(y.values()) == sorted(y.values(), reverse=True)  # top to bottom
    assert j[JOINT_IDS["OP LBigToe"], 2] > j[JOINT_IDS["OP LHeel"], 2] + 0.2  # toes ahead of the heel
    assert j[JOINT_IDS["Nose"], 2] > j[JOINT_IDS["Head (H36M)"], 2] + 0.05  # nose in front of the head


def test_bending_the_left_elbow_moves_only_the_left_forearm(smpl: SMPL) -> None:
    rest = smpl(**_zero_pose(1))
    pose = _zero_pose(1)
    pose["body_pose"][0, 3 * 17 + 1] = -math.pi / 2  # joint 18 (left elbow): -90 degrees about y
    bent = smpl(**pose)
    elbow, wrist = rest.smpl_joints[0, 18], rest.smpl_joints[0, 20]
    # R_y(-90 deg) maps (x, y, z) to (-z, y, x): the forearm, along +x, now points forward (+z)
    d = wrist - elbow
    expected = elbow + torch.stack((-d[2], d[1], d[0]))
    assert torch.allclose(bent.smpl_joints[0, 20], expected, atol=1e-5)
    assert torch.allclose(bent.smpl_joints[0, 21], rest.smpl_joints[0, 21])  # right wrist stays
    moved = (bent.vertices[0] - rest.vertices[0]).norm(dim=1)
    assert moved[VIDS["lindex"]] > 0.2 and moved[VIDS["rindex"]] == 0 and moved[VIDS["nose"]] == 0


def _fake_chumpy(root: Path) -> None:
    """A stand-in `chumpy` package whose Ch pickles its array in a state dict under 'x', as chumpy does."""
    (root / "chumpy").mkdir()
    (root / "chumpy" / "__init__.py").write_text("from .ch import Ch\n")
    (root / "chumpy" / "ch.py").write_text(
        "class Ch:\n"
        "    def __init__(self, x):\n"
        "        self.x = x\n"
        "    def __getstate__(self):\n"
        "        return {'x': self.x, '_dirty_vars': set(), '_itr': None}\n"
        "    def __setstate__(self, state):\n"
        "        self.__dict__.update(state)\n")


def test_official_chumpy_pickle_loads_without_chumpy(body_root: Path, tmp_path: Path, smpl: SMPL) -> None:
    plain = load_smpl_model_data(body_root / "smpl" / "SMPL_NEUTRAL.pkl")
    _fake_chumpy(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        import chumpy  # the fake one

        official = {**plain, "shapedirs": chumpy.Ch(plain["shapedirs"]), "v_template": chumpy.Ch(plain["v_template"]),
                    "J": chumpy.Ch(plain["J"]), "weights_prior": plain["weights"], "vert_sym_idxs": np.arange(6890)}
        model_dir = tmp_path / "models"
        model_dir.mkdir()
        with open(model_dir / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "wb") as fh:
            pickle.dump(official, fh, protocol=2)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "chumpy" or m.startswith("chumpy.")]:
            del sys.modules[name]
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401
    data = load_smpl_model_data(model_dir / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    assert isinstance(data["shapedirs"], np.ndarray) and np.array_equal(data["shapedirs"], plain["shapedirs"])
    assert np.array_equal(data["v_template"], plain["v_template"])
    model = SMPL(model_dir, "neutral", j_regressor_extra=body_root / "J_regressor_extra.npy")
    pose = _zero_pose(1)
    pose["betas"][0, 0] = 1.5
    assert torch.allclose(model(**pose).joints, smpl(**pose).joints)


def test_npz_model_loads(body_root: Path, tmp_path: Path, smpl: SMPL) -> None:
    data = load_smpl_model_data(body_root / "smpl" / "SMPL_NEUTRAL.pkl")
    (tmp_path / "smpl").mkdir()
    np.savez(tmp_path / "smpl" / "SMPL_NEUTRAL.npz", **{**data, "J_regressor": data["J_regressor"].toarray()})
    shutil.copy(body_root / "J_regressor_extra.npy", tmp_path)
    model = SMPL(tmp_path / "smpl", "neutral")  # the extra regressor is found next to smpl/
    assert torch.allclose(model(**_zero_pose(2)).vertices, smpl(**_zero_pose(2)).vertices)


def test_missing_model_names_the_file_and_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        build_smpl(DataPaths.from_root(tmp_path), "male")
    message = str(err.value)
    assert str(tmp_path / "smpl" / "SMPL_MALE.pkl") in message and "smpl.is.tue.mpg.de" in message
    assert "python -m datasets.synthetic.body_model" in message
    with pytest.raises(FileNotFoundError, match="J_regressor_h36m.npy"):
        load_j_regressor(tmp_path / "J_regressor_h36m.npy")
    with pytest.raises(ValueError, match="gender"):
        find_smpl_model_file(tmp_path, "child")


def test_wrong_shape_names_key_expected_and_found(body_root: Path, tmp_path: Path) -> None:
    data = load_smpl_model_data(body_root / "smpl" / "SMPL_NEUTRAL.pkl")
    with open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump({**data, "weights": data["weights"][:, :22]}, fh)
    with pytest.raises(ValueError) as err:
        SMPL(tmp_path, "neutral", j_regressor_extra=body_root / "J_regressor_extra.npy")
    assert "'weights'" in str(err.value) and "(6890, 24)" in str(err.value) and "(6890, 22)" in str(err.value)


def test_h36m_regressor_gives_17_ordered_joints(smpl: SMPL, body_root: Path) -> None:
    regressor = load_j_regressor(body_root / "J_regressor_h36m.npy")
    h36m = torch.einsum("jv,bvc->bjc", regressor, smpl(**_zero_pose(1)).vertices)
    assert h36m.shape == (1, 17, 3)
    assert h36m[0, 1, 0] > 0 > h36m[0, 4, 0] and h36m[0, 10, 1] > h36m[0, 9, 1] > h36m[0, 8, 1] > h36m[0, 0, 1]
