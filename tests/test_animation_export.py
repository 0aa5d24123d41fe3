"""glTF and BVH animations of a run's person tracks (datasets/animation.py, gltf_export.py, bvh_export.py):
read back with pygltflib, trimesh and a small BVH reader written here, posed by hand (forward kinematics and skinning
from the file alone) against the SMPL body, and checked by the real programs where they are installed (the Khronos
glTF validator under node, Blender)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from config import DataPaths
from datasets.animation import held_rows, track_animation
from datasets.export import ExportConfig, export_run
from models.smpl import build_smpl
from utils.constants import SMPL_JOINT_NAMES
from utils.geometry import batch_rodrigues

FPS, W, H = 25.0, 320, 240
YUP = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> y up, z toward the viewer (docs/exports.md)
TRACKS = {"clip:0": [0, 1, 2, 3, 6, 7, 8, 9], "clip:1": [3, 4, 5, 6]}  # person 0 is missed on frames 4 and 5


def walking_results(tracks: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """A results.npz of people swinging arms and legs, upright in the camera, 3-5 m away, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = [(name, f) for name, frames in tracks.items() for f in frames]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    n, frame = len(rows), np.array([r[1] for r in rows], dtype=float)
    pose = rng.normal(0.0, 0.15, (n, 72))
    pose[:, :3] = np.c_[np.full(n, np.pi), 0.3 * np.sin(frame / 4), np.zeros(n)]  # y down in the camera: x 180
    pose[:, 3 * 16 + 2] += -1.1 + 0.5 * np.sin(frame / 3)  # left shoulder down, swinging
    pose[:, 3 * 17 + 2] += 1.1 - 0.5 * np.sin(frame / 3)
    pose[:, 3 * 1] += 0.6 * np.sin(frame / 3)  # hips
    pose[:, 3 * 2] -= 0.6 * np.sin(frame / 3)
    rotmat = batch_rodrigues(torch.as_tensor(pose).reshape(-1, 3)).reshape(n, 24, 3, 3).numpy()
    person = np.array([int(r[0].split(":")[1]) for r in rows])
    cam_t = np.c_[0.8 * person - 0.4 + 0.05 * np.sin(frame / 5), 0.2 + 0.01 * frame, 4.0 + person]
    return {"index": np.arange(n), "track": np.array([r[0] for r in rows]), "frame_id": frame.astype(np.int64),
            "imgname": np.array([f"images/{r[0].split(':')[0]}/{r[1] + 1:06d}.png" for r in rows]),
            "rotmat": rotmat.astype(np.float32), "pose": pose.astype(np.float32),
            "betas": rng.normal(0, 0.5, (n, 10)).astype(np.float32), "pred_cam": np.tile([0.9, 0.0, 0.0], (n, 1)),
            "cam_t": np.zeros((n, 3), np.float32), "bbox": np.tile([W / 2, H / 2, 200.0], (n, 1)),
            "img_size": np.tile([W, H], (n, 1)), "focal_length": np.full(n, 1.2 * H, np.float32),
            "cam_t_full": cam_t.astype(np.float32)}


def write_run(root: Path, res: dict[str, np.ndarray], video: str = "clip", fps: float = FPS) -> tuple[Path, Path]:
    """A run dir holding `res` and an internet root whose frame folder has only vid2img's meta.json."""
    run_dir, internet = root / "run", root / "internet"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "results.npz", **res)
    (internet / "images" / video).mkdir(parents=True)
    (internet / "images" / video / "meta.json").write_text(json.dumps({"fps": fps, "every": 1}))
    return run_dir, internet


@pytest.fixture(scope="module")
def exported(body_root, tmp_path_factory):
    """The default exports (without the overlay video) of two tracks of one video; (results, folder, smpl)."""
    res = walking_results(TRACKS)
    run_dir, internet = write_run(tmp_path_factory.mktemp("anim"), res)
    out = export_run(run_dir, cfg=ExportConfig(video=False), data_root=body_root, internet_root=internet)
    return res, out / "clip", build_smpl(DataPaths.from_root(body_root), "neutral")


