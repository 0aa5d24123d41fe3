"""Exports of a run's `results.npz`: VIBE-style npz, glTF and BVH animations per person, EasyMocap and instant-nvr
files, overlay videos, a browser page, OBJ.

    python -m datasets.export exps/internet                      # everything, under exps/internet/export/
    python -m datasets.export exps/internet --formats vibe --obj --no-video

Per video `<out>/<video>/`: `person_<k>.npz` (VIBE keys plus the full-image camera), `overlay.mp4` (every frame
with the predicted meshes rendered by the full-image camera, at the source frame rate), `easymocap/` (`smpl/%06d.json`,
`intri.yml`, `extri.yml`), `instant-nvr/person_<k>/` (`params/`, `vertices/`, `annots.npy`, `images/` link),
`person_<k>.glb` (skinned, animated body), `person_<k>.bvh`, `view.html` (the .glb files played in a browser beside
the overlay; `--no-viewer`: none) and with `--obj` `obj/person_<k>/%06d.obj`. Per-frame files are named after the
frame image (`000001` = the video's first frame, as vid2img names frames). `docs/exports.md` gives every key, shape,
unit and coordinate frame; the EasyMocap / instant-nvr conversion is docs/method.md §2.4, with one shape per person
(the mean of its betas).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from config import DataPaths, add_dataclass_arguments, config_from_namespace, option
from datasets.animation import TrackAnimation, frame_clock, track_animation
from datasets.bvh_export import write_bvh
from datasets.gltf_export import write_glb
from datasets.overlay import PALETTE, intrinsics, iter_vertices, smpl_forward, write_overlay_video
from datasets.results import load_results, split_track, tracks_of
from datasets.viewer import write_viewer
from models.smpl import SMPL, build_smpl
from utils.geometry import crop_cam_to_orig_weak_cam, rotmat_to_axis_angle

if TYPE_CHECKING:
    from utils.render import Renderer  # imported when a video is made (it sets up headless OpenGL)

logger = logging.getLogger(__name__)

FORMATS = ("vibe", "easymocap", "instant-nvr", "gltf", "bvh")


@dataclass
class ExportConfig:
    """What to export."""

    formats: tuple[str, ...] = option("exports per person track", default=FORMATS, choices=FORMATS)
    video: bool = option("overlay video per video", default=True)
    viewer: bool = option("view.html: the glTF animations in a browser page (with gltf)", default=True)
    obj: bool = option("one .obj mesh per frame and person (camera frame)", default=False)
    verts: bool = option("add the vertices to the VIBE-style npz (6890 x 3 per frame)", default=False)
    draw_keypoints: bool = option("draw the input keypoints on the overlay video", default=False)
    fps: float = option("overlay frame rate when the frame folder has no meta.json", default=30.0)


# --- geometry -----------------------------------------------------------------------------------------------------


@torch.no_grad()
def rest_pelvis(smpl: SMPL, betas: np.ndarray) -> np.ndarray:
    """J0(beta): the pelvis of the shaped body in the rest pose, [n, 3] metres, for betas [n, 10]."""
    b = torch.as_tensor(betas, dtype=torch.float32).reshape(-1, 10)
    zeros = torch.zeros(len(b), 69)
    return smpl(betas=b, body_pose=zeros, global_orient=torch.zeros(len(b), 3)).smpl_joints[:, 0].numpy()


def project_full(points: np.ndarray, cam_t_full: np.ndarray, focal: np.ndarray, img_size: np.ndarray) -> np.ndarray:
    """Model-space points [n, J, 3] seen by the full-image camera: [n, J, 2] pixels (u = f (X + t) / (Z + tz) + W/2)."""
    assert points.ndim == 3 and cam_t_full.shape == (len(points), 3), (points.shape, cam_t_full.shape)
    cam = points + cam_t_full[:, None]
    return focal[:, None, None] * cam[..., :2] / cam[..., 2:3] + img_size[:, None, :] / 2.0


def easymocap_params(rotmat: np.ndarray, cam_t_full: np.ndarray, pelvis: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SMPL root + full-image translation -> EasyMocap's (Rh, Th, poses) (docs/method.md §2.4).

    EasyMocap poses the body as `R(Rh) v_local + Th` with v_local the zero-root SMPL; the standard body is
    `R(go) (v_local - J0) + J0 + t`, so `Rh = go` and `Th = t + J0 - R(go) J0`.

    Args:
        rotmat: [n, 24, 3, 3]; cam_t_full: [n, 3] metres; pelvis: [3] or [n, 3] rest pelvis J0 of the shape used.
    Returns:
        Rh [n, 3] axis-angle, Th [n, 3] metres, poses [n, 69] body axis-angle (no root).
    """
    assert rotmat.shape[1:] == (24, 3, 3) and cam_t_full.shape == (len(rotmat), 3), (rotmat.shape, cam_t_full.shape)
    aa = rotmat_to_axis_angle(torch.as_tensor(rotmat, dtype=torch.float64).reshape(-1, 3, 3)).numpy()
    aa = aa.reshape(len(rotmat), 24, 3)
    pelvis = np.broadcast_to(pelvis, cam_t_full.shape)
    th = cam_t_full + pelvis - np.einsum("nij,nj->ni", rotmat[:, 0], pelvis)
    return aa[:, 0], th, aa[:, 1:].reshape(len(rotmat), 69)


