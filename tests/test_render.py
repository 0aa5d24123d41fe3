"""Tests of the offscreen renderer (utils/render.py): geometry of the pinhole and weak-perspective cameras."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import binary_dilation
from scipy.spatial import ConvexHull

from utils.geometry import perspective_projection
from utils.render import MeshSpec, Renderer

W, H = 160, 120
K = np.array([[200.0, 0, 77.3], [0, 210.0, 61.8], [0, 0, 1]])  # off-centre principal point, fx != fy


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    r = Renderer(W, H)
    yield r
    r.close()


def _cube(centre: tuple[float, float, float], size: float = 1.0, angle_y: float = 0.0) -> MeshSpec:
    box = trimesh.creation.box(extents=(size, size, size))
    box.apply_transform(trimesh.transformations.rotation_matrix(angle_y, (0, 1, 0)))
    box.apply_translation(centre)
    return MeshSpec(np.asarray(box.vertices), np.asarray(box.faces))


def _polygon_mask(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose centres (integer coordinates) lie inside the convex hull of points [N, 2], and their distance
    to the hull boundary."""
    hull = ConvexHull(points)
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    pix = np.stack((u, v, np.ones_like(u)), -1).astype(float)
    signed = pix @ hull.equations.T  # [H, W, n_edges], <= 0 inside (unit normals)
    return (signed <= 0).all(-1), np.abs(signed).min(-1)