def expected_track(res: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows of every key frame from first to last, the last detection at or before it; mean betas)."""
    rows = np.flatnonzero(res["track"] == name)
    rows = rows[np.argsort(res["frame_id"][rows])]
    frames = res["frame_id"][rows]
    keys = np.arange(frames[0], frames[-1] + 1)
    return rows[np.searchsorted(frames, keys, side="right") - 1], res["betas"][rows].astype(np.float64).mean(axis=0)


# --- reading glTF by hand -------------------------------------------------------------------------------------------

DTYPES = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}
WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def accessor(doc: pygltflib.GLTF2, index: int) -> np.ndarray:
    acc = doc.accessors[index]
    view = doc.bufferViews[acc.bufferView]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    data = np.frombuffer(doc.binary_blob(), DTYPES[acc.componentType], acc.count * WIDTH[acc.type], start)
    return data.reshape(acc.count, WIDTH[acc.type]) if WIDTH[acc.type] > 1 else data


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """[..., 4] (x, y, z, w) -> [..., 3, 3]."""
    x, y, z, w = np.moveaxis(q.astype(np.float64), -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def read_glb(path: Path) -> dict:
    """Joint names, parents, rest translations, inverse binds, skin attributes and per-key rotations / root
    translation of a .glb, read with pygltflib and parsed here."""
    doc = pygltflib.GLTF2().load(str(path))
    skin = doc.skins[0]
    joints = skin.joints
    parent = {c: i for i, node in enumerate(doc.nodes) for c in (node.children or [])}
    anim = doc.animations[0]
    times, rot, root_t = None, {}, None
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        times = accessor(doc, sampler.input)
        if ch.target.path == "rotation":
            rot[joints.index(ch.target.node)] = quat_matrix(accessor(doc, sampler.output))
        else:
            root_t = accessor(doc, sampler.output).astype(np.float64)
    prim = doc.meshes[0].primitives[0]
    return {"doc": doc, "names": [doc.nodes[j].name for j in joints], "times": times,
            "parents": [joints.index(parent[j]) if parent.get(j) in joints else -1 for j in joints],
            "offsets": np.array([doc.nodes[j].translation for j in joints]),
            "ibm": accessor(doc, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64),
            "rot": np.stack([rot[j] for j in range(len(joints))], axis=1), "root_t": root_t,
            "positions": accessor(doc, prim.attributes.POSITION).astype(np.float64),
            "joints": accessor(doc, prim.attributes.JOINTS_0), "weights": accessor(doc, prim.attributes.WEIGHTS_0),
            "faces": accessor(doc, prim.indices).reshape(-1, 3)}


def pose_from_file(g: dict, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics and linear blend skinning of key `key`: (joint positions [24, 3], vertices [V, 3])."""
    world = np.zeros((len(g["names"]), 4, 4))
    for j, p in enumerate(g["parents"]):  # SMPL lists parents before children
        local = np.eye(4)
        local[:3, :3] = g["rot"][key, j]
        local[:3, 3] = g["root_t"][key] if p < 0 else g["offsets"][j]
        world[j] = local if p < 0 else world[p] @ local
    skin = world @ g["ibm"]  # [24, 4, 4]
    blend = np.einsum("vk,vkab->vab", g["weights"].astype(np.float64), skin[g["joints"].astype(int)])
    verts = np.einsum("vab,vb->va", blend[:, :3, :3], g["positions"]) + blend[:, :3, 3]
    return world[:, :3, 3], verts


@torch.no_grad()
def smpl_camera_frame(smpl, rotmat: np.ndarray, betas: np.ndarray, cam_t: np.ndarray):
    rot = torch.as_tensor(rotmat, dtype=torch.float32)[None]
    out = smpl(betas=torch.as_tensor(betas, dtype=torch.float32)[None], body_pose=rot[:, 1:],
               global_orient=rot[:, :1], pose2rot=False)
    return out.smpl_joints[0].double().numpy() + cam_t, out.vertices[0].double().numpy() + cam_t


