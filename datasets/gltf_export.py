"""A person track as a binary glTF 2.0 file (`person_<k>.glb`), written with pygltflib.

One scene: the body mesh in the track's rest shape (T-pose) with a skin of the 24 named SMPL joints, the joint
hierarchy, the video's camera (a perspective camera at the origin looking down -z), and one animation: per key a
rotation for every joint and the pelvis translation, LINEAR, at the video's times (frame f at f / fps s). Axes,
units and the held frames: `datasets/animation.py` and docs/exports.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pygltflib as gl

from datasets.animation import TrackAnimation, quaternions, top_influences

GENERATOR = "DynaBOA reimplementation, datasets/gltf_export.py (pygltflib)"
COMPONENT = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint8): gl.UNSIGNED_BYTE,
             np.dtype(np.uint16): gl.UNSIGNED_SHORT, np.dtype(np.uint32): gl.UNSIGNED_INT}
TYPES = {1: gl.SCALAR, 3: gl.VEC3, 4: gl.VEC4, 16: gl.MAT4}


class _Packer:
    """Arrays appended to one binary buffer, each in its own 4-byte aligned buffer view with one accessor."""

    def __init__(self, doc: gl.GLTF2) -> None:
        self.doc, self.chunks, self.size = doc, [], 0

    def add(self, array: np.ndarray, target: int | None = None, bounds: bool = False) -> int:
        """Append `array` ([n] or [n, width]); returns the accessor index (min/max written when `bounds`)."""
        data = np.ascontiguousarray(array)
        width = 1 if data.ndim == 1 else data.shape[1]
        raw = data.tobytes()
        self.doc.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(raw), target=target))
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b"\0" * pad)
        self.size += len(raw) + pad
        flat = data.reshape(len(data), width)
        accessor = gl.Accessor(bufferView=len(self.doc.bufferViews) - 1, componentType=COMPONENT[data.dtype],
                               count=len(data), type=TYPES[width],
                               min=flat.min(axis=0).tolist() if bounds else None,
                               max=flat.max(axis=0).tolist() if bounds else None)
        self.doc.accessors.append(accessor)
        return len(self.doc.accessors) - 1

    def finish(self) -> None:
        blob = b"".join(self.chunks)
        self.doc.buffers.append(gl.Buffer(byteLength=len(blob)))
        self.doc.set_binary_blob(blob)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] unit normals: the area-weighted sum of the adjacent faces' normals ((0, 1, 0) for a lone vertex)."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 1.0, 0.0])


def _mesh(doc: gl.GLTF2, pack: _Packer, anim: TrackAnimation, color: tuple[int, int, int]) -> None:
    """The rest mesh with POSITION, NORMAL, JOINTS_0, WEIGHTS_0 and one material."""
    joints, weights = top_influences(anim.weights)
    weights = weights.astype(np.float32)
    weights[:, 0] = 1.0 - weights[:, 1:].sum(axis=1, dtype=np.float32)  # sums to 1 in float32 too
    index_type = np.uint16 if len(anim.rest_vertices) < 65535 else np.uint32
    attributes = gl.Attributes(
        POSITION=pack.add(anim.rest_vertices.astype(np.float32), gl.ARRAY_BUFFER, bounds=True),
        NORMAL=pack.add(vertex_normals(anim.rest_vertices, anim.faces).astype(np.float32), gl.ARRAY_BUFFER),
        JOINTS_0=pack.add(joints.astype(np.uint8), gl.ARRAY_BUFFER),
        WEIGHTS_0=pack.add(weights, gl.ARRAY_BUFFER))
    indices = pack.add(anim.faces.reshape(-1).astype(index_type), gl.ELEMENT_ARRAY_BUFFER)
    doc.materials.append(gl.Material(name="body", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[c / 255.0 for c in color] + [1.0], metallicFactor=0.0, roughnessFactor=0.8)))
    doc.meshes.append(gl.Mesh(name=f"{anim.name}_body", primitives=[
        gl.Primitive(attributes=attributes, indices=indices, material=0, mode=gl.TRIANGLES)]))


def _skeleton(doc: gl.GLTF2, pack: _Packer, anim: TrackAnimation, first: int) -> None:
    """Joint nodes `first + j` (rest offsets, identity rotations) and the skin (inverse binds: translate(-J_j))."""
    offsets = anim.rest_offsets()
    for j, name in enumerate(anim.joint_names):
        children = [first + c for c in np.flatnonzero(anim.parents == j).tolist()]
        doc.nodes.append(gl.Node(name=name, translation=offsets[j].tolist(), children=children or None))
    inverse_bind = np.tile(np.eye(4), (len(offsets), 1, 1))
    inverse_bind[:, :3, 3] = -anim.rest_joints
    column_major = inverse_bind.transpose(0, 2, 1).reshape(-1, 16).astype(np.float32)
    doc.skins.append(gl.Skin(name=f"{anim.name}_skeleton", joints=list(range(first, first + len(offsets))),
                             skeleton=first, inverseBindMatrices=pack.add(column_major)))


def _animation(doc: gl.GLTF2, pack: _Packer, anim: TrackAnimation, first: int) -> None:
    """One animation: a rotation channel per joint and the pelvis translation, LINEAR, on shared key times."""
    times = pack.add(anim.times.astype(np.float32), bounds=True)
    quat = quaternions(anim.rotations).astype(np.float32)
    samplers, channels = [], []
    for j in range(quat.shape[1]):
        samplers.append(gl.AnimationSampler(input=times, output=pack.add(quat[:, j]), interpolation=gl.ANIM_LINEAR))
        channels.append(gl.AnimationChannel(sampler=j, target=gl.AnimationChannelTarget(node=first + j,
                                                                                        path=gl.ROTATION)))
    samplers.append(gl.AnimationSampler(input=times, output=pack.add(anim.root_position.astype(np.float32)),
                                        interpolation=gl.ANIM_LINEAR))
    channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                        target=gl.AnimationChannelTarget(node=first, path=gl.TRANSLATION)))
    doc.animations.append(gl.Animation(name=anim.name, samplers=samplers, channels=channels))


def _camera(doc: gl.GLTF2, anim: TrackAnimation) -> int:
    """The full-image camera: vertical field of view 2 atan(H / 2f), the image's aspect, at the origin."""
    focal, width, height = anim.camera
    doc.cameras.append(gl.Camera(type=gl.PERSPECTIVE, name="video_camera", perspective=gl.Perspective(
        yfov=2.0 * math.atan(height / (2.0 * focal)), aspectRatio=width / height, znear=0.01, zfar=1000.0)))
    doc.nodes.append(gl.Node(name="video_camera", camera=len(doc.cameras) - 1))
    return len(doc.nodes) - 1