def with_zero_root(rotmat: np.ndarray) -> np.ndarray:
    """A copy of rotmat [n, 24, 3, 3] whose root rotation is the identity."""
    out = np.array(rotmat, copy=True)
    out[:, 0] = np.eye(3)
    return out


# --- per-track exports ----------------------------------------------------------------------------------------------


def read_track_keypoints(internet_root: Path, video: str, k: int) -> dict[int, np.ndarray]:
    """frame_id -> [49, 3] input keypoints (pixels, binarised confidence) of track `<video>_<k>.npz`; {} if absent."""
    path = Path(internet_root) / f"{video}_{k}.npz"
    if not path.is_file():
        return {}
    with np.load(path) as data:
        frames = data["frame_ids"] if "frame_ids" in data.files else np.arange(len(data["part"]))
        return {int(f): p for f, p in zip(frames, data["part"], strict=True)}


def vibe_arrays(res: dict[str, np.ndarray], rows: np.ndarray, smpl: SMPL, keypoints: dict[int, np.ndarray],
                with_verts: bool) -> dict[str, np.ndarray]:
    """The VIBE-style arrays of one track (see docs/exports.md)."""
    bbox, size = res["bbox"][rows].astype(np.float64), res["img_size"][rows].astype(np.float64)
    cam_t, focal = res["cam_t_full"][rows].astype(np.float64), res["focal_length"][rows].astype(np.float64)
    verts, joints = [], []
    for v, j in smpl_forward(smpl, res["rotmat"][rows], res["betas"][rows]):
        joints.append(j)
        verts += [v] if with_verts else []
    joints3d = np.concatenate(joints)
    proj = project_full(joints3d.astype(np.float64), cam_t, focal, size)
    frames = res["frame_id"][rows].astype(np.int64)
    detected = all(int(f) in keypoints for f in frames)
    if detected:
        joints2d = np.stack([keypoints[int(f)] for f in frames])
    else:
        joints2d = np.concatenate([proj, np.ones(proj.shape[:2] + (1,))], axis=2)
    orig_cam = crop_cam_to_orig_weak_cam(torch.as_tensor(res["pred_cam"][rows], dtype=torch.float64),
                                         torch.as_tensor(bbox[:, :2]), torch.as_tensor(bbox[:, 2]),
                                         torch.as_tensor(size[:, 0]), torch.as_tensor(size[:, 1])).numpy()
    out = {"pred_cam": res["pred_cam"][rows], "orig_cam": orig_cam, "pose": res["pose"][rows],
           "betas": res["betas"][rows], "joints3d": joints3d, "joints2d": joints2d, "joints2d_proj": proj,
           "bboxes": np.c_[bbox[:, :2], bbox[:, 2], bbox[:, 2]], "frame_ids": frames, "cam_t_full": cam_t,
           "focal_length": focal, "img_size": res["img_size"][rows], "imgname": res["imgname"][rows],
           "joints2d_source": np.array("detected" if detected else "projected")}
    if with_verts:
        out["verts"] = np.concatenate(verts)
    return out


