"""A run's meshes drawn over its frames: SMPL of the results in chunks, the full-image pinhole, keypoint dots, meshes
rendered by the full-image camera, and the overlay video of a video's people (used by the exports, the webcam and the
synthetic benchmark's demonstration video)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from datasets.results import split_track
from datasets.video_out import open_video
from models.hmr import rotmat_smpl_params
from models.smpl import SMPL

if TYPE_CHECKING:
    from utils.render import Renderer  # imported when a video is made (it sets up headless OpenGL)

PALETTE = [(205, 129, 98), (98, 160, 205), (120, 200, 110), (210, 190, 90), (180, 110, 200), (90, 200, 190)]  # RGB
CHUNK = 128  # frames per SMPL forward


@torch.no_grad()
def smpl_forward(smpl: SMPL, rotmat: np.ndarray, betas: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """SMPL in chunks of CHUNK frames: yields (vertices [n, 6890, 3], joints [n, 49, 3]) model space, metres."""
    assert rotmat.shape[1:] == (24, 3, 3) and betas.shape == (len(rotmat), 10), (rotmat.shape, betas.shape)
    for start in range(0, len(rotmat), CHUNK):
        rot = torch.as_tensor(rotmat[start:start + CHUNK], dtype=torch.float32)
        out = smpl(**rotmat_smpl_params(rot, torch.as_tensor(betas[start:start + CHUNK], dtype=torch.float32)))
        yield out.vertices.numpy(), out.joints.numpy()


def iter_vertices(smpl: SMPL, rotmat: np.ndarray, betas: np.ndarray) -> Iterator[np.ndarray]:
    """Per-frame vertices [6890, 3] (model space, metres), computed CHUNK frames at a time."""
    for verts, _ in smpl_forward(smpl, rotmat, betas):
        yield from verts


def intrinsics(focal: float, width: int, height: int) -> np.ndarray:
    """[3, 3] pinhole of the full-image camera: focal `focal` pixels, principal point at the image centre."""
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def mesh_window(vertices: np.ndarray, focal: float, width: int, height: int, margin: int = 2
                ) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the pixels that the mesh's projection (vertices [V, 3] in the full-image camera) can
    cover, plus `margin`, within the image; the whole image when a vertex is not in front of the camera; None when
    the projection misses the image."""
    z = vertices[:, 2]
    if not np.all(z > 1e-6):
        return 0, 0, width, height
    u = focal * vertices[:, 0] / z + width / 2.0
    v = focal * vertices[:, 1] / z + height / 2.0
    x0, x1 = max(int(np.floor(u.min())) - margin, 0), min(int(np.ceil(u.max())) + margin + 1, width)
    y0, y1 = max(int(np.floor(v.min())) - margin, 0), min(int(np.ceil(v.max())) + margin + 1, height)
    return (x0, y0, x1, y1) if x1 - x0 > 1 and y1 - y0 > 1 else None


def overlay_mesh_window(renderer: Renderer, image: np.ndarray, vertices: np.ndarray, faces: np.ndarray, focal: float,
                        color: Sequence[int]) -> np.ndarray:
    """`overlay_people` of one mesh, rendering only the window its projection covers (`mesh_window`): software
    rendering costs about the pixels it renders, and a person covers a fraction of the frame. The same picture."""
    from utils.render import MeshSpec

    height, width = image.shape[:2]
    window = mesh_window(vertices, focal, width, height)
    if window is None:
        return image.copy()
    x0, y0, x1, y1 = window
    camera = intrinsics(focal, width, height)
    camera[0, 2], camera[1, 2] = camera[0, 2] - x0, camera[1, 2] - y0
    mesh = MeshSpec(vertices, faces, vertex_colors=np.tile(np.asarray(color, np.uint8), (len(vertices), 1)))
    out = image.copy()
    out[y0:y1, x0:x1] = renderer.render([mesh], camera, np.eye(4),
                                        background=np.ascontiguousarray(image[y0:y1, x0:x1])).rgb
    return out


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, color: Sequence[int] = (255, 255, 0),
                   conf_threshold: float = 0.3) -> np.ndarray:
    """A copy of image [H, W, 3] RGB with a dot on every keypoint [J, 3] (pixels, confidence > threshold)."""
    out = np.ascontiguousarray(image).copy()
    radius = max(2, round(min(image.shape[:2]) / 150))
    for x, y, c in keypoints:
        if c > conf_threshold:
            cv2.circle(out, (int(round(x)), int(round(y))), radius, tuple(int(v) for v in color), -1, cv2.LINE_AA)
    return out


def overlay_people(renderer: Renderer, image: np.ndarray, vertices: Sequence[np.ndarray], faces: np.ndarray,
                   focal: float, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """Meshes already in the full-image camera frame (vertices [V, 3] metres, OpenCV axes) rendered over an image
    [H, W, 3] uint8 RGB by the pinhole of focal `focal` at the image centre."""
    if not vertices:
        return image
    from utils.render import MeshSpec

    height, width = image.shape[:2]
    meshes = [MeshSpec(v, faces, vertex_colors=np.tile(np.asarray(c, np.uint8), (len(v), 1)))
              for v, c in zip(vertices, colors, strict=True)]
    return renderer.render(meshes, intrinsics(focal, width, height), np.eye(4), background=image).rgb


def write_overlay_video(path: Path, frames: list[Path], res: dict[str, np.ndarray], rows: np.ndarray, smpl: SMPL,
                        keypoints: dict[str, dict[int, np.ndarray]], fps: float, renderer: Renderer) -> int:
    """Every frame of a video with its people's meshes (and input keypoints if given); returns the frame count."""
    from utils.imutils import read_image_rgb

    by_frame: dict[str, list[int]] = {}
    for r in rows.tolist():
        by_frame.setdefault(Path(str(res["imgname"][r])).name, []).append(r)
    writer = None
    for path_in in frames:
        image = read_image_rgb(path_in)
        if writer is None:
            writer = open_video(path, fps, (image.shape[1], image.shape[0]))  # H.264 if PyAV has it, else mp4v
        here = np.array(by_frame.get(path_in.name, []), dtype=np.int64)
        if len(here):
            verts = iter_vertices(smpl, res["rotmat"][here], res["betas"][here])
            tracks = [split_track(str(res["track"][r]))[1] for r in here]
            placed = [v + res["cam_t_full"][r] for v, r in zip(verts, here, strict=True)]
            image = overlay_people(renderer, image, placed, smpl.faces, float(res["focal_length"][here[0]]),
                                   [PALETTE[k % len(PALETTE)] for k in tracks])
            for r in here:
                kp = keypoints.get(str(res["track"][r]), {}).get(int(res["frame_id"][r]))
                image = draw_keypoints(image, kp) if kp is not None else image
        writer.write(np.ascontiguousarray(image))
    if writer is not None:
        writer.close()
    return len(frames)