# --- glTF -----------------------------------------------------------------------------------------------------------


def test_glb_round_trips_to_the_same_rotations(exported) -> None:
    res, out, _ = exported
    g = read_glb(out / "person_0.glb")
    src, _ = expected_track(res, "clip:0")
    assert g["names"] == SMPL_JOINT_NAMES and len(g["doc"].skins[0].joints) == 24
    assert g["times"] == pytest.approx(np.arange(10) / FPS)  # frames 0..9 at the video's rate
    expected = res["rotmat"][src].astype(np.float64)
    expected[:, 0] = YUP @ expected[:, 0]
    assert np.abs(g["rot"] - expected).max() < 1e-5
    held = g["doc"].scenes[0].extras["held_frames"]
    assert held == [4, 5] and np.array_equal(g["rot"][4], g["rot"][3])  # missed frames hold the last pose


def test_glb_poses_the_smpl_body_in_y_up(exported) -> None:
    """The file alone (rest offsets, inverse binds, weights, keys) reproduces SMPL's joints and vertices in the
    camera frame turned to y-up; the procedural body has no pose correctives and at most 3 weights per vertex."""
    res, out, smpl = exported
    g = read_glb(out / "person_1.glb")
    src, betas = expected_track(res, "clip:1")
    for key in (0, 2):
        joints, verts = smpl_camera_frame(smpl, res["rotmat"][src[key]], betas, res["cam_t_full"][src[key]])
        got_joints, got_verts = pose_from_file(g, key)
        assert np.abs(got_joints - joints @ YUP.T).max() < 1e-4
        assert np.abs(got_verts - verts @ YUP.T).max() < 1e-4
    assert (joints[:, 2] > 3).all()  # in front of the camera: negative z in the y-up world
    assert g["faces"].max() < len(g["positions"]) and (g["weights"].sum(axis=1) == pytest.approx(1.0, abs=1e-6))


def test_trimesh_reads_the_rest_body(exported) -> None:
    _, out, smpl = exported
    scene = trimesh.load(out / "person_0.glb", force="scene", process=False)
    meshes = list(scene.geometry.values())
    assert len(meshes) == 1 and meshes[0].vertices.shape == (6890, 3) and len(meshes[0].faces) == len(smpl.faces)
    assert meshes[0].vertices[:, 1].max() - meshes[0].vertices[:, 1].min() > 1.0  # standing: y is the long axis


def test_frames_apart_and_bad_rates_are_refused(exported) -> None:
    res, _, smpl = exported
    keys, source, detected = held_rows(np.array([10, 12, 18]), 2)
    assert keys.tolist() == [10, 12, 14, 16, 18] and source.tolist() == [0, 1, 1, 1, 2]
    assert detected.tolist() == [True, True, False, False, True]
    with pytest.raises(ValueError, match="not 4 frames apart"):
        held_rows(np.array([0, 6]), 4)
    with pytest.raises(ValueError, match="frame rate must be positive"):
        track_animation(smpl, res, np.flatnonzero(res["track"] == "clip:1"), "p", 0.0)


def test_formats_choose_the_files(body_root, tmp_path) -> None:
    run_dir, internet = write_run(tmp_path, walking_results({"v:0": [0, 1, 2]}), video="v")
    out = export_run(run_dir, cfg=ExportConfig(formats=("bvh",), video=False), data_root=body_root,
                     internet_root=internet) / "v"
    assert (out / "person_0.bvh").is_file() and not (out / "person_0.glb").exists()
    assert not (out / "view.html").exists()  # the page plays glTF


def node_validator() -> tuple[str, dict[str, str]] | None:
    """(node, env) where node finds the npm package gltf-validator (NODE_PATH, or `npm root -g`), else None."""
    node = shutil.which("node")
    if node is None:
        return None
    paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    npm = shutil.which("npm")
    if npm:
        done = subprocess.run([npm, "root", "-g"], check=False, capture_output=True, text=True, timeout=60)
        paths.append(done.stdout.strip())
    found = [p for p in paths if (Path(p) / "gltf-validator" / "package.json").is_file()]
    return (node, {**os.environ, "NODE_PATH": found[0]}) if found else None