def frame_stem(imgname: str) -> str:
    """`images/dance/000001.png` -> `000001` (per-frame files are named after the frame image)."""
    return Path(str(imgname)).stem


def camera_key(video: str) -> str:
    """The camera name of a video in EasyMocap's files: OpenCV's key names allow only [A-Za-z0-9_-], so any other
    character of the video's name (spaces, brackets, dots, accents) becomes `_` (the folder keeps the real name)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", video) or "camera"


def _write_camera_yml(folder: Path, video: str, K: np.ndarray) -> None:
    """EasyMocap's `intri.yml` / `extri.yml` (OpenCV FileStorage) for a camera at the world origin."""
    name = camera_key(video)
    entries = {"intri.yml": {f"K_{name}": K, f"dist_{name}": np.zeros((1, 5))},
               "extri.yml": {f"R_{name}": np.zeros((3, 1)), f"Rot_{name}": np.eye(3), f"T_{name}": np.zeros((3, 1))}}
    for file_name, mats in entries.items():
        fs = cv2.FileStorage(str(folder / file_name), cv2.FILE_STORAGE_WRITE)
        fs.writeComment(f"camera {name} of the video {json.dumps(video)}")
        fs.startWriteStruct("names", cv2.FileNode_SEQ)
        fs.write("", name)
        fs.endWriteStruct()
        for key, mat in mats.items():
            fs.write(key, mat)
        fs.release()


def write_easymocap(folder: Path, video: str, people: dict[str, list[dict]], K: np.ndarray) -> None:
    """`smpl/<frame>.json` (a list of persons per frame, 3 decimals as EasyMocap writes) and the camera files."""
    (folder / "smpl").mkdir(parents=True, exist_ok=True)
    for stem, persons in people.items():
        doc = [{key: (np.round(val, 3).tolist() if isinstance(val, np.ndarray) else val) for key, val in p.items()}
               for p in sorted(persons, key=lambda p: p["id"])]
        (folder / "smpl" / f"{stem}.json").write_text(json.dumps(doc))
    _write_camera_yml(folder, video, K)


