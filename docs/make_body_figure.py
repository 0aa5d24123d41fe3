"""Render the procedural SMPL-format body into docs/body_model.png.

Columns: neutral, male and female templates in T-pose, and a posed neutral body (walking stride, arms down and
bent); top row from the front, bottom row from the body's left side. Dots: the 24 SMPL joints (red), the 9
J_regressor_extra joints (blue) and the 21 vertex landmarks smplx adds (green).

    python docs/make_body_figure.py
    python docs/make_body_figure.py --out /tmp/body.png
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from datasets.synthetic.body_model import write_body_model
from models.smpl import SMPL
from utils.render import MeshSpec, Renderer

PANEL = 300  # pixels per panel side
DOTS = ((slice(0, 24), (220, 30, 30)), (slice(45, 54), (30, 60, 220)), (slice(24, 45), (20, 160, 40)))


def walking_pose() -> torch.Tensor:
    """[1, 69] axis-angle body pose: stride, knees bent, arms down with bent elbows (SMPL joint j at 3 (j - 1))."""
    pose = torch.zeros(23, 3)
    pose[0] = torch.tensor([-0.5, 0, 0])  # left hip forward
    pose[1] = torch.tensor([0.4, 0, 0])  # right hip back
    pose[3] = torch.tensor([0.3, 0, 0])  # left knee
    pose[4] = torch.tensor([0.7, 0, 0])  # right knee
    pose[15] = torch.tensor([0, 0, -1.2])  # left shoulder down
    pose[16] = torch.tensor([0, 0, 1.2])  # right shoulder down
    pose[17] = torch.tensor([0, -1.3, 0])  # left elbow bent forward
    pose[18] = torch.tensor([0, 1.0, 0])  # right elbow bent forward
    return pose.reshape(1, 69)


def camera(view: str, distance: float = 4.5) -> tuple[np.ndarray, np.ndarray]:
    """K [3, 3] and cam_from_world [4, 4] (OpenCV axes) looking at the body from the front or its left side."""
    focal = PANEL * distance / 2.1
    K = np.array([[focal, 0, PANEL / 2], [0, focal, PANEL / 2], [0, 0, 1]])
    rot = {"front": [[1, 0, 0], [0, -1, 0], [0, 0, -1]], "side": [[0, 0, -1], [0, -1, 0], [-1, 0, 0]]}[view]
    rot = np.array(rot, dtype=float)
    centre = -rot.T @ np.array([0, 0, distance]) + np.array([0, -0.3, 0])
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rot, -rot @ centre
    return K, pose


def panel(renderer: Renderer, vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, view: str) -> np.ndarray:
    """[PANEL, PANEL, 3] uint8 RGB rendering with the joints drawn as dots."""
    K, cam_from_world = camera(view)
    image = renderer.render([MeshSpec(vertices, faces)], K, cam_from_world, size=(PANEL, PANEL)).rgb.copy()
    cam_pts = joints @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    pix = cam_pts @ K.T
    pix = pix[:, :2] / pix[:, 2:]
    for block, color in DOTS:
        for u, v in pix[block]:
            cv2.circle(image, (int(round(u)), int(round(v))), 3, color, -1, lineType=cv2.LINE_AA)
    return image


def all_joints(model: SMPL, body_pose: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [6890, 3] and the 54 joints [24 kinematic | 21 vertex landmarks | 9 extra] of one body."""
    with torch.no_grad():
        out = model.body(betas=torch.zeros(1, 10), body_pose=body_pose, global_orient=torch.zeros(1, 3))
        extra = torch.einsum("jv,bvc->bjc", model.j_regressor_extra, out.vertices)
    return out.vertices[0].numpy(), torch.cat((out.joints, extra), 1)[0].numpy()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "body_model.png")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Renderer(PANEL, PANEL) as renderer:
        write_body_model(Path(tmp))
        columns = []
        for gender, pose in (("neutral", None), ("male", None), ("female", None), ("neutral", walking_pose())):
            model = SMPL(Path(tmp) / "smpl", gender)
            vertices, joints = all_joints(model, torch.zeros(1, 69) if pose is None else pose)
            views = [panel(renderer, vertices, model.faces, joints, view) for view in ("front", "side")]
            title = gender if pose is None else f"{gender}, posed"
            cv2.putText(views[0], title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (60, 60, 60), 1, cv2.LINE_AA)
            columns.append(np.concatenate(views))
    figure = np.concatenate(columns, axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
