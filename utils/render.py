"""One reusable offscreen renderer (pyrender on headless EGL; Mesa's llvmpipe renders on the CPU).

Create a `Renderer` once and reuse it: every call renders in the same GL context, resizing the framebuffer when a
frame of another size comes. `render` takes an OpenCV pinhole camera (K, cam_from_world with x right, y down,
z forward; pixel centres at integer coordinates) and returns colour, depth and a per-pixel mesh label;
`render_weak_perspective` overlays a mesh on an image as the original DynaBOA/VIBE renderer does (docs/method.md §2.4).
"""
from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # before pyrender is imported: headless rendering

from dataclasses import dataclass  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import pyrender  # noqa: E402
import trimesh  # noqa: E402

DEFAULT_COLOR = (205, 129, 98)  # the original's mesh colour (RGB)
_GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL camera axes (y up, looking down -z)


@dataclass
class MeshSpec:
    """A mesh to render.

    Attributes:
        vertices: [V, 3] world metres.
        faces: [F, 3] vertex indices, counter-clockwise seen from outside.
        vertex_colors: optional [V, 3] uint8 RGB (smooth shading).
        face_colors: optional [F, 3] uint8 RGB (flat shading); takes precedence over vertex_colors.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    face_colors: np.ndarray | None = None


@dataclass
class RenderResult:
    """Attributes:
    rgb: [H, W, 3] uint8 RGB composited over the background.
    depth: [H, W] float32 metres along the optical axis, 0 where empty.
    labels: [H, W] int32, 0 for background, i + 1 where mesh i is the visible surface.
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray


