"""One person track of a run as an animation: the SMPL skeleton in the track's rest shape, one key per image of the
video between the track's first and last frame, and the conventions the glTF and BVH files share
(`datasets/gltf_export.py`, `datasets/bvh_export.py`, docs/exports.md "glTF, BVH and view.html").

World axes: y-up, metres. The full-image camera frame (OpenCV: x right, y down, z forward) is turned 180 degrees
about x, `CV_TO_YUP = diag(1, -1, -1)`: x right, y up, z toward the viewer; the camera stays at the origin and looks
down -z (glTF's camera convention). The rest mesh is SMPL's own frame (already y-up, facing +z).

Joints: the 24 SMPL joints (`utils.constants.SMPL_JOINT_NAMES`) with SMPL's parents; rest joint j sits at
`J_j(beta)` of the track's shape, with identity rotation. Per key: local rotation of every joint (SMPL's, the root's
turned by CV_TO_YUP) and the pelvis position `CV_TO_YUP (J_0(beta) + cam_t_full)`; so the skinned rest mesh at a key
is the predicted mesh in the camera frame, turned to y-up (without SMPL's pose correctives, which a skin cannot hold).

Frames without a detection inside the track hold the last detected pose (`detected` marks them); before its first
and after its last frame a track has no key (the viewer hides the person there).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from models.smpl import SMPL
from utils.constants import SMPL_JOINT_NAMES

CV_TO_YUP = np.diag([1.0, -1.0, -1.0])
MAX_INFLUENCES = 4  # joints per vertex in a glTF skin (JOINTS_0 / WEIGHTS_0)


@dataclass
class TrackAnimation:
    """A person track as a skinned, animated body (y-up world, metres; see the module docstring).

    Attributes:
        name: `person_<k>`.
        joint_names: the 24 SMPL joint names; parents: [24] parent index (-1 for the pelvis).
        rest_joints: [24, 3] rest joint positions of the track's shape; rest_vertices: [V, 3]; faces: [F, 3].
        weights: [V, 24] SMPL skinning weights; betas: [10] the track's shape (mean of its betas).
        frame_ids: [T] 0-based video frame of every key, `step` apart; detected: [T] False where the pose is held.
        rotations: [T, 24, 3, 3] local joint rotations; root_position: [T, 3] pelvis position in the world.
        fps: the video's source frame rate (a key's time is `frame_id / fps` seconds); step: frames between keys.
        camera: (focal px, width px, height px) of the full-image camera.
    """

    name: str
    joint_names: list[str]
    parents: np.ndarray
    rest_joints: np.ndarray
    rest_vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    betas: np.ndarray
    frame_ids: np.ndarray
    detected: np.ndarray
    rotations: np.ndarray
    root_position: np.ndarray
    fps: float
    step: int
    camera: tuple[float, int, int]

    @property
    def times(self) -> np.ndarray:
        """[T] seconds of every key in the video's time (frame f at f / fps)."""
        return self.frame_ids / self.fps

    def rest_offsets(self) -> np.ndarray:
        """[24, 3] each joint's rest position relative to its parent (the pelvis: its absolute rest position)."""
        parent_pos = np.where(self.parents[:, None] >= 0, self.rest_joints[np.maximum(self.parents, 0)], 0.0)
        return self.rest_joints - parent_pos


def frame_clock(frame_dir: Path, default_fps: float) -> tuple[float, int]:
    """(source fps, frames between images) of a frame folder: vid2img's `meta.json` (fps, every), else
    (default_fps, 1) with default_fps the images' rate."""
    from utils.video import META_NAME, read_meta

    if not (Path(frame_dir) / META_NAME).is_file():
        return float(default_fps), 1
    meta = read_meta(frame_dir)
    fps = float(meta.get("fps") or 0.0)
    return (fps, max(1, int(meta.get("every", 1)))) if fps > 0 else (float(default_fps), 1)


