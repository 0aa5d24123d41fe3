"""The design of the procedural body: joint locations, the 28 parts, landmark targets, skinning and shape directions.

`datasets.synthetic.body_model` builds the mesh from these and writes the SMPL-format files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

NUM_VERTICES = 6890
NUM_FACES = 13776
NUM_BETAS = 10
NUM_POSE_BASIS = 207  # 23 joints x 9 rotation-matrix entries

# --- design: joints (metres, neutral T-pose; left side, the right one is mirrored in x) -----------------------------
_J = {  # SMPL joint index -> location
    0: (0, -0.225, 0.02), 1: (0.07, -0.315, 0.02), 3: (0, -0.105, 0.0), 4: (0.105, -0.70, 0.025),
    6: (0, 0.03, 0.02), 7: (0.085, -1.09, -0.02), 9: (0, 0.085, 0.03), 10: (0.115, -1.145, 0.11),
    12: (0, 0.285, -0.015), 13: (0.075, 0.19, -0.01), 15: (0, 0.37, 0.035), 16: (0.175, 0.23, -0.015),
    18: (0.435, 0.215, -0.03), 20: (0.685, 0.22, -0.035), 22: (0.775, 0.215, -0.035),
}
_MIRROR = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}


def _neutral_joints() -> np.ndarray:
    """[24, 3] designed SMPL joints of the neutral template (right = left mirrored in x)."""
    out = np.zeros((24, 3))
    for j, (x, y, z) in _J.items():
        out[j] = (x, y, z)
        if j in _MIRROR:
            out[_MIRROR[j]] = (-x, y, z)
    return out


NEUTRAL_JOINTS = _neutral_joints()
# canonical shape coefficients of the three templates (see `shape_directions` for what each beta does)
GENDER_BETAS = {
    "neutral": [0.0] * NUM_BETAS,
    "male": [1.1, 0.2, 0.3, 1.2, -0.8, 0.3, 0.1, 0.0, 0.3, 0.6],
    "female": [-1.0, -0.2, -0.2, -1.2, 1.3, -0.3, -0.1, 0.0, -0.2, -0.6],
}


@dataclass
class Part:
    """One body part: a closed tube around the axis origin -> end with superellipse cross-sections.

    `stations` are (a metres along the axis, r1 along `hint`, r2 across, dy, dz world offsets of the centre);
    `caps` are the heights (metres) of the end caps; `knots` (a, joint) give the skinning weights along the axis.
    """

    name: str
    parent: str | None
    origin: np.ndarray
    end: np.ndarray
    hint: tuple[float, float, float]
    stations: tuple[tuple[float, ...], ...]
    caps: tuple[float, float]
    knots: tuple[tuple[float, int], ...]
    n_seg: int
    n_body: int
    n_cap: int
    exponent: float = 2.0

    def __post_init__(self) -> None:
        self.origin, self.end = np.asarray(self.origin, float), np.asarray(self.end, float)
        self.axis = (self.end - self.origin) / np.linalg.norm(self.end - self.origin)
        e1 = np.asarray(self.hint, float) - np.dot(self.hint, self.axis) * self.axis
        self.e1 = e1 / np.linalg.norm(e1)
        self.e2 = np.cross(self.axis, self.e1)
        self.a_min, self.a_max = self.stations[0][0], self.stations[-1][0]

    def mirrored(self) -> "Part":
        flip = np.array([-1.0, 1.0, 1.0])
        return Part(
            self.name.replace("left", "right"), self.parent and self.parent.replace("left", "right"),
            self.origin * flip, self.end * flip, tuple(np.asarray(self.hint) * flip), self.stations, self.caps,
            tuple((a, _MIRROR.get(j, j)) for a, j in self.knots), self.n_seg, self.n_body, self.n_cap, self.exponent)


def _limb(name, parent, p0, p1, radii, caps, joints, blend, res, hint=(0, 0, 1), exponent=2.0, knots=None) -> Part:
    """A part along p0 -> p1 with radii given at fractions of its length; knots blend joints (prev, own, next)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    stations = tuple((f * length, *rest) for f, *rest in radii)
    prev, own, nxt = joints
    knots = knots or ((-blend[0], prev), (blend[0], own), (length - blend[1], own), (length + blend[1], nxt))
    return Part(name, parent, p0, p1, hint, stations, caps, knots, *res, exponent=exponent)