def instant_nvr_track(folder: Path, smpl: SMPL, res: dict[str, np.ndarray], rows: np.ndarray, betas: np.ndarray,
                      rh: np.ndarray, th: np.ndarray, poses: np.ndarray, frame_dir: Path) -> None:
    """`params/{i}.npy`, `vertices/{i}.npy` (= R(Rh) SMPL(poses, beta) + Th), `annots.npy` and an `images/` link."""
    for sub in ("params", "vertices", "images"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    local = iter_vertices(smpl, with_zero_root(res["rotmat"][rows]), np.tile(betas, (len(rows), 1)))
    rot = res["rotmat"][rows][:, 0].astype(np.float64)
    for j, (row, v) in enumerate(zip(rows, local, strict=True)):
        i = int(frame_stem(res["imgname"][row]))
        np.save(folder / "params" / f"{i}.npy", {"poses": np.r_[np.zeros(3), poses[j]][None], "Rh": rh[j][None],
                                                  "Th": th[j][None], "shapes": betas[None]})
        np.save(folder / "vertices" / f"{i}.npy", (v @ rot[j].T + th[j]).astype(np.float32))
    width, height = (int(v) for v in res["img_size"][rows[0]])
    cams = {"K": [intrinsics(float(res["focal_length"][rows[0]]), width, height)], "R": [np.eye(3)],
            "T": [np.zeros((3, 1))], "D": [np.zeros((1, 5))]}  # T in millimetres
    np.save(folder / "annots.npy", {"cams": cams, "ims": [{"ims": [str(res["imgname"][r])]} for r in rows]})
    link = folder / "images" / frame_dir.name
    if frame_dir.is_dir() and not link.exists():
        link.symlink_to(frame_dir.resolve(), target_is_directory=True)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A Wavefront OBJ of one mesh (vertices [V, 3] metres, faces [F, 3] 0-based)."""
    lines = [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in vertices] + [f"f {a} {b} {c}" for a, b, c in faces + 1]
    path.write_text("\n".join(lines) + "\n")


# --- driver ---------------------------------------------------------------------------------------------------------


def export_video(video: str, tracks: dict[str, np.ndarray], res: dict[str, np.ndarray], smpl: SMPL,
                 internet_root: Path, out: Path, cfg: ExportConfig, renderer: Renderer | None,
                 provenance: dict | None = None) -> None:
    """All exports of one video's tracks into `out`, with `provenance.json` (what made them) next to them."""
    out.mkdir(parents=True, exist_ok=True)
    if provenance is not None:
        (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    frame_dir = internet_root / "images" / video
    kps = {name: read_track_keypoints(internet_root, *split_track(name)) for name in tracks}
    people: dict[str, list[dict]] = {}
    for name, rows in tracks.items():
        k = split_track(name)[1]
        if not kps[name]:
            logger.warning("%s: no track file %s_%d.npz under %s: joints2d of person_%d.npz are the projected joints, "
                           "not the detections", video, video, k, internet_root, k)
        if "vibe" in cfg.formats:
            extra = {"provenance": np.array(json.dumps(provenance))} if provenance is not None else {}
            np.savez(out / f"person_{k}.npz", **vibe_arrays(res, rows, smpl, kps[name], cfg.verts), **extra)
        betas = res["betas"][rows].mean(axis=0)
        rh, th, poses = easymocap_params(res["rotmat"][rows].astype(np.float64), res["cam_t_full"][rows].astype(
            np.float64), rest_pelvis(smpl, betas)[0].astype(np.float64))
        for j, r in enumerate(rows):
            people.setdefault(frame_stem(res["imgname"][r]), []).append(
                {"id": k, "Rh": rh[j][None], "Th": th[j][None], "poses": poses[j][None], "shapes": betas[None]})
        if "instant-nvr" in cfg.formats:
            instant_nvr_track(out / "instant-nvr" / f"person_{k}", smpl, res, rows, betas, rh, th, poses, frame_dir)
        if cfg.obj:
            _write_objs(out / "obj" / f"person_{k}", smpl, res, rows)
    anims = write_animations(out, tracks, res, smpl, frame_dir, cfg, provenance)
    if "easymocap" in cfg.formats:
        first = next(iter(tracks.values()))[0]
        width, height = (int(v) for v in res["img_size"][first])
        write_easymocap(out / "easymocap", video, people, intrinsics(float(res["focal_length"][first]), width, height))
    if cfg.video:
        from datasets.detector import list_frames

        fps = source_fps(frame_dir, cfg.fps)
        rows = np.concatenate(list(tracks.values()))
        count = write_overlay_video(out / "overlay.mp4", list_frames(frame_dir), res, rows, smpl,
                                    kps if cfg.draw_keypoints else {}, fps, renderer)
        logger.info("%s: overlay of %d frames at %.2f fps", out / "overlay.mp4", count, fps)
    if anims and cfg.viewer:
        has_video = (out / "overlay.mp4").is_file()
        write_viewer(out / "view.html", anims, [out / f"{a.name}.glb" for a in anims], video,
                     "overlay.mp4" if has_video else None)


def write_animations(out: Path, tracks: dict[str, np.ndarray], res: dict[str, np.ndarray], smpl: SMPL,
                     frame_dir: Path, cfg: ExportConfig, provenance: dict | None) -> list[TrackAnimation]:
    """`person_<k>.glb` and `person_<k>.bvh` per track (as `cfg.formats` asks); returns the animations written as
    glTF (the page plays them). Times: frame f at f / fps of the source video (`animation.frame_clock`)."""
    if "gltf" not in cfg.formats and "bvh" not in cfg.formats:
        return []
    fps, step = frame_clock(frame_dir, cfg.fps)
    anims = []
    for name, rows in tracks.items():
        k = split_track(name)[1]
        anim = track_animation(smpl, res, rows, f"person_{k}", fps, step)
        if "gltf" in cfg.formats:
            write_glb(out / f"{anim.name}.glb", anim, PALETTE[k % len(PALETTE)], provenance)
            anims.append(anim)
        if "bvh" in cfg.formats:
            write_bvh(out / f"{anim.name}.bvh", anim)
    return anims


def source_fps(frame_dir: Path, default: float) -> float:
    """Frame rate of the images in a frame folder: `meta.json`'s fps / every (vid2img), else `default`."""
    from utils.video import META_NAME, read_meta

    if not (Path(frame_dir) / META_NAME).is_file():
        return default
    meta = read_meta(frame_dir)
    return float(meta.get("fps") or 0.0) / int(meta.get("every", 1)) or default


def _write_objs(folder: Path, smpl: SMPL, res: dict[str, np.ndarray], rows: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for v, r in zip(iter_vertices(smpl, res["rotmat"][rows], res["betas"][rows]), rows, strict=True):
        write_obj(folder / f"{frame_stem(res['imgname'][r])}.obj", v + res["cam_t_full"][r], smpl.faces)


def export_run(run_dir: Path, out: Path | None = None, cfg: ExportConfig | None = None,
               data_root: Path | None = None, internet_root: Path | None = None) -> Path:
    """Export every video of a run; returns the output folder (default `<run_dir>/export`).

    The SMPL model comes from `data_root` (default: the run's `config.json`, else `$DYNABOA_DATA` or `data/`) and
    the frames and track keypoints from `internet_root` (default: that root's, or `$INTERNET_ROOT`).
    """
    run_dir, cfg = Path(run_dir), cfg or ExportConfig()
    res = load_results(run_dir)
    config_file = run_dir / "config.json"
    record = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if data_root is None:
        data_root = record.get("run", {}).get("data_root")
    paths = DataPaths.from_root(data_root)
    provenance = {**record.get("provenance", {"recorded": "the run has no provenance record (an older version)"}),
                  "run": str(run_dir.resolve()), "export_body_model": str(paths.smpl_model_dir / "SMPL_NEUTRAL.pkl")}
    if provenance.get("synthetic_only"):
        logger.warning("%s", provenance.get("note"))
    internet_root = Path(internet_root) if internet_root is not None else paths.internet_root
    smpl = build_smpl(paths, "neutral")
    out = Path(out) if out is not None else run_dir / "export"
    by_video: dict[str, dict[str, np.ndarray]] = {}
    for name, rows in tracks_of(res).items():
        by_video.setdefault(split_track(name)[0], {})[name] = rows
    renderer = None
    if cfg.video:
        from utils.render import Renderer

        renderer = Renderer(64, 64)
    try:
        for video, tracks in sorted(by_video.items()):
            export_video(video, tracks, res, smpl, internet_root, out / video, cfg, renderer, provenance)
    finally:
        if renderer is not None:
            renderer.close()
    logger.info("exported %d video(s) of %s to %s", len(by_video), run_dir, out)
    return out


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, ExportConfig]:
    parser = argparse.ArgumentParser(
        description="Export a run's results (VIBE npz, glTF, BVH, EasyMocap, instant-nvr, video, view.html).")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="<expdir>/<expname> of a dynaboa.py run")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/export)")
    parser.add_argument("--data-root", type=Path, default=None, help="data root with smpl/ (default: the run's)")
    parser.add_argument("--internet-root", type=Path, default=None, help="frames and track npz (default: the run's)")
    add_dataclass_arguments(parser, ExportConfig, "export")
    ns = parser.parse_args(argv)
    return ns, config_from_namespace(ExportConfig, ns)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ns, cfg = parse_args(argv)
    try:
        export_run(ns.run_dir, ns.out, cfg, ns.data_root, ns.internet_root)
    except (FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