def track_extras(anim: TrackAnimation, provenance: dict | None) -> dict:
    """What a reader needs beyond glTF: the frames of the keys, which were held, the clock and the source."""
    return {"frame_ids_first_last": [int(anim.frame_ids[0]), int(anim.frame_ids[-1])], "fps": anim.fps,
            "frame_step": anim.step, "held_frames": anim.frame_ids[~anim.detected].astype(int).tolist(),
            "betas": np.round(anim.betas, 6).tolist(), "joint_names": anim.joint_names,
            "axes": "y up, x right, z toward the camera; metres; camera at the origin looking down -z",
            "provenance": json.loads(json.dumps(provenance, default=str)) if provenance else None}


def build_gltf(anim: TrackAnimation, color: tuple[int, int, int] = (205, 129, 98),
               provenance: dict | None = None) -> gl.GLTF2:
    """The glTF document of a track: node 0 the skinned body, nodes 1..24 the joints, the last node the camera."""
    doc = gl.GLTF2(asset=gl.Asset(version="2.0", generator=GENERATOR), scene=0)
    pack = _Packer(doc)
    _mesh(doc, pack, anim, color)
    doc.nodes.append(gl.Node(name=f"{anim.name}_body", mesh=0, skin=0))
    first = len(doc.nodes)
    _skeleton(doc, pack, anim, first)
    _animation(doc, pack, anim, first)
    camera = _camera(doc, anim)
    doc.scenes.append(gl.Scene(name=anim.name, nodes=[0, first, camera], extras=track_extras(anim, provenance)))
    pack.finish()
    return doc


def write_glb(path: Path, anim: TrackAnimation, color: tuple[int, int, int] = (205, 129, 98),
              provenance: dict | None = None) -> Path:
    """Write `path` (.glb) for a track; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(build_gltf(anim, color, provenance).save_to_bytes()))
    return path