def held_rows(frame_ids: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys every `step` frames from the first to the last detected frame of a track.

    Args:
        frame_ids: [n] sorted, distinct 0-based frames of the track's rows.
    Returns:
        keys [T] frame ids, source [T] index into frame_ids of the pose shown (the last detection at or before the
        key), detected [T].
    """
    frame_ids = np.asarray(frame_ids, dtype=np.int64)
    if len(frame_ids) == 0 or np.any(np.diff(frame_ids) <= 0):
        raise ValueError(f"a track needs distinct frames in increasing order, got {frame_ids.tolist()[:8]}...")
    if np.any((frame_ids - frame_ids[0]) % step):
        raise ValueError(f"track frames {frame_ids.tolist()[:8]}... are not {step} frames apart (meta.json 'every')")
    keys = np.arange(frame_ids[0], frame_ids[-1] + 1, step)
    source = np.searchsorted(frame_ids, keys, side="right") - 1
    return keys, source, frame_ids[source] == keys


@torch.no_grad()
def rest_body(smpl: SMPL, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3], joints [24, 3]) of the zero pose with shape betas [10], metres, SMPL's y-up frame."""
    out = smpl(betas=torch.as_tensor(betas, dtype=torch.float32).reshape(1, 10), body_pose=torch.zeros(1, 69),
               global_orient=torch.zeros(1, 3))
    return out.vertices[0].double().numpy(), out.smpl_joints[0].double().numpy()


def body_kind(smpl: SMPL) -> str:
    """"official SMPL" when the model has pose correctives, else the procedural stand-in (datasets/synthetic)."""
    posedirs = smpl.body.posedirs
    return "official SMPL" if float(posedirs.abs().max()) > 0 else "procedural SMPL-format body (this project's)"


def track_animation(smpl: SMPL, res: dict[str, np.ndarray], rows: np.ndarray, name: str, fps: float,
                    step: int = 1) -> TrackAnimation:
    """The animation of one track (rows of `results.npz` in frame order, see `datasets.results.tracks_of`)."""
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    keys, source, detected = held_rows(res["frame_id"][rows], step)
    src = np.asarray(rows)[source]
    betas = res["betas"][rows].astype(np.float64).mean(axis=0)
    vertices, joints = rest_body(smpl, betas)
    rotmat = res["rotmat"][src].astype(np.float64)
    rotations = rotmat.copy()
    rotations[:, 0] = CV_TO_YUP @ rotmat[:, 0]
    root = (joints[0] + res["cam_t_full"][src].astype(np.float64)) @ CV_TO_YUP.T
    width, height = (int(v) for v in res["img_size"][rows[0]])
    return TrackAnimation(
        name=name, joint_names=list(SMPL_JOINT_NAMES), parents=smpl.body.parents.numpy().astype(np.int64),
        rest_joints=joints, rest_vertices=vertices, faces=np.asarray(smpl.faces, dtype=np.int64),
        weights=smpl.body.lbs_weights.double().numpy(), betas=betas, frame_ids=keys, detected=detected,
        rotations=rotations, root_position=root, fps=float(fps), step=int(step),
        camera=(float(res["focal_length"][rows[0]]), width, height))


def quaternions(rotations: np.ndarray) -> np.ndarray:
    """[T, J, 3, 3] rotations -> [T, J, 4] unit quaternions (x, y, z, w), signs continuous over time per joint."""
    t, j = rotations.shape[:2]
    quat = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat().reshape(t, j, 4)
    for i in range(1, t):
        flip = np.sum(quat[i] * quat[i - 1], axis=-1) < 0
        quat[i, flip] *= -1.0
    return quat


def top_influences(weights: np.ndarray, count: int = MAX_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest skinning weights of each vertex, renormalised: (joints [V, count] int, weights [V, count]
    summing to 1); unused slots get joint 0 and weight 0. SMPL has at most 4 nonzero weights on most vertices."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :count]
    top = np.take_along_axis(weights, order, axis=1)
    top = np.where(top > 0, top, 0.0)
    top /= top.sum(axis=1, keepdims=True)
    return np.where(top > 0, order, 0), top