VALIDATE_JS = """
const validator = require('gltf-validator');
const bytes = new Uint8Array(require('fs').readFileSync(process.argv[1]));
validator.validateBytes(bytes).then((r) => console.log(JSON.stringify(r.issues)))
  .catch((e) => { console.error(String(e)); process.exit(2); });
"""


def test_khronos_validator_finds_no_issue(exported) -> None:
    found = node_validator()
    if found is None:
        pytest.skip("node with the npm package gltf-validator not found (npm install -g gltf-validator)")
    node, env = found
    for k in (0, 1):
        done = subprocess.run([node, "-e", VALIDATE_JS, str(exported[1] / f"person_{k}.glb")], env=env,
                              check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        issues = json.loads(done.stdout)
        assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"][:5]


# --- BVH ------------------------------------------------------------------------------------------------------------


def axis_matrix(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def read_bvh(path: Path) -> dict:
    """Joints (name, parent, offset, channels) in file order and the MOTION table of a BVH file."""
    tokens = path.read_text().split()
    joints, stack, i = [], [], 0
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            joints.append({"name": tokens[i + 1], "parent": stack[-1] if stack else -1})
            i += 2
        elif tok == "End":
            joints.append({"name": None, "parent": stack[-1]})
            i += 2
        elif tok == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            joints[-1]["offset"] = np.array(tokens[i + 1:i + 4], dtype=float)
            i += 4
        elif tok == "CHANNELS":
            count = int(tokens[i + 1])
            joints[-1]["channels"] = tokens[i + 2:i + 2 + count]
            i += 2 + count
        else:
            i += 1
    frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    motion = np.array(tokens[i + 6:], dtype=float).reshape(frames, -1)
    return {"joints": joints, "frame_time": frame_time, "motion": motion}


def bvh_pose(bvh: dict, frame: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (local rotation, root position or None): every channel applied in its listed order."""
    out, col = {}, 0
    for joint in bvh["joints"]:
        rot, pos = np.eye(3), np.zeros(3)
        for channel in joint.get("channels", []):
            value = bvh["motion"][frame, col]
            col += 1
            if channel.endswith("rotation"):
                rot = rot @ axis_matrix(channel[0], value)
            else:
                pos["XYZ".index(channel[0])] = value
        if joint["name"]:
            out[joint["name"]] = (rot, pos)
    return out


def test_bvh_reads_back_to_the_same_rotations(exported) -> None:
    res, out, smpl = exported
    bvh = read_bvh(out / "person_0.bvh")
    src, betas = expected_track(res, "clip:0")
    named = [j for j in bvh["joints"] if j["name"]]
    assert sorted(j["name"] for j in named) == sorted(SMPL_JOINT_NAMES)
    assert bvh["motion"].shape == (10, 6 + 3 * 23) and bvh["frame_time"] == pytest.approx(1 / FPS)
    joints, _ = smpl_camera_frame(smpl, np.tile(np.eye(3), (24, 1, 1)), betas, np.zeros(3))
    parents = smpl.body.parents.numpy()
    for j in named:  # offsets: the rest skeleton of the track's shape in centimetres
        k = SMPL_JOINT_NAMES.index(j["name"])
        rest = joints[k] - (joints[parents[k]] if parents[k] >= 0 else joints[k])
        assert j["offset"] == pytest.approx(rest * 100, abs=1e-4)
    for frame in (0, 4, 9):
        pose = bvh_pose(bvh, frame)
        rot = res["rotmat"][src[frame]].astype(np.float64)
        for k, name in enumerate(SMPL_JOINT_NAMES):
            expected = YUP @ rot[0] if k == 0 else rot[k]
            assert np.abs(pose[name][0] - expected).max() < 1e-5, (frame, name)
        pelvis = YUP @ (joints[0] + res["cam_t_full"][src[frame]]) * 100
        assert pose["pelvis"][1] == pytest.approx(pelvis, abs=1e-3)


# --- Blender (when installed) ---------------------------------------------------------------------------------------

BLENDER_SCRIPT = """
import builtins, json, sys
# Debian's Blender 3.4 runs on Python 3.11 and numpy >= 1.24, which its importers predate: the glTF importer uses
# numpy.bool and the BVH importer opens files in mode 'rU'; both shims change nothing else
try:
    import numpy
    if not hasattr(numpy, "bool"):
        numpy.bool = bool
except ImportError:  # the glTF importer needs numpy (Debian: python3-numpy)
    print("NO_NUMPY")
_open = builtins.open
builtins.open = lambda file, mode="r", *args, **kwargs: _open(file, mode.replace("U", ""), *args, **kwargs)
import bpy
path, kind, fps, frame = sys.argv[-4], sys.argv[-3], int(sys.argv[-2]), int(sys.argv[-1])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = fps
if kind == "gltf":
    bpy.ops.import_scene.gltf(filepath=path)
else:
    bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01, update_scene_fps=True, update_scene_duration=True)
arm = [o for o in bpy.data.objects if o.type == "ARMATURE"][0]
bpy.context.scene.frame_set(frame)
heads = {b.name: list(arm.matrix_world @ b.head) for b in arm.pose.bones}
print("RESULT" + json.dumps({"bones": [b.name for b in arm.data.bones], "fps": bpy.context.scene.render.fps,
                             "ranges": [list(a.frame_range) for a in bpy.data.actions], "heads": heads}))
"""


def blender_import(path: Path, kind: str, fps: int, frame: int) -> dict:
    """Blender's import of `path` (kind gltf or bvh) at scene rate `fps`: bone names, frame ranges, and the bones'
    head positions (metres, Blender's z-up world) at scene frame `frame`."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender not found (apt-get install blender)")
    args = [str(path), kind, str(fps), str(frame)]
    done = subprocess.run([blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--python-expr",
                           BLENDER_SCRIPT, "--", *args], check=False, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    if kind == "gltf" and "NO_NUMPY" in done.stdout.splitlines() and not lines:
        pytest.skip("Blender's Python has no numpy, which its glTF importer needs (apt-get install python3-numpy)")
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-3000:]
    return json.loads(lines[-1][len("RESULT"):])


def blender_heads_match(got: dict, smpl, res: dict[str, np.ndarray], row: int, betas: np.ndarray) -> None:
    """Blender's bone heads equal SMPL's joints: camera frame -> y-up (x, -y, -z) -> Blender's z-up (x, -z, y)."""
    joints, _ = smpl_camera_frame(smpl, res["rotmat"][row], betas, res["cam_t_full"][row])
    y_up = joints @ YUP.T
    blender = np.c_[y_up[:, 0], -y_up[:, 2], y_up[:, 1]]
    heads = np.array([got["heads"][name] for name in SMPL_JOINT_NAMES])
    assert np.abs(heads - blender).max() < 1e-3


def test_blender_imports_the_glb(exported) -> None:
    res, out, smpl = exported
    got = blender_import(out / "person_1.glb", "gltf", int(FPS), 4)
    assert sorted(got["bones"]) == sorted(SMPL_JOINT_NAMES)
    assert got["ranges"] == [[3.0, 6.0]]  # frames 3..6 of the video at the scene's 25 fps: 4 frames
    src, betas = expected_track(res, "clip:1")
    blender_heads_match(got, smpl, res, src[1], betas)  # scene frame 4 = video frame 4 (0-based)


def test_blender_imports_the_bvh(exported) -> None:
    res, out, smpl = exported
    got = blender_import(out / "person_0.bvh", "bvh", 24, 3)
    assert sorted(got["bones"]) == sorted(SMPL_JOINT_NAMES) and got["fps"] == int(FPS)
    assert len(got["ranges"]) == 1 and got["ranges"][0][1] - got["ranges"][0][0] + 1 == 10
    src, betas = expected_track(res, "clip:0")
    blender_heads_match(got, smpl, res, src[2], betas)  # scene frame 3 = BVH frame 3 = the track's third frame
