"""A procedural human body written in the official SMPL file format.

The licensed SMPL model cannot be shipped, so the synthetic world uses this stand-in. It has SMPL's counts (6,890
vertices, 13,776 faces), kinematic tree and template placement (a ~1.7 m T-pose, Y up, facing +Z, left = +X, pelvis
near (0, -0.22, 0)), and the vertices smplx reads as nose, eyes, ears, toes, heels and fingertips sit at SMPL's
indices on the right body parts, so all 49 joints of docs/method.md §2.5 mean what their names say.

Construction: 28 convex-ish tubes (torso, neck, head, nose, ears, upper/lower arms, palms, fingers, thighs, shins,
feet) are each a closed, outward-oriented surface; each child is joined to its parent by removing one triangle from
each inside their overlap and stitching a hidden 6-triangle tunnel between them (a connected sum). The result is one
closed genus-0 surface, so F = 2 V - 4 exactly as for SMPL. Skinning weights blend along each bone; ten shape
directions change size, girth and proportions; pose correctives are zero.

    python -m datasets.synthetic.body_model --out data/synthetic
    python -m datasets.synthetic.body_model --out /tmp/body --seed 3
"""
from __future__ import annotations

import argparse
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse
from scipy.interpolate import PchipInterpolator
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from datasets.synthetic.body_design import (  # noqa: F401 (re-exported)
    _J,
    GENDER_BETAS,
    NEUTRAL_JOINTS,
    NUM_BETAS,
    NUM_FACES,
    NUM_POSE_BASIS,
    NUM_VERTICES,
    Part,
    all_parts,
    landmark_targets,
    regressor_targets,
    shape_directions,
    skinning_weights,
)
from utils.constants import SMPL_PARENTS

logger = logging.getLogger(__name__)




@dataclass
class BodyMesh:
    """The neutral body and its construction record (used by the writer and the tests).

    Attributes:
        vertices: [6890, 3] metres, neutral template.
        faces: [13776, 3] int64, outward (counter-clockwise seen from outside).
        vertex_part: [6890] index into `part_names`.
        face_part: [13776] part of each face, -1 for the tunnel faces joining two parts.
        removed: (part, [3] vertex ids) per removed triangle, in the part's original orientation.
        part_names: names of the 28 parts.
        joints: [24, 3] designed SMPL joint locations (metres).
        weights: [6890, 24] skinning weights, rows sum to 1.
        shapedirs: [6890, 3, 10] metres per unit beta.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_part: np.ndarray
    face_part: np.ndarray
    removed: list[tuple[int, np.ndarray]]
    part_names: list[str]
    joints: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray


def _superellipse(n_seg: int, exponent: float) -> np.ndarray:
    """[n_seg, 2] points of the unit superellipse |x|^e + |y|^e = 1, half a step off the axes (so that the body's
    midline runs between two columns of vertices)."""
    theta = 2 * np.pi * (np.arange(n_seg) + 0.5) / n_seg
    c, s = np.cos(theta), np.sin(theta)
    return np.stack((np.sign(c) * np.abs(c) ** (2 / exponent), np.sign(s) * np.abs(s) ** (2 / exponent)), 1)


def _profile(part: Part, a: np.ndarray) -> np.ndarray:
    """[N, 4] (r1, r2, dy, dz) of the part's cross-section at axial positions a (clamped to the stations)."""
    st = np.asarray(part.stations, dtype=float)
    a = np.clip(a, st[0, 0], st[-1, 0])
    if len(st) == 1:
        return np.repeat(st[:, 1:], len(a), axis=0)
    return PchipInterpolator(st[:, 0], st[:, 1:], axis=0)(a)


def _centres(part: Part, a: np.ndarray) -> np.ndarray:
    """[N, 3] axis points (with the station offsets) at axial positions a."""
    prof = _profile(part, a)
    offset = np.stack((np.zeros(len(a)), prof[:, 2], prof[:, 3]), 1)
    return part.origin + np.clip(a, part.a_min, part.a_max)[:, None] * part.axis + offset


