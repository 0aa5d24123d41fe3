"""Generation of the synthetic world: rendered source (lab) and target (wild) data in the real datasets' formats.

A unit of work is one lab clip (a subject's action seen by every camera of the rig) or one wild sequence. Each unit
draws from its own generator seeded by (seed, domain, unit), so results do not depend on the order or the number of
worker processes, and a finished unit is marked by one file written atomically (`h36m/synthetic_parts/<clip>.npz`,
`3dpw/sequenceFiles/test/<seq>.pkl`), so an interrupted run resumes where it stopped.

Bodies are the gendered SMPL-format models of the data root; every person's feet are put on the floor (y = 0) by
lifting the body so that its lowest vertex touches it (smoothed over frames), plus the motion's own hops.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from config import DataPaths
from datasets.preprocess.pw3d import root_to_camera
from datasets.synthetic import domains as dom
from datasets.synthetic.detector_noise import coco18_from_j49, joint_visibility, simulate_openpose
from datasets.synthetic.motion import Motion, generate_motion
from datasets.synthetic.scene import (
    Lighting,
    background_view,
    camera_center,
    clothing_colors,
    handheld_path,
    intrinsics,
    lab_background,
    lab_cameras,
    lab_lighting,
    sample_occluders,
    wild_background_canvas,
    wild_lighting,
)
from datasets.synthetic.writers import (
    h36m_arrays,
    h36m_image_name,
    pw3d_image_path,
    pw3d_sequence_dict,
    write_jpeg,
    write_png,
    write_pw3d_sequence,
)
from utils.constants import GT_SLICE
from utils.io import savez_atomic
from utils.keypoints import keypoint_box
from utils.render import MeshSpec, Renderer, RenderResult

PELVIS_24 = 14  # "Pelvis (MPII)" in the 24 GT joints: the root of `S`
SMPL_CHUNK = 128  # frames per SMPL forward pass
LAB_BOX_FACTOR = 1.2  # SPIN box of the projected joints, as this project's Human3.6M preprocessing
DOMAIN_CODE = {"rig": 0, "lab_subject": 1, "lab_clip": 2, "wild": 3}  # first entropy word after the seed


@dataclass(frozen=True)
class LabUnit:
    """One lab clip."""

    subject: str
    action: int  # index into the action cycle
    frames: int  # kept frames per camera
    split: str  # "train" or "valid"

    @property
    def family(self) -> str:
        return dom.LAB_FAMILIES[self.action % len(dom.LAB_FAMILIES)]

    @property
    def name(self) -> str:
        return f"{self.subject}_{dom.ACTION_NAMES[self.family]}"


@dataclass(frozen=True)
class WildUnit:
    """One wild sequence."""

    index: int
    frames: int

    @property
    def name(self) -> str:
        return dom.wild_sequence_name(self.index)


@dataclass
class Person:
    """A posed body over N frames (world frame, y up, metres)."""

    gender: str  # 'male' or 'female'
    betas: np.ndarray  # [10]
    poses: np.ndarray  # [N, 72] axis-angle, root in the world
    trans: np.ndarray  # [N, 3]
    vertices: np.ndarray  # [N, 6890, 3]
    joints: np.ndarray  # [N, 49, 3]
    smpl_joints: np.ndarray  # [N, 24, 3]
    colors: np.ndarray  # [6890, 3] uint8


def world_paths(root: Path) -> DataPaths:
    """The data paths of a synthetic root, ignoring `$PW3D_ROOT`/`$H36M_ROOT` (never write into a real dataset)."""
    root = Path(root).resolve()
    return dataclasses.replace(DataPaths.from_root(root), pw3d_root=root / "3dpw", h36m_root=root / "h36m",
                               internet_root=root / "internet")


def rng_for(seed: int, domain: str, *index: int) -> np.random.Generator:
    """The generator of one part of the world: independent of generation order."""
    return np.random.default_rng([seed, DOMAIN_CODE[domain], *index])


class WorldContext:
    """What a worker process holds: the data paths, the gendered bodies and one reused renderer."""

    def __init__(self, root: Path, seed: int, save_labels: bool = False) -> None:
        from models.smpl import build_smpl

        self.root, self.seed, self.save_labels = Path(root), seed, save_labels
        self.paths = world_paths(root)
        self.models = {g: build_smpl(self.paths, g) for g in ("male", "female")}
        self.renderer = Renderer(*dom.LAB.image_size)

    def pose_person(self, gender: str, betas: np.ndarray, motion: Motion, colors: np.ndarray,
                    offset: np.ndarray | None = None) -> Person:
        """Run the body through a motion and put its feet on the floor; `offset` [3] shifts it on the floor."""
        model = self.models[gender]
        verts, joints, smpl_joints = [], [], []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # float32 sums then do not depend on the thread count: same world for any --jobs
        try:
            for start in range(0, len(motion.poses), SMPL_CHUNK):
                pose = torch.as_tensor(motion.poses[start: start + SMPL_CHUNK], dtype=torch.float32)
                shape = torch.as_tensor(betas, dtype=torch.float32).expand(len(pose), 10)
                with torch.no_grad():
                    out = model(shape, pose[:, 3:], pose[:, :3])
                verts.append(out.vertices.numpy())
                joints.append(out.joints.numpy())
                smpl_joints.append(out.smpl_joints.numpy())
        finally:
            torch.set_num_threads(threads)
        verts, joints, smpl_joints = (np.concatenate(x).astype(np.float64) for x in (verts, joints, smpl_joints))
        trans = motion.trans.copy()
        floor = -gaussian_filter1d(verts[:, :, 1].min(axis=1), sigma=2.0, mode="nearest")
        trans[:, 1] += floor
        if offset is not None:
            trans += offset
        shift = trans[:, None, :]
        return Person(gender, np.asarray(betas, dtype=np.float64), motion.poses, trans, verts + shift,
                      joints + shift, smpl_joints + shift, colors)

    def colors(self, gender: str, rng: np.random.Generator, vivid: bool, lighting: Lighting) -> np.ndarray:
        """Clothing colours [6890, 3] uint8 of a body under a light's tint."""
        body = self.models[gender].body
        rgb = clothing_colors(body.lbs_weights.numpy(), body.v_template.numpy(), rng, vivid) * lighting.tint
        return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)

    def render(self, meshes: list[MeshSpec], K: np.ndarray, cam: np.ndarray, background: np.ndarray,
               lighting: Lighting) -> RenderResult:
        """Render with the shared renderer under a domain's light."""
        return self.renderer.render(meshes, K, cam, background, light_intensity=lighting.intensity,
                                    ambient=lighting.ambient)