def _hull_centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid [2] of the convex hull of points [N, 2] (shoelace formula)."""
    p = points[ConvexHull(points).vertices]
    q = np.roll(p, -1, axis=0)
    cross = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    return ((p + q) * cross[:, None]).sum(0) / (3 * cross.sum())


def _coverage(render: Callable[[np.ndarray], np.ndarray], height: int, width: int) -> np.ndarray:
    """[H, W] mesh coverage in [0, 1] from renderings over black and over white (premultiplied compositing)."""
    black = render(np.zeros((height, width, 3), np.uint8)).astype(float)
    white = render(np.full((height, width, 3), 255, np.uint8)).astype(float)
    return 1.0 - (white - black).mean(-1) / 255.0


def _centroid(weights: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(u * weights).sum(), (v * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_cube_lands_where_its_projection_says(renderer: Renderer, angle: float) -> None:
    cube = _cube((0.3, -0.2, 5.0), 1.0, angle)
    result = renderer.render([cube], K, np.eye(4), size=(W, H))
    corners = perspective_projection(
        torch.as_tensor(cube.vertices)[None], torch.zeros(1, 3), torch.tensor([[K[0, 0], K[1, 1]]]),
        torch.tensor([[K[0, 2], K[1, 2]]]))[0].numpy()
    inside, dist = _polygon_mask(corners, W, H)
    assert dist[(result.labels > 0) != inside].max(initial=0) < 1.0  # disagreements only along the boundary
    # coverage is the pixel's area fraction, so its centroid is the silhouette's: this sees a half-pixel shift
    coverage = _coverage(lambda bg: renderer.render([cube], K, np.eye(4), background=bg).rgb, H, W)
    assert np.allclose(_centroid(coverage), _hull_centroid(corners), atol=0.05)
    assert coverage.sum() == pytest.approx(ConvexHull(corners).volume, rel=0.01)  # area in pixels
    assert result.rgb.shape == (H, W, 3) and result.rgb.dtype == np.uint8
    assert result.depth.dtype == np.float32 and result.labels.dtype == np.int32


def test_depth_is_the_distance_to_the_front_face(renderer: Renderer) -> None:
    # cube centred 5 m ahead, facing the camera: its front face is the plane z = 4.5
    cam_from_world = np.eye(4)
    cam_from_world[:3, 3] = (0.1, 0.0, 2.0)  # the world moves 2 m away from the camera
    result = renderer.render([_cube((0.0, 0.0, 3.0))], K, cam_from_world, size=(W, H))
    u, v = K[0, 2] + K[0, 0] * 0.1 / 4.5, K[1, 2]  # projection of the front-face centre
    assert result.depth[int(round(v)), int(round(u))] == pytest.approx(4.5, abs=2e-3)
    assert result.depth[0, 0] == 0 and result.labels[0, 0] == 0


def test_labels_name_the_visible_mesh_and_background_is_kept(renderer: Renderer) -> None:
    near, far = _cube((-0.4, 0.0, 5.0)), _cube((0.4, 0.0, 7.0), 1.4)
    far_colors = np.tile(np.array([[0, 0, 255]], np.uint8), (len(far.faces), 1))
    far = MeshSpec(far.vertices, far.faces, face_colors=far_colors)
    background = np.full((H, W, 3), 17, np.uint8)
    result = renderer.render([near, far], K, np.eye(4), background=background)
    row = int(K[1, 2])
    u_near = int(K[0, 2] + K[0, 0] * (-0.4) / 4.5)  # centre of the near cube's front face
    u_far_only = int(K[0, 2] + K[0, 0] * 0.95 / 6.3)  # right part of the far cube, not behind the near one
    u_overlap = int(K[0, 2] + K[0, 0] * 0.0 / 4.5)  # both cubes: the near one is visible
    assert result.labels[row, u_near] == 1 and result.labels[row, u_overlap] == 1
    assert result.labels[row, u_far_only] == 2
    blue = result.rgb[row, u_far_only]
    assert blue[2] > 100 and blue[0] < 30 and blue[1] < 30  # face colour, lit
    away = ~binary_dilation(result.labels > 0, iterations=2)  # edge pixels may be partly covered
    assert (result.rgb[away] == 17).all()


def test_one_context_serves_20_frames_of_two_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrender.platforms import egl  # after utils.render chose the EGL platform

    created = []
    original = egl.EGLPlatform.init_context
    monkeypatch.setattr(egl.EGLPlatform, "init_context", lambda self: created.append(1) or original(self))
    cube = _cube((0.0, 0.0, 4.0))
    with Renderer(64, 48) as r:
        for i in range(20):
            w, h = (64, 48) if i % 2 == 0 else (100, 80)
            K_i = np.array([[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]])
            result = r.render([cube], K_i, np.eye(4), size=(w, h))
            assert result.rgb.shape == (h, w, 3) and result.labels[h // 2, w // 2] == 1
    assert len(created) == 1


@pytest.mark.parametrize("cam", [(0.8, 0.1, -0.2), (0.5, 0.9, 0.3, -0.1)])
def test_weak_perspective_overlay_follows_the_original_projection(renderer: Renderer, cam: tuple) -> None:
    centre = np.array([0.15, 0.1, 0.0])
    cube = _cube(tuple(centre), 0.6)
    coverage = _coverage(lambda img: renderer.render_weak_perspective(cube.vertices, cube.faces, np.array(cam), img),
                         90, 120)
    sx, sy, tx, ty = (cam[0], cam[0], cam[1], cam[2]) if len(cam) == 3 else cam
    # normalised (sx (X + tx), sy (Y + ty)) in [-1, 1], y down -> pixel coordinates (n + 1) W / 2 - 0.5
    expected = ((sx * (centre[0] + tx) + 1) * 120 / 2 - 0.5, (sy * (centre[1] + ty) + 1) * 90 / 2 - 0.5)
    assert np.allclose(_centroid(coverage), expected, atol=0.05)
    assert coverage.sum() == pytest.approx((sx * 0.6 * 60) * (sy * 0.6 * 45), rel=0.03)  # the square's area
    image = np.full((90, 120, 3), 40, np.uint8)
    out = renderer.render_weak_perspective(cube.vertices, cube.faces, np.array(cam), image, color=(0, 200, 0))
    u, v = np.round(expected).astype(int)
    assert out[v, u, 1] > 100 and out[v, u, 0] < 60  # the green mesh over the grey image
    assert (out[coverage == 0] == 40).all()


def test_closing_one_renderer_leaves_the_others_working(renderer: Renderer) -> None:
    cube = _cube((0.0, 0.0, 5.0))
    with Renderer(32, 32) as other:
        other.render([cube], K, np.eye(4), size=(32, 32))
    assert renderer.render([cube], K, np.eye(4), size=(W, H)).labels.sum() > 0