def _ring_axial(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Axial positions [R] of the rings from pole to pole and their radius factors [R] (poles excluded)."""
    psi = np.arange(1, part.n_cap + 1) * np.pi / (2 * (part.n_cap + 1))  # cap latitude, equator -> pole
    body = np.linspace(part.a_min, part.a_max, part.n_body)
    a = np.concatenate((part.a_min - part.caps[0] * np.sin(psi[::-1]), body, part.a_max + part.caps[1] * np.sin(psi)))
    factor = np.concatenate((np.cos(psi[::-1]), np.ones(part.n_body), np.cos(psi)))
    return a, factor


def tube_mesh(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Closed outward-oriented surface of one part.

    Returns:
        vertices [2 + R * S, 3] metres (pole, rings of S points, pole) and faces [2 R S, 3].
    """
    a, factor = _ring_axial(part)
    prof = _profile(part, a)
    unit = _superellipse(part.n_seg, part.exponent)  # [S, 2]
    radial = (prof[:, None, 0:1] * unit[None, :, 0:1]) * part.e1 + (prof[:, None, 1:2] * unit[None, :, 1:2]) * part.e2
    rings = _centres(part, a)[:, None, :] + part.axis * (a - np.clip(a, part.a_min, part.a_max))[:, None, None]
    rings = rings + factor[:, None, None] * radial
    poles = _centres(part, np.array([part.a_min, part.a_max])) + np.outer((-part.caps[0], part.caps[1]), part.axis)
    verts = np.concatenate((poles[:1], rings.reshape(-1, 3), poles[1:]))
    n_r, n_s = len(a), part.n_seg
    idx = 1 + np.arange(n_r * n_s).reshape(n_r, n_s)
    nxt = np.roll(idx, -1, axis=1)
    quads = np.stack((idx[:-1], nxt[:-1], nxt[1:], idx[1:]), -1).reshape(-1, 4)
    faces = np.concatenate((quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]))
    last = len(verts) - 1
    fan0 = np.stack((np.zeros(n_s, int), nxt[0], idx[0]), 1)
    fan1 = np.stack((np.full(n_s, last), idx[-1], nxt[-1]), 1)
    faces = np.concatenate((fan0, faces, fan1))
    if signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]
    return verts, faces


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (m^3) enclosed by a closed triangle surface; positive for outward faces."""
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def inside_depth(part: Part, points: np.ndarray) -> np.ndarray:
    """[N] 1 - normalised radial distance of points from the part's smooth surface (> 0 inside)."""
    a = (points - part.origin) @ part.axis
    prof = _profile(part, a)
    q = points - _centres(part, a) - part.axis * (a - np.clip(a, part.a_min, part.a_max))[:, None]
    over = np.maximum(part.a_min - a, 0) / part.caps[0] + np.maximum(a - part.a_max, 0) / part.caps[1]
    factor = np.sqrt(np.clip(1 - over**2, 1e-12, None))
    x, y = np.abs(q @ part.e1) / prof[:, 0], np.abs(q @ part.e2) / prof[:, 1]
    norm = (x**part.exponent + y**part.exponent) ** (1 / part.exponent) / factor
    return np.where(over < 1, 1 - norm, -1.0)


def _pick_face(verts: np.ndarray, faces: np.ndarray, other: Part, banned: set[int]) -> int:
    """Index of the face lying deepest inside `other` (all three vertices inside), avoiding banned vertices."""
    depth = inside_depth(other, verts)[faces].min(1)
    depth[[i for i, f in enumerate(faces) if banned.intersection(f.tolist())]] = -np.inf
    best = int(np.argmax(depth))
    if depth[best] <= 1 - np.cos(np.pi / other.n_seg):  # inside the smooth surface but outside its polygon
        raise RuntimeError(f"no face lies inside part {other.name} (depth {depth[best]:.3f}): parts overlap too little")
    return best