def to_camera(points: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """[..., J, 3] world points -> camera frame with cam_from_world [..., 4, 4] (broadcast over leading axes)."""
    return np.einsum("...ij,...kj->...ki", cam[..., :3, :3], points) + cam[..., None, :3, 3]


def project_cam(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[..., J, 3] camera-frame points -> [..., J, 2] pixels."""
    pix = points_cam @ K.T
    return pix[..., :2] / pix[..., 2:3]


# ------------------------------------------------------------------------------------------------------------------
# lab (source)
# ------------------------------------------------------------------------------------------------------------------


def lab_rig(seed: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The fixed lab cameras: (name, K [3, 3], cam_from_world [4, 4], background [H, W, 3] uint8) each."""
    rng = rng_for(seed, "rig")
    width, height = dom.LAB.image_size
    cams = lab_cameras(rng, len(dom.H36M_CAMERAS), dom.LAB.distance, dom.LAB.cam_height, dom.CHEST_HEIGHT)
    out = []
    for name, cam in zip(dom.H36M_CAMERAS, cams):
        K = intrinsics(rng.uniform(*dom.LAB.focal), width, height, tuple(rng.uniform(-4.0, 4.0, 2)))
        out.append((name, K, cam, lab_background(rng, width, height)))
    return out


def lab_subject(ctx: WorldContext, subject: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(gender, betas [10], colours [6890, 3] uint8) of a lab subject, the same in every clip."""
    rng = rng_for(ctx.seed, "lab_subject", int(subject.lstrip("S")))
    gender = dom.SUBJECT_GENDERS[subject]
    return gender, dom.sample_betas(rng, dom.LAB), ctx.colors(gender, rng, vivid=False, lighting=lab_lighting())


def generate_lab_unit(ctx: WorldContext, unit: LabUnit) -> Path:
    """Render one clip from every rig camera; write its images and its part npz (the done marker)."""
    rng = rng_for(ctx.seed, "lab_clip", int(unit.subject.lstrip("S")), unit.action)
    gender, betas, colors = lab_subject(ctx, unit.subject)
    full = generate_motion([unit.family], unit.frames * dom.LAB_STEP, rng, arena_radius=dom.LAB_ARENA_RADIUS,
                           start=rng.uniform(-0.5, 0.5, 2))
    keep = np.arange(0, unit.frames * dom.LAB_STEP, dom.LAB_STEP)
    person = ctx.pose_person(gender, betas, Motion(full.poses[keep], full.trans[keep], full.segments), colors)
    mesh_faces, lighting = ctx.models[gender].faces, lab_lighting()
    h36m_root = ctx.paths.h36m_root
    columns: dict[str, list] = {k: [] for k in ("imgname", "part", "S", "pose")}
    for cam_name, K, cam, background in lab_rig(ctx.seed):
        joints_cam = to_camera(person.joints[:, GT_SLICE], cam)  # [N, 24, 3]
        for t, frame in enumerate(keep):
            name = h36m_image_name(unit.subject, dom.ACTION_NAMES[unit.family], cam_name, int(frame) + 1)
            res = ctx.render([MeshSpec(person.vertices[t], mesh_faces, colors)], K, cam, background, lighting)
            write_jpeg(h36m_root / name, res.rgb)
            if ctx.save_labels:
                write_png(ctx.root / "labels" / "h36m" / Path(name).with_suffix(".png"), res.labels.astype(np.uint8))
            columns["imgname"].append(name)
        part = project_cam(joints_cam, K)
        width, height = dom.LAB.image_size
        inside = (part[..., 0] >= 0) & (part[..., 0] < width) & (part[..., 1] >= 0) & (part[..., 1] < height)
        columns["part"].append(np.concatenate((part, inside[..., None]), axis=2))
        rooted = joints_cam - joints_cam[:, PELVIS_24: PELVIS_24 + 1]
        columns["S"].append(np.concatenate((rooted, np.ones(rooted.shape[:2] + (1,))), axis=2))
        columns["pose"].append(root_to_camera(person.poses, np.broadcast_to(cam[:3, :3], (len(keep), 3, 3))))
    part = np.concatenate(columns["part"])
    center, scale, _ = keypoint_box(part, conf_threshold=0.5, scale_factor=LAB_BOX_FACTOR)
    arrays = h36m_arrays(columns["imgname"], center, scale, part, np.concatenate(columns["S"]),
                         np.concatenate(columns["pose"]), np.tile(betas, (len(part), 1)))
    marker = lab_part_path(ctx.paths, unit)
    savez_atomic(marker, arrays)
    return marker


def lab_part_path(paths: DataPaths, unit: LabUnit) -> Path:
    """The part file that marks a lab clip as finished."""
    return paths.h36m_root / "synthetic_parts" / f"{unit.name}.npz"


# ------------------------------------------------------------------------------------------------------------------
# wild (target)
# ------------------------------------------------------------------------------------------------------------------


def wild_people(ctx: WorldContext, unit: WildUnit, rng: np.random.Generator, lighting: Lighting,
                cam_azimuth: float) -> list[Person]:
    """The one or two people of a wild sequence, roughly facing a camera at `cam_azimuth` (pairs side by side)."""
    count = dom.wild_layout(unit.index, unit.frames).people
    segments = max(1, min(3, unit.frames // 120))
    side = np.array([np.cos(cam_azimuth), 0.0, -np.sin(cam_azimuth)])  # horizontal, across the view
    spacing = rng.uniform(1.4, 2.4)
    people = []
    for p in range(count):
        gender = "male" if rng.random() < 0.5 else "female"
        betas = dom.sample_betas(rng, dom.WILD)
        colors = ctx.colors(gender, rng, vivid=True, lighting=lighting)
        motion = generate_motion(dom.WILD.families, unit.frames, rng, n_segments=segments,
                                 arena_radius=dom.PAIR_ARENA_RADIUS if count > 1 else None,
                                 heading0=cam_azimuth + rng.normal(0.0, np.deg2rad(45.0)))
        people.append(ctx.pose_person(gender, betas, motion, colors, side * (p - (count - 1) / 2) * spacing))
    return people


def wild_camera(rng: np.random.Generator, people: list[Person], cam_azimuth: float) -> tuple[np.ndarray, np.ndarray]:
    """K [3, 3] and the hand-held cam_from_world [N, 4, 4] filming the people's chests."""
    spec = dom.WILD
    width, height = spec.image_size
    focal = rng.uniform(*spec.focal)
    # far enough that a 1.75 m person spans at most 85 % of the image height
    distance = max(rng.uniform(*spec.distance), 1.75 * focal / (0.85 * height))
    distance += dom.PAIR_EXTRA_DISTANCE * (len(people) - 1)
    chest = np.mean([p.smpl_joints[:, 6] for p in people], axis=0)  # spine2
    cams = handheld_path(rng, chest, distance, rng.uniform(*spec.cam_height), cam_azimuth, spec.shake_deg)
    return intrinsics(focal, width, height, tuple(rng.uniform(-0.02, 0.02, 2) * width)), cams


def _perturbed(cam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A misaligned camera pose (about 2 degrees and 10 cm off), stored where campose_valid is False."""
    out = cam.copy()
    out[:3, :3] = Rotation.from_rotvec(rng.normal(0.0, np.deg2rad(2.0), 3)).as_matrix() @ cam[:3, :3]
    out[:3, 3] += rng.normal(0.0, 0.1, 3)
    return out


def generate_wild_unit(ctx: WorldContext, unit: WildUnit) -> Path:
    """Render one wild sequence; write its images and its 3DPW pkl (the done marker)."""
    rng = rng_for(ctx.seed, "wild", unit.index)
    layout = dom.wild_layout(unit.index, unit.frames)
    width, height = dom.WILD.image_size
    lighting, cam_azimuth = wild_lighting(rng), rng.uniform(-np.pi, np.pi)
    people = wild_people(ctx, unit, rng, lighting, cam_azimuth)
    K, cams = wild_camera(rng, people, cam_azimuth)
    mid = unit.frames // 2
    occluders = [MeshSpec(v, f, (c * 255).astype(np.uint8)) for v, f, c in sample_occluders(
        rng, camera_center(cams[mid]), np.mean([p.trans[mid] for p in people], axis=0), layout.occluders)]
    canvas = wild_background_canvas(rng, 3 * width, int(1.6 * height))
    visible = np.zeros((len(people), unit.frames, 18), dtype=bool)
    self_occluded = np.zeros_like(visible)
    keypoints = np.zeros((len(people), unit.frames, 18, 2))
    for t in range(unit.frames):
        meshes = [MeshSpec(p.vertices[t], ctx.models[p.gender].faces, p.colors) for p in people] + occluders
        res = ctx.render(meshes, K, cams[t], background_view(canvas, cams[t], K[0, 0], width, height), lighting)
        write_jpeg(pw3d_image_path(ctx.paths.pw3d_root, unit.name, t), res.rgb)
        if ctx.save_labels:
            write_png(ctx.root / "labels" / "3dpw" / unit.name / f"label_{t:05d}.png", res.labels.astype(np.uint8))
        for i, p in enumerate(people):
            joints_cam = to_camera(coco18_from_j49(p.joints[t]), cams[t])
            keypoints[i, t] = project_cam(joints_cam, K)
            visible[i, t], self_occluded[i, t] = joint_visibility(keypoints[i, t], joints_cam[:, 2], res.labels,
                                                                  res.depth, i + 1)
    poses2d = [simulate_openpose(keypoints[i], visible[i], self_occluded[i], (width, height), rng)
               for i in range(len(people))]
    valid = np.arange(unit.frames) >= layout.invalid_frames
    stored = np.stack([cams[t] if valid[t] else _perturbed(cams[t], rng) for t in range(unit.frames)])
    data = pw3d_sequence_dict(
        unit.name, [p.poses for p in people], [p.betas for p in people], [p.trans for p in people], poses2d,
        [p.smpl_joints.reshape(unit.frames, 72) for p in people], [p.gender[0] for p in people],
        [valid] * len(people), stored, K)
    return write_pw3d_sequence(ctx.paths.pw3d_root, data)
