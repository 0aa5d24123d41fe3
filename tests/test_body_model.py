"""Tests of the procedural SMPL-format body (datasets/synthetic/body_model.py)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch
import trimesh
from smplx.vertex_ids import vertex_ids

from datasets.synthetic import body_model as bm
from utils.constants import SMPL_JOINT_NAMES, SMPL_PARENTS

VIDS = vertex_ids["smplh"]
J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def body() -> bm.BodyMesh:
    return bm.build_body()


def _load(body_root: Path, gender: str) -> dict:
    with open(body_root / "smpl" / f"SMPL_{gender.upper()}.pkl", "rb") as fh:
        return pickle.load(fh, encoding="latin1")


@pytest.fixture(scope="module")
def neutral(body_root: Path) -> dict:
    return _load(body_root, "neutral")


def _joints(model: dict) -> np.ndarray:
    return model["J_regressor"] @ model["v_template"]  # [24, 3]


def test_files_have_smpl_keys_shapes_and_dtypes(body_root: Path, neutral: dict) -> None:
    expected = {"v_template": (6890, 3), "shapedirs": (6890, 3, 10), "posedirs": (6890, 3, 207),
                "J_regressor": (24, 6890), "weights": (6890, 24), "kintree_table": (2, 24), "f": (13776, 3)}
    for gender in ("neutral", "male", "female"):
        model = _load(body_root, gender)
        assert {k: model[k].shape for k in expected} == expected
    assert scipy.sparse.issparse(neutral["J_regressor"])
    assert neutral["f"].dtype == np.uint32 and neutral["kintree_table"].dtype == np.uint32
    assert neutral["kintree_table"][0, 0] == 4294967295
    assert neutral["kintree_table"][0, 1:].tolist() == SMPL_PARENTS[1:]
    assert neutral["f"].max() == 6889 and len(np.unique(neutral["f"])) == 6890  # every vertex used
    extra, h36m = np.load(body_root / "J_regressor_extra.npy"), np.load(body_root / "J_regressor_h36m.npy")
    assert extra.shape == (9, 6890) and h36m.shape == (17, 6890)
    for rows in (neutral["J_regressor"].toarray(), extra, h36m):  # convex combinations
        assert rows.min() >= 0 and np.allclose(rows.sum(1), 1.0)
    assert np.allclose(neutral["weights"].sum(1), 1.0) and neutral["weights"].min() >= 0


def test_whole_surface_is_one_closed_outward_genus0_surface(body: bm.BodyMesh) -> None:
    mesh = trimesh.Trimesh(body.vertices, body.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.euler_number == 2  # V - E + F = 6890 - 20664 + 13776: one sphere-like surface, as SMPL's
    assert 0.05 < mesh.volume < 0.1  # m^3; a 70 kg person is ~0.07 m^3


def test_each_part_is_closed_and_outward(body: bm.BodyMesh) -> None:
    assert len(body.part_names) == 28
    for part, name in enumerate(body.part_names):
        restored = [tri for p, tri in body.removed if p == part]  # the triangles cut for the tunnels
        faces = np.concatenate([body.faces[body.face_part == part], np.array(restored).reshape(-1, 3)])
        sub = trimesh.Trimesh(body.vertices, faces, process=False)
        sub.remove_unreferenced_vertices()
        assert sub.is_watertight and sub.is_winding_consistent, name
        assert sub.volume > 0, name


def test_tunnels_are_hidden_inside_the_joined_parts(body: bm.BodyMesh) -> None:
    # removed triangles come in (parent, child) pairs; each must lie inside the other part, so no hole shows
    assert len(body.removed) == 2 * 27
    for (parent, tri_p), (child, tri_c) in zip(body.removed[::2], body.removed[1::2], strict=True):
        for tri, other in ((tri_p, child), (tri_c, parent)):
            faces = np.concatenate([body.faces[body.face_part == other],
                                    np.array([t for q, t in body.removed if q == other])])
            for vertex in tri:
                assert _winding_number(body.vertices[faces], body.vertices[vertex]) > 0.99, body.part_names[other]


def test_template_placement_like_smpl(neutral: dict) -> None:
    v, joints = neutral["v_template"], _joints(neutral)
    assert 1.65 < v[:, 1].max() - v[:, 1].min() < 1.75  # height (m)
    assert np.allclose(joints[J["pelvis"]], (0, -0.22, 0), atol=0.03)
    assert abs(v[:, 1].max() - 0.5) < 0.06 and abs(v[:, 1].min() + 1.15) < 0.05
    assert np.allclose(joints, bm.NEUTRAL_JOINTS, atol=1e-4)  # the regressor reproduces the design


def test_named_joints_are_where_their_names_say(neutral: dict) -> None:
    v, j = neutral["v_template"], _joints(neutral)
    floor = v[:, 1].min()
    chain = ["pelvis", "spine1", "spine2", "spine3", "neck", "head"]
    assert all(j[J[a], 1] < j[J[b], 1] for a, b in zip(chain[:-1], chain[1:], strict=True))
    for side, sign in (("left", 1), ("right", -1)):
        for part in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand"):
            assert sign * j[J[f"{side}_{part}"], 0] > 0, f"{side}_{part}"
        assert j[J[f"{side}_ankle"], 1] - floor < 0.1
        assert j[J[f"{side}_foot"], 2] > j[J[f"{side}_ankle"], 2] + 0.08  # toes ahead of the ankle
        assert sign * j[J[f"{side}_wrist"], 0] > 0.6  # T-pose arm span
    head = j[J["head"]]
    nose, leye, reye, lear = v[VIDS["nose"]], v[VIDS["leye"]], v[VIDS["reye"]], v[VIDS["lear"]]
    assert nose[2] > head[2] + 0.08 and head[1] < nose[1] < leye[1]  # in front, below the eyes
    assert leye[0] > 0 > reye[0] and leye[2] > head[2] + 0.05 and lear[0] > leye[0] + 0.03
    for side, sign in (("L", 1), ("R", -1)):
        big, small, heel = v[VIDS[f"{side}BigToe"]], v[VIDS[f"{side}SmallToe"]], v[VIDS[f"{side}Heel"]]
        assert big[2] > heel[2] + 0.2 and sign * small[0] > sign * big[0]  # small toe outside the big one
        assert max(big[1], small[1], heel[1]) - floor < 0.03
    tips = {t: v[VIDS[f"l{t}"]] for t in ("thumb", "index", "middle", "ring", "pinky")}
    assert all(tips[t][0] > j[J["left_hand"], 0] + 0.05 for t in ("index", "middle", "ring", "pinky"))
    assert tips["thumb"][0] > j[J["left_wrist"], 0] + 0.04
    assert tips["thumb"][2] > tips["index"][2] > tips["middle"][2] > tips["ring"][2] > tips["pinky"][2]


def test_landmark_vertices_lie_on_their_parts(body: bm.BodyMesh) -> None:
    expect = {"nose": "nose", "leye": "head", "rear": "right_ear", "lthumb": "left_thumb", "rpinky": "right_pinky",
              "LBigToe": "left_foot", "RHeel": "right_foot", "lindex": "left_index", "rmiddle": "right_middle"}
    for key, part in expect.items():
        assert body.part_names[body.vertex_part[VIDS[key]]] == part, key


def test_joints_lie_inside_their_parts(body: bm.BodyMesh) -> None:
    owners = {"pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso", "left_collar": "torso",
              "neck": "neck", "head": "head", "left_hip": "left_thigh", "left_knee": "left_thigh",
              "left_ankle": "left_shin", "left_foot": "left_foot", "left_shoulder": "left_upper_arm",
              "left_elbow": "left_forearm", "left_wrist": "left_forearm", "left_hand": "left_palm"}
    for joint, part in owners.items():
        p = body.part_names.index(part)
        faces = np.concatenate([body.faces[body.face_part == p], np.array([t for q, t in body.removed if q == p])])
        assert abs(_winding_number(body.vertices[faces], body.joints[J[joint]]) - 1) < 1e-6, joint
        assert abs(_winding_number(body.vertices[faces], body.joints[J[joint]] + (0, 0, 1))) < 1e-6, joint


def _winding_number(triangles: np.ndarray, point: np.ndarray) -> float:
    """Sum of the signed solid angles of the triangles [F, 3, 3] seen from point, over 4 pi (1 inside, 0 outside)."""
    a, b, c = (triangles - point).transpose(1, 0, 2)
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
    det = np.einsum("ij,ij->i", a, np.cross(b, c))
    den = la * lb * lc + (a * b).sum(1) * lc + (b * c).sum(1) * la + (c * a).sum(1) * lb
    return float(2 * np.arctan2(det, den).sum() / (4 * np.pi))


def test_shape_direction_0_changes_height_monotonically(neutral: dict) -> None:
    heights = [np.ptp((neutral["v_template"] + neutral["shapedirs"][..., 0] * b)[:, 1]) for b in np.linspace(-3, 3, 7)]
    assert np.all(np.diff(heights) > 0.05)  # > 5 cm per unit beta
    others = [np.abs(neutral["shapedirs"][..., k]).max() for k in range(1, 10)]
    assert min(others) > 0.005  # every direction does something (metres per unit beta)


def test_male_and_female_differ_in_proportions(body_root: Path) -> None:
    stats = {}
    for gender in ("male", "neutral", "female"):
        model = _load(body_root, gender)
        j = _joints(model)
        stats[gender] = (np.ptp(model["v_template"][:, 1]), j[J["left_shoulder"], 0] / j[J["left_hip"], 0])
    assert stats["male"][0] > stats["neutral"][0] + 0.03 > stats["female"][0] + 0.06  # heights
    assert stats["male"][1] > stats["neutral"][1] > stats["female"][1]  # shoulder / hip width


@pytest.mark.parametrize("dense", [False, True])
def test_smplx_reads_the_files(body_root: Path, neutral: dict, tmp_path: Path, dense: bool) -> None:
    model_dir = body_root / "smpl"
    if dense:
        model_dir = tmp_path
        with open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as fh:
            pickle.dump({**neutral, "J_regressor": neutral["J_regressor"].toarray()}, fh, protocol=2)
    model = smplx.SMPL(str(model_dir), gender="neutral", create_transl=False)
    out = model(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
    assert out.vertices.shape == (1, 6890, 3) and out.joints.shape == (1, 45, 3)
    assert np.allclose(out.joints[0, :24].numpy(), bm.NEUTRAL_JOINTS, atol=1e-4)
    assert np.allclose(out.joints[0, 24].numpy(), neutral["v_template"][VIDS["nose"]], atol=1e-6)


def test_regressor_rows_reproduce_targets_convexly() -> None:
    # a unit cube's corners: the centre is reachable, the uniform mix of all 8 corners
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    rows = bm.regressor_rows(corners, np.array([[0.5, 0.5, 0.5], [0.25, 0.5, 0.5]]))
    assert np.allclose(rows[0], 1 / 8, atol=1e-4)
    assert np.allclose(rows @ corners, [[0.5, 0.5, 0.5], [0.25, 0.5, 0.5]], atol=1e-5)
    assert rows.min() >= 0 and np.allclose(rows.sum(1), 1)


def test_cli_writes_the_files(tmp_path: Path) -> None:
    assert bm.main(["--out", str(tmp_path), "--seed", "1"]) == 0
    names = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert names == ["J_regressor_extra.npy", "J_regressor_h36m.npy", "SMPL_FEMALE.pkl", "SMPL_MALE.pkl",
                     "SMPL_NEUTRAL.pkl"]
