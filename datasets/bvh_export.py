"""A person track as a BVH motion file (`person_<k>.bvh`): the 24 SMPL joints and one frame per key.

Conventions (docs/exports.md): y up, x right, z toward the camera (the glTF world of `datasets/animation.py`),
centimetres. The skeleton's rest pose is the T-pose of the track's shape with every joint's rotation zero; the root
(`pelvis`) has OFFSET 0 and six channels (`Xposition Yposition Zposition Zrotation Yrotation Xrotation`: its world
position, then its rotation), every other joint three (`Zrotation Yrotation Xrotation`). Angles are degrees of the
intrinsic Z-Y-X order, the rotation matrix `Rz Ry Rx`, the usual reading of that channel order. Leaf joints (head,
feet, hands) end in an `End Site` half their bone's length further on. Frame 1 is the track's first frame (BVH has no
start time); `Frame Time` is the time between the video's images; held frames repeat the last detected pose.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from datasets.animation import TrackAnimation

UNIT = 100.0  # BVH lengths in centimetres (metres * 100)
ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"
JOINT_CHANNELS = "Zrotation Yrotation Xrotation"


def depth_first(parents: np.ndarray) -> list[int]:
    """Joint indices in the order BVH lists them (depth first from the root, children in index order)."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for child in np.flatnonzero(parents == j).tolist():
            visit(child)

    roots = np.flatnonzero(parents < 0).tolist()
    if len(roots) != 1:
        raise ValueError(f"a BVH skeleton needs exactly one root joint, found {len(roots)}")
    visit(roots[0])
    return order


def hierarchy_lines(anim: TrackAnimation) -> list[str]:
    """The HIERARCHY section (lengths in centimetres)."""
    offsets = anim.rest_offsets() * UNIT
    lines = ["HIERARCHY"]

    def block(j: int, indent: str) -> None:
        is_root = anim.parents[j] < 0
        lines.append(f"{indent}{'ROOT' if is_root else 'JOINT'} {anim.joint_names[j]}")
        lines.append(f"{indent}{{")
        offset = np.zeros(3) if is_root else offsets[j]
        lines.append(f"{indent}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        lines.append(f"{indent}\tCHANNELS {'6 ' + ROOT_CHANNELS if is_root else '3 ' + JOINT_CHANNELS}")
        children = np.flatnonzero(anim.parents == j).tolist()
        for child in children:
            block(child, indent + "\t")
        if not children:
            end = offsets[j] * 0.5
            lines.extend([f"{indent}\tEnd Site", f"{indent}\t{{",
                          f"{indent}\t\tOFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}", f"{indent}\t}}"])
        lines.append(f"{indent}}}")

    block(depth_first(anim.parents)[0], "")
    return lines


def euler_zyx_degrees(rotations: np.ndarray) -> np.ndarray:
    """[T, 3, 3] -> [T, 3] (z, y, x) degrees with R = Rz Ry Rx, each angle unwrapped over time (no 360 jumps)."""
    angles = Rotation.from_matrix(rotations).as_euler("ZYX")
    return np.degrees(np.unwrap(angles, axis=0))


def motion_values(anim: TrackAnimation) -> np.ndarray:
    """[T, 3 + 3 * 24] the MOTION rows: root position (cm), then (z, y, x) degrees per joint in BVH order."""
    columns = [anim.root_position * UNIT]
    for j in depth_first(anim.parents):
        columns.append(euler_zyx_degrees(anim.rotations[:, j]))
    return np.concatenate(columns, axis=1)


def write_bvh(path: Path, anim: TrackAnimation) -> Path:
    """Write `path` (.bvh) for a track; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = motion_values(anim)
    frame_time = anim.step / anim.fps
    lines = hierarchy_lines(anim) + ["MOTION", f"Frames: {len(values)}", f"Frame Time: {frame_time:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")
    return path