def _tunnel(tri_a: np.ndarray, tri_b: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """[6, 3] faces joining the holes left by removing triangle tri_a of one part and tri_b of another.

    The rim of hole a is walked a_i -> a_{i+1}, that of hole b in the opposite sense (b_{c-i}), which keeps the
    orientation consistent; c is the rotation giving the shortest tunnel edges.
    """
    def cost(c: int) -> float:
        return float(sum(np.linalg.norm(verts[tri_a[i]] - verts[tri_b[(c - i) % 3]]) for i in range(3)))

    c = min(range(3), key=cost)
    out = []
    for i in range(3):
        a0, a1 = tri_a[i], tri_a[(i + 1) % 3]
        b0, b1 = tri_b[(c - i) % 3], tri_b[(c - i - 1) % 3]
        out += [(a0, a1, b1), (a0, b1, b0)]
    return np.array(out)


def _assemble(parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """Merge the part surfaces into one genus-0 surface; returns verts, faces, vertex_part, face_part, removed."""
    meshes = [tube_mesh(p) for p in parts]
    starts = np.cumsum([0] + [len(v) for v, _ in meshes])
    verts = np.concatenate([v for v, _ in meshes])
    faces = np.concatenate([f + s for (_, f), s in zip(meshes, starts[:-1], strict=True)])
    face_part = np.concatenate([np.full(len(f), i) for i, (_, f) in enumerate(meshes)])
    vertex_part = np.concatenate([np.full(len(v), i) for i, (v, _) in enumerate(meshes)])
    names = [p.name for p in parts]
    keep = np.ones(len(faces), bool)
    removed, tunnels, banned = [], [], set()
    for child, part in enumerate(parts):
        if part.parent is None:
            continue
        parent = names.index(part.parent)
        picks = []
        for own, other in ((parent, child), (child, parent)):
            cand = np.flatnonzero((face_part == own) & keep)
            picks.append(cand[_pick_face(verts, faces[cand], parts[other], banned)])
        for part_id, face in zip((parent, child), picks, strict=True):
            keep[face] = False
            banned.update(faces[face].tolist())
            removed.append((part_id, faces[face].copy()))
        tunnels.append(_tunnel(faces[picks[0]], faces[picks[1]], verts))
    tunnels = np.concatenate(tunnels)
    faces = np.concatenate((faces[keep], tunnels))
    face_part = np.concatenate((face_part[keep], np.full(len(tunnels), -1)))
    return verts, faces, vertex_part, face_part, removed


def _pad_vertices(verts, faces, vertex_part, face_part, n_missing: int):
    """Split the n_missing largest torso faces at their centroids (+1 vertex, +2 faces each, surface unchanged)."""
    tri = verts[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    area[face_part != 0] = -1
    split = np.argsort(-area)[:n_missing]
    new_ids = len(verts) + np.arange(n_missing)
    a, b, c = faces[split].T
    extra = np.concatenate((np.stack((a, b, new_ids), 1), np.stack((b, c, new_ids), 1)))
    faces = faces.copy()
    faces[split] = np.stack((c, a, new_ids), 1)
    verts = np.concatenate((verts, tri[split].mean(1)))
    return (verts, np.concatenate((faces, extra)), np.concatenate((vertex_part, np.zeros(n_missing, int))),
            np.concatenate((face_part, np.zeros(2 * n_missing, int))))


def _place_landmarks(verts: np.ndarray, vertex_part: np.ndarray, parts: Sequence[Part]) -> np.ndarray:
    """Permutation new -> old putting the landmark vertices at the indices smplx reads (`vertex_ids['smplh']`)."""
    names = [p.name for p in parts]
    chosen: dict[int, int] = {}
    for key, (part_name, target) in landmark_targets(parts).items():
        ids = np.flatnonzero(vertex_part == names.index(part_name))
        chosen[SMPLX_VERTEX_IDS["smplh"][key]] = int(ids[np.argmin(np.linalg.norm(verts[ids] - target, axis=1))])
    if len(set(chosen.values())) != len(chosen):
        raise RuntimeError("two landmarks chose the same vertex")
    rest = iter(np.setdiff1d(np.arange(len(verts)), list(chosen.values())))
    return np.array([chosen[i] if i in chosen else next(rest) for i in range(len(verts))])


def build_body() -> BodyMesh:
    """Build the neutral procedural body (deterministic)."""
    parts = all_parts()
    verts, faces, vertex_part, face_part, removed = _assemble(parts)
    if len(verts) > NUM_VERTICES:
        raise RuntimeError(f"parts have {len(verts)} vertices, more than SMPL's {NUM_VERTICES}")
    verts, faces, vertex_part, face_part = _pad_vertices(
        verts, faces, vertex_part, face_part, NUM_VERTICES - len(verts))
    new_to_old = _place_landmarks(verts, vertex_part, parts)
    old_to_new = np.argsort(new_to_old)
    verts, vertex_part = verts[new_to_old], vertex_part[new_to_old]
    faces = old_to_new[faces]
    removed = [(p, old_to_new[tri]) for p, tri in removed]
    assert faces.shape == (NUM_FACES, 3), faces.shape
    axial, centres = _axial_frame(verts, vertex_part, parts)
    return BodyMesh(
        vertices=verts, faces=faces.astype(np.int64), vertex_part=vertex_part, face_part=face_part, removed=removed,
        part_names=[p.name for p in parts], joints=NEUTRAL_JOINTS.copy(),
        weights=skinning_weights(verts, vertex_part, axial, parts),
        shapedirs=shape_directions(verts, vertex_part, centres, parts),
    )


def _axial_frame(verts: np.ndarray, vertex_part: np.ndarray, parts: Sequence[Part]):
    """Per-vertex axial coordinate [V] (metres along its part's axis) and axis point [V, 3]."""
    axial, centres = np.zeros(len(verts)), np.zeros_like(verts)
    for i, part in enumerate(parts):
        m = vertex_part == i
        axial[m] = (verts[m] - part.origin) @ part.axis
        centres[m] = _centres(part, axial[m])
    return axial, centres


def regressor_rows(vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Convex vertex weights [J, V] reproducing each target point [J, 3] from nearby vertices.

    Each row mixes the k nearest vertices: the minimum-norm correction of uniform weights that satisfies
    `row @ vertices == target, sum(row) == 1`, dropping the most negative vertex until all weights are >= 0
    (k grows until the target lies inside the hull of the kept vertices).
    """
    rows = np.zeros((len(targets), len(vertices)))
    for j, target in enumerate(targets):
        order = np.argsort(np.linalg.norm(vertices - target, axis=1))
        for k in sorted({min(k, len(vertices)) for k in (32, 64, 128, 256)}):
            ids, w = _convex_weights(vertices[order[:k]], target)
            if w is not None:
                rows[j, order[:k][ids]] = w
                break
        else:
            raise RuntimeError(f"target {j} at {target} is not inside the hull of nearby vertices")
    return rows


def _convex_weights(points: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Kept indices into points [K, 3] and their weights (>= 0, sum 1, reproducing target), or None if none."""
    keep = np.arange(len(points))
    b = np.append(target, 1.0)
    while len(keep) >= 4:
        a = np.vstack((points[keep].T, np.ones(len(keep))))  # [4, n] equality constraints
        w0 = np.full(len(keep), 1.0 / len(keep))
        gram = a @ a.T
        if np.linalg.cond(gram) > 1e12:
            return keep, None
        w = w0 + a.T @ np.linalg.solve(gram, b - a @ w0)
        if w.min() >= 0:
            return keep, w
        keep = np.delete(keep, np.argmin(w))
    return keep, None


def _model_dict(body: BodyMesh, v_template: np.ndarray, j_regressor: np.ndarray) -> dict:
    """The SMPL pickle content (keys and shapes of the official files, plain numpy / scipy)."""
    kintree = np.array([SMPL_PARENTS, list(range(24))], dtype=np.int64)
    kintree[0, 0] = 4294967295  # SMPL's "no parent"
    return {
        "v_template": v_template, "shapedirs": body.shapedirs, "J_regressor": scipy.sparse.csc_matrix(j_regressor),
        "posedirs": np.zeros((NUM_VERTICES, 3, NUM_POSE_BASIS), np.float32),  # no pose correctives
        "weights": body.weights, "kintree_table": kintree.astype(np.uint32), "f": body.faces.astype(np.uint32),
        "J": j_regressor @ v_template, "bs_style": "lbs", "bs_type": "lrotmin",
    }


def write_body_model(out_root: Path, seed: int = 0) -> None:
    """Write `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl`, `J_regressor_extra.npy` and `J_regressor_h36m.npy`.

    Args:
        out_root: data root to write into (created if needed).
        seed: draws small individual variations of the male and female templates around their canonical shape
            coefficients (the neutral body does not depend on it).
    """
    out_root = Path(out_root)
    (out_root / "smpl").mkdir(parents=True, exist_ok=True)
    body = build_body()
    verts = body.vertices
    j_regressor = regressor_rows(verts, body.joints)
    rng = np.random.default_rng(seed)
    for gender, coeffs in GENDER_BETAS.items():
        betas = np.asarray(coeffs) + (0.15 * rng.standard_normal(NUM_BETAS) if gender != "neutral" else 0.0)
        v_template = verts + body.shapedirs @ betas
        with open(out_root / "smpl" / f"SMPL_{gender.upper()}.pkl", "wb") as fh:
            pickle.dump(_model_dict(body, v_template, j_regressor), fh, protocol=2)
    extra_targets, h36m_targets = regressor_targets(body.joints)
    np.save(out_root / "J_regressor_extra.npy", regressor_rows(verts, extra_targets))
    np.save(out_root / "J_regressor_h36m.npy", regressor_rows(verts, h36m_targets))
    logger.info("wrote the procedural SMPL-format body to %s", out_root)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="data root receiving smpl/ and the regressors")
    parser.add_argument("--seed", type=int, default=0, help="variation of the male and female templates")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_body_model(args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