def all_parts() -> list[Part]:
    """The 28 parts of the neutral body (the torso first: it is the root of the part tree)."""
    j = {k: np.asarray(v, float) for k, v in _J.items()}
    up, x_hint = (0, 1, 0), (1, 0, 0)
    torso = Part("torso", None, (0, 0, 0), up, x_hint, (
        (-0.37, 0.150, 0.095, 0, 0.0), (-0.30, 0.170, 0.115, 0, -0.005), (-0.22, 0.172, 0.118, 0, -0.005),
        (-0.13, 0.155, 0.105, 0, 0.005), (-0.03, 0.140, 0.100, 0, 0.01), (0.07, 0.150, 0.110, 0, 0.015),
        (0.16, 0.165, 0.115, 0, 0.015), (0.23, 0.180, 0.095, 0, -0.005), (0.28, 0.150, 0.075, 0, -0.015)),
        (0.05, 0.035), ((-0.20, 0), (-0.04, 3), (0.058, 6), (0.185, 9)), 40, 16, 6, exponent=2.6)
    centre = [
        torso,
        _limb("neck", "torso", (0, 0.22, -0.02), (0, 0.33, 0.0), ((0, .055, .05, 0, 0), (1, .05, .047, 0, 0)),
              (0.03, 0.03), (9, 12, 15), (0.035, 0.03), (16, 4, 4), hint=x_hint),
        Part("head", "neck", (0, 0, 0), up, x_hint, (
            (0.335, .056, .070, 0, .035), (0.375, .068, .088, 0, .028), (0.42, .076, .097, 0, .022),
            (0.465, .075, .095, 0, .018)), (0.03, 0.075), ((0.30, 12), (0.34, 15)), 28, 14, 7),
        _limb("nose", "head", (0, 0.425, 0.095), (0, 0.41, 0.133), ((0, .02, .016, 0, 0), (.55, .016, .013, 0, 0),
              (1, .008, .008, 0, 0)), (0.01, 0.008), (15, 15, 15), (0.01, 0.01), (12, 3, 2), hint=x_hint),
    ]
    left = [
        _limb("left_ear", "head", (0.078, 0.415, 0.0), (0.078, 1.0, 0.0), ((0, .014, .022, 0, 0),), (0.03, 0.03),
              (15, 15, 15), (0.01, 0.01), (8, 1, 3), hint=x_hint),
        _limb("left_upper_arm", "torso", j[16], j[18], ((0, .052, .055, 0, 0), (.45, .047, .047, 0, 0),
              (1, .04, .04, 0, 0)), (0.055, 0.04), (13, 16, 18), (0.05, 0.04), (16, 10, 4)),
        _limb("left_forearm", "left_upper_arm", j[18], j[20], ((0, .04, .04, 0, 0), (.3, .042, .04, 0, 0),
              (1, .032, .022, 0, 0)), (0.04, 0.022), (16, 18, 20), (0.04, 0.03), (16, 10, 4)),
        _limb("left_palm", "left_forearm", j[20], j[22], ((0, .03, .018, 0, 0), (.5, .042, .016, 0, 0),
              (1, .042, .013, 0, 0)), (0.02, 0.012), (18, 20, 22), (0.03, 0.02), (24, 8, 3), exponent=3.0),
        _limb("left_thumb", "left_palm", j[20] + (0.02, -0.008, 0.025), j[20] + (0.053, -0.017, 0.074),
              ((0, .013, .012, 0, 0), (1, .009, .0085, 0, 0)), (0.01, 0.008), (20, 22, 22), (0.015, 0.01), (8, 5, 2)),
        _limb("left_thigh", "torso", j[1], j[4], ((0, .09, .085, 0, 0), (.25, .085, .08, 0, 0),
              (.65, .068, .063, 0, 0), (1, .055, .053, 0, 0)), (0.085, 0.05), (0, 1, 4), (0.06, 0.05), (20, 12, 5)),
        _limb("left_shin", "left_thigh", j[4], j[7], ((0, .052, .05, 0, 0), (.28, .058, .05, 0, -.008),
              (.65, .045, .04, 0, 0), (1, .035, .033, 0, 0)), (0.05, 0.03), (1, 4, 7), (0.05, 0.04), (16, 12, 4)),
        _limb("left_foot", "left_shin", (0.083, -1.13, -0.055), (0.12, -1.135, 0.14), (
            (0, .033, .032, 0, 0), (.25, .038, .045, .012, 0), (.6, .045, .027, -.006, 0),
            (1, .044, .018, -.014, 0)), (0.03, 0.03), (7, 7, 10), (0, 0), (16, 8, 4), hint=x_hint,
            knots=((0.14, 7), (0.19, 10))),
    ]
    for name, dz, length in (("index", .029, .07), ("middle", .01, .08), ("ring", -.009, .075), ("pinky", -.027, .06)):
        base = j[22] + (0.0, -0.002, dz)
        left.append(_limb(f"left_{name}", "left_palm", base, base + length * np.array([1, -0.03, dz * 0.3]),
                          ((0, .0135, .012, 0, 0), (.3, .0095, .0085, 0, 0), (1, .0072, .0066, 0, 0)),
                          (0.008, 0.007), (20, 22, 22), (0.015, 0.01), (8, 4, 2)))
    return centre + left + [p.mirrored() for p in left]