class _WeakPerspectiveCamera(pyrender.Camera):
    """Orthographic camera of the original renderer: P = [[sx,0,0,sx tx],[0,sy,0,-sy ty],[0,0,-1,0],[0,0,0,1]]."""

    def __init__(self, scale: tuple[float, float], translation: tuple[float, float]) -> None:
        super().__init__(znear=0.05, zfar=1000.0)
        self.scale, self.translation = scale, translation

    def get_projection_matrix(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        (sx, sy), (tx, ty) = self.scale, self.translation
        return np.array([[sx, 0, 0, sx * tx], [0, sy, 0, -ty * sy], [0, 0, -1, 0], [0, 0, 0, 1.0]])


def _material(color: Sequence[int]) -> pyrender.MetallicRoughnessMaterial:
    return pyrender.MetallicRoughnessMaterial(
        metallicFactor=0.0, roughnessFactor=0.7, alphaMode="OPAQUE", baseColorFactor=(*np.asarray(color) / 255, 1.0))


def _pyrender_mesh(spec: MeshSpec, color: Sequence[int] = DEFAULT_COLOR) -> pyrender.Mesh:
    """A pyrender mesh with an opaque material, flat-shaded with face colours, else smooth."""
    assert spec.vertices.ndim == 2 and spec.vertices.shape[1] == 3, spec.vertices.shape
    assert spec.faces.ndim == 2 and spec.faces.shape[1] == 3, spec.faces.shape
    tm = trimesh.Trimesh(spec.vertices, spec.faces, process=False)
    if spec.face_colors is not None:
        assert spec.face_colors.shape == (len(spec.faces), 3), spec.face_colors.shape
        prim = pyrender.Primitive(
            positions=tm.vertices[tm.faces].reshape(-1, 3), normals=np.repeat(tm.face_normals, 3, axis=0),
            color_0=np.repeat(spec.face_colors, 3, axis=0), material=_material((255, 255, 255)))
    else:
        colors = spec.vertex_colors
        assert colors is None or colors.shape == (len(spec.vertices), 3), colors.shape
        prim = pyrender.Primitive(
            positions=tm.vertices, normals=tm.vertex_normals, indices=tm.faces, color_0=colors,
            material=_material((255, 255, 255) if colors is not None else color))
    return pyrender.Mesh(primitives=[prim])


def _composite(rgba: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """Premultiplied-alpha composite of an [H, W, 4] uint8 rendering over [H, W, 3] uint8 (white if None)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = np.full(rgba.shape[:2] + (3,), 255, np.float32) if background is None else background.astype(np.float32)
    assert bg.shape == rgba.shape[:2] + (3,), (bg.shape, rgba.shape)
    return np.clip(rgba[..., :3].astype(np.float32) + (1.0 - alpha) * bg, 0, 255).round().astype(np.uint8)


class Renderer:
    """Offscreen renderer holding one GL context.

    Args:
        width, height: initial framebuffer size (pixels); later frames of other sizes resize it.
    """

    def __init__(self, width: int, height: int) -> None:
        self._gl = pyrender.OffscreenRenderer(width, height)

    def _resize(self, width: int, height: int) -> None:
        self._gl.viewport_width, self._gl.viewport_height = int(width), int(height)

    def render(
        self,
        meshes: Sequence[MeshSpec],
        K: np.ndarray,
        cam_from_world: np.ndarray,
        background: np.ndarray | None = None,
        size: tuple[int, int] | None = None,
        light_intensity: float = 3.0,
        ambient: float = 0.3,
    ) -> RenderResult:
        """Render meshes with a pinhole camera.

        Args:
            meshes: the meshes (world metres).
            K: [3, 3] intrinsics (pixels, OpenCV convention: pixel centres at integer coordinates).
            cam_from_world: [4, 4] rigid transform to the OpenCV camera frame (x right, y down, z forward).
            background: optional [H, W, 3] uint8 RGB image behind the meshes (white if None); sets the size.
            size: (width, height) when there is no background; default the current framebuffer size.
            light_intensity: intensity of the directional light shining along the viewing direction.
            ambient: ambient light level in [0, 1].
        Returns:
            RenderResult with rgb, depth (metres, 0 where empty) and labels (0 background, i + 1 for mesh i).
        """
        assert K.shape == (3, 3) and cam_from_world.shape == (4, 4), (K.shape, cam_from_world.shape)
        if background is not None:
            size = (background.shape[1], background.shape[0])
        if size is not None:
            self._resize(*size)
        z_cam = [(np.c_[m.vertices, np.ones(len(m.vertices))] @ cam_from_world[2]) for m in meshes]
        z_all = np.concatenate(z_cam) if meshes else np.ones(1)
        camera = pyrender.IntrinsicsCamera(  # +0.5: GL pixel centres are at half-integers
            K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5,
            znear=max(float(z_all.min()) * 0.5, 1e-3), zfar=max(float(z_all.max()) * 2.0, 1.0))
        scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(ambient,) * 3)
        cam_node = scene.add(camera, pose=np.linalg.inv(cam_from_world) @ _GL_FROM_CV)
        scene.add(pyrender.DirectionalLight(intensity=light_intensity), parent_node=cam_node)
        nodes = [scene.add(_pyrender_mesh(m)) for m in meshes]
        rgba, depth = self._gl.render(scene, flags=pyrender.RenderFlags.RGBA)
        labels = self._labels(scene, nodes, depth)
        return RenderResult(rgb=_composite(rgba, background), depth=depth.astype(np.float32), labels=labels)

    def _labels(self, scene: pyrender.Scene, nodes: list, depth: np.ndarray) -> np.ndarray:
        """[H, W] int32 mesh index + 1 of the visible surface, from one depth-only pass per mesh.

        Depth passes (not pyrender's colour segmentation) because the multisampled colour buffer blends label
        colours along edges, while the resolved depth keeps one sample.
        """
        if len(nodes) <= 1:
            return (depth > 0).astype(np.int32) * len(nodes)
        per_mesh = []
        for node in nodes:
            for other in nodes:
                other.mesh.is_visible = other is node
            d = self._gl.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY)
            per_mesh.append(np.where(d > 0, d, np.inf))
        for node in nodes:
            node.mesh.is_visible = True
        stack = np.stack(per_mesh)
        return np.where(np.isfinite(stack.min(0)), stack.argmin(0) + 1, 0).astype(np.int32)

    def render_weak_perspective(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        cam: np.ndarray,
        image: np.ndarray,
        color: Sequence[int] = DEFAULT_COLOR,
    ) -> np.ndarray:
        """Overlay a mesh on an image with the original's weak-perspective renderer (docs/method.md §2.4).

        The mesh is rotated 180 degrees about x and projected orthographically: a model point X lands at
        normalised image coordinates (sx (X + tx), sy (Y + ty)) in [-1, 1] (y down), i.e. where
        `utils.geometry.project_to_crop` puts it for a distant body.

        Args:
            vertices: [V, 3] model-space metres (no translation), |z| < 1.
            faces: [F, 3].
            cam: [3] crop camera (s, tx, ty) or [4] full-image camera (sx, sy, tx, ty).
            image: [H, W, 3] uint8 RGB.
            color: RGB of the mesh.
        Returns:
            [H, W, 3] uint8 RGB, the mesh composited over the image.
        """
        cam = np.asarray(cam, dtype=float)
        assert cam.shape in ((3,), (4,)), cam.shape
        assert image.ndim == 3 and image.shape[2] == 3, image.shape
        sx, sy, tx, ty = (cam[0], cam[0], cam[1], cam[2]) if cam.shape == (3,) else cam
        self._resize(image.shape[1], image.shape[0])
        flipped = vertices * np.array([1.0, -1.0, -1.0])  # 180 degrees about x
        scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(0.3, 0.3, 0.3))
        scene.add(_pyrender_mesh(MeshSpec(flipped, faces), color))
        scene.add(_WeakPerspectiveCamera((sx, sy), (tx, ty)), pose=np.eye(4))
        for position in ([0, -1, 1], [0, 1, 1], [1, 1, 2]):  # the original's three point lights
            pose = np.eye(4)
            pose[:3, 3] = position
            scene.add(pyrender.PointLight(color=np.ones(3), intensity=1.0), pose=pose)
        rgba, _ = self._gl.render(scene, flags=pyrender.RenderFlags.RGBA)
        return _composite(rgba, image)

    def close(self) -> None:
        """Release the GL context (the renderer cannot be used afterwards)."""
        if self._gl is None:
            return
        platform = self._gl._platform
        if type(platform).__name__ == "EGLPlatform":
            # pyrender's delete() calls eglTerminate, which is not reference-counted: it would break every other
            # renderer alive on the same display. Free our objects and destroy only our context.
            from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

            platform.make_current()
            self._gl._renderer.delete()
            eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
            eglDestroyContext(platform._egl_display, platform._egl_context)
        else:
            self._gl.delete()
        self._gl = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