def landmark_targets(parts: Sequence[Part]) -> dict[str, tuple[str, np.ndarray]]:
    """smplx landmark name -> (part, point whose nearest vertex of that part becomes the landmark)."""
    byname = {p.name: p for p in parts}
    out: dict[str, tuple[str, np.ndarray]] = {"nose": ("nose", np.array([0, 0.40, 0.3]))}
    for side, sign in (("l", 1.0), ("r", -1.0)):
        full = "left" if side == "l" else "right"
        out[f"{side}eye"] = ("head", np.array([0.033 * sign, 0.447, 0.105]))
        out[f"{side}ear"] = (f"{full}_ear", np.array([0.3 * sign, 0.415, 0.01]))
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            p = byname[f"{full}_{tip}"]
            out[f"{side}{tip}"] = (p.name, p.end + p.axis)
        foot = side.upper()
        out[f"{foot}BigToe"] = (f"{full}_foot", np.array([0.105 * sign, -1.15, 0.175]))
        out[f"{foot}SmallToe"] = (f"{full}_foot", np.array([0.155 * sign, -1.155, 0.13]))
        out[f"{foot}Heel"] = (f"{full}_foot", np.array([0.083 * sign, -1.16, -0.095]))
    return out


def _smooth(t: np.ndarray) -> np.ndarray:
    """Smoothstep of t clipped to [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def skinning_weights(verts: np.ndarray, vertex_part: np.ndarray, axial: np.ndarray, parts: Sequence[Part]):
    """[V, 24] weights: smooth blends between the knots along each part, plus shoulder, hip and ankle blends."""
    weights = np.zeros((len(verts), 24))
    for i, part in enumerate(parts):
        m = np.flatnonzero(vertex_part == i)
        pos, joints = np.array([k[0] for k in part.knots]), [k[1] for k in part.knots]
        seg = np.clip(np.searchsorted(pos, axial[m]) - 1, 0, max(len(pos) - 2, 0))
        if len(pos) == 1:
            weights[m, joints[0]] = 1.0
            continue
        t = _smooth((axial[m] - pos[seg]) / (pos[seg + 1] - pos[seg]))
        np.add.at(weights, (m, np.take(joints, seg)), 1 - t)
        np.add.at(weights, (m, np.take(joints, seg + 1)), t)
    x, y = verts[:, 0], verts[:, 1]
    left = x > 0
    for names, blend, joint_l in (  # (parts, weight of the extra joint, its left index)
        (("torso",), _smooth((abs(x) - 0.06) / 0.10) * _smooth((y - 0.12) / 0.10), 13),
        (("torso",), _smooth((abs(x) - 0.04) / 0.10) * _smooth((-0.22 - y) / 0.10), 1),
        (("left_foot", "right_foot"), 0.5 * _smooth((y - _J[7][1] + 0.03) / 0.04), 4),
    ):
        m = np.isin(vertex_part, [i for i, p in enumerate(parts) if p.name in names])
        extra = np.where(left, joint_l, _MIRROR[joint_l])
        weights[m] *= (1 - blend[m])[:, None]
        np.add.at(weights, (np.flatnonzero(m), extra[m]), blend[m])
    return weights


def shape_directions(verts, vertex_part, centres, parts: Sequence[Part]) -> np.ndarray:
    """[V, 3, 10] shape directions (metres per unit beta).

    0 size (height), 1 girth, 2 leg length, 3 shoulder width, 4 hip width, 5 arm length, 6 head size, 7 belly,
    8 torso length, 9 limb muscle.
    """
    names = np.array([parts[i].name for i in vertex_part])
    x, y = verts[:, 0], verts[:, 1]
    side = np.sign(x)[:, None] * np.array([1.0, 0, 0])
    radial = verts - centres
    group = {g: np.array([any(k in n for k in keys) for n in names]) for g, keys in {
        "leg": ("thigh", "shin", "foot"), "limb": ("thigh", "shin", "arm"), "head": ("head", "nose", "ear"),
        "arm": ("arm", "palm", "thumb", "index", "middle", "ring", "pinky"), "torso": ("torso",)}.items()}
    girth = np.select([group["torso"], group["limb"] | (names == "neck"), group["head"]], [0.10, 0.09, 0.015], 0.03)
    y_leg = np.clip(y, _J[7][1], _J[1][1])
    dirs = np.zeros((len(verts), 3, NUM_BETAS))
    dirs[..., 0] = 0.045 * (verts - np.array(_J[0]))
    dirs[..., 1] = girth[:, None] * radial
    dirs[..., 2] = group["leg"][:, None] * (-0.05 * (_J[1][1] - y_leg))[:, None] * np.array([0, 1.0, 0])
    torso_sh = _smooth((abs(x) - 0.05) / 0.13) * _smooth((y - 0.10) / 0.12)
    dirs[..., 3] = 0.02 * np.where(group["arm"], 1.0, group["torso"] * torso_sh)[:, None] * side
    dirs[..., 4] = 0.018 * np.where(group["leg"], 1.0, group["torso"] * _smooth((-0.05 - y) / 0.15) * abs(x) / 0.17)[
        :, None] * side
    reach = np.clip(abs(x), _J[16][0], _J[20][0]) - _J[16][0]
    dirs[..., 5] = 0.06 * (group["arm"] * reach)[:, None] * side
    dirs[..., 6] = 0.08 * group["head"][:, None] * (verts - np.array([0, 0.31, 0.03]))
    belly = np.clip(np.sin(np.pi * (y + 0.22) / 0.34), 0, None) * np.clip(radial[:, 2] / 0.1, 0, None) ** 2
    dirs[:, 2, 7] = 0.035 * group["torso"] * belly
    dirs[:, 1, 8] = 0.04 * ~group["leg"] * (np.clip(y, -0.30, 0.15) + 0.30)
    dirs[..., 9] = 0.10 * group["limb"][:, None] * radial
    return dirs


def regressor_targets(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target points [9, 3] of J_regressor_extra and [17, 3] of J_regressor_h36m (docs/method.md §2.5 orders)."""
    j = joints
    hip_l, hip_r = j[1] + (0.015, -0.03, -0.005), j[2] + (-0.015, -0.03, -0.005)
    extra = [hip_r, hip_l, (0, 0.255, -0.01), (0, 0.52, 0.015), (0, -0.26, 0.015), (0, 0.24, 0.0), (0, 0.02, 0.02),
             (0, 0.315, 0.075), (0, 0.43, 0.03)]
    h36m = [(0, -0.24, 0.02), j[1] + (0.015, 0.03, 0), j[4], j[7], j[2] + (-0.015, 0.03, 0), j[5], j[8],
            (0, 0.0, 0.02), (0, 0.24, 0.0), (0, 0.40, 0.05), (0, 0.50, 0.01), j[16] - (0.015, 0, 0), j[18], j[20],
            j[17] + (0.015, 0, 0), j[19], j[21]]
    return np.array(extra, float), np.array(h36m, float)
