"""Checks of a run on real footage that need no ground truth: the mesh against the embedded detector.

    python -m pipelines.real_checks exps/clips/lunge_p3 [--internet-root exps/clips/lunge_p3/input] [--json out.json]

Per frame with a detection of the track's person (the run's `results.npz` against its track files):

- **torso direction**: degrees between the mesh's torso normal (predicted joints, camera frame) and the detector's
  world landmarks' (`models.teacher3d.facing_angle`); a front/back flip of either is about 180;
- **2D agreement**: median distance between the mesh's projected body joints (12: hips, knees, ankles, shoulders,
  elbows, wrists; crop camera) and the detector's 2D keypoints, joints confident in the detection, in percent of
  the crop box side;
- **size**: the mesh's summed body-bone lengths (shins, thighs, hip and shoulder widths, torso sides, upper arms,
  forearms) over the landmarks' (MediaPipe's metric estimate of the person): 1 = the same size.

The data root (SMPL) is `--data-root`, else `$DYNABOA_DATA` or `data/`, as the run used.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from config import DataPaths
from datasets.internet import WORLD_KEY
from datasets.results import load_results, split_track
from models.smpl import build_smpl
from models.teacher3d import NUM_BODY, body_landmarks, facing_angle
from utils.constants import GT_SLICE
from utils.geometry import project_to_crop

# bones of the 12 body joints (GT-block order): shins, thighs, hip width, torso sides, shoulder width, arms
BONES = ((0, 1), (5, 4), (1, 2), (4, 3), (2, 3), (2, 8), (3, 9), (8, 9), (8, 7), (9, 10), (7, 6), (10, 11))


def bone_sum(joints12: np.ndarray) -> np.ndarray:
    """[N, 12, 3] -> [N] summed lengths of `BONES`."""
    a, b = zip(*BONES)
    return np.linalg.norm(joints12[:, list(a)] - joints12[:, list(b)], axis=-1).sum(-1)


def predicted_joints(results: dict[str, np.ndarray], paths: DataPaths) -> tuple[np.ndarray, torch.Tensor]:
    """The mesh's body joints [N, 12, 3] (numpy) and all 49 joints [N, 49, 3] (model frame, no translation)."""
    smpl = build_smpl(paths, "neutral")
    rotmat = torch.from_numpy(results["rotmat"]).float()
    with torch.no_grad():
        out = smpl(betas=torch.from_numpy(results["betas"]).float(), body_pose=rotmat[:, 1:],
                   global_orient=rotmat[:, :1], pose2rot=False)
    joints = out.joints[:, GT_SLICE][:, :NUM_BODY]
    return joints.numpy(), out.joints


def track_detections(internet_root: Path, track: str) -> tuple[dict[int, int], np.ndarray, np.ndarray | None]:
    """(frame id -> row, part [N, 49, 3] pixels, world [N, 33, 4] or None) of a track file."""
    video, k = split_track(track)
    with np.load(Path(internet_root) / f"{video}_{k}.npz") as data:
        frames = data["frame_ids"] if "frame_ids" in data else np.arange(len(data["imgname"]))
        world = data[WORLD_KEY] if WORLD_KEY in data else None
        return {int(f): i for i, f in enumerate(frames)}, data["part"], world


def frame_checks(results: dict[str, np.ndarray], internet_root: Path, paths: DataPaths) -> dict[str, np.ndarray]:
    """Per result row: `torso_deg`, `kp2d_pct`, `size_ratio` (NaN where the detection or its landmarks lack)."""
    joints12, joints49 = predicted_joints(results, paths)
    with torch.no_grad():
        crop = project_to_crop(joints49, torch.from_numpy(results["pred_cam"]).float()).numpy()
    n = len(results["rotmat"])
    out = {key: np.full(n, np.nan) for key in ("torso_deg", "kp2d_pct", "size_ratio")}
    cache: dict[str, tuple] = {}
    for i in range(n):
        track = str(results["track"][i])
        if track not in cache:
            cache[track] = track_detections(internet_root, track)
        rows, part, world = cache[track]
        row = rows.get(int(results["frame_id"][i]))
        if row is None:
            continue
        cx, cy, side = results["bbox"][i]
        pixels = np.array([cx, cy]) + crop[i, GT_SLICE][:NUM_BODY] * side / 2.0
        det = part[row, GT_SLICE][:NUM_BODY]
        conf = det[:, 2] > 0
        if conf.sum() >= 3:
            out["kp2d_pct"][i] = 100.0 * np.median(np.linalg.norm(pixels[conf] - det[conf, :2], axis=-1)) / side
        if world is None or not np.isfinite(world[row]).all():
            continue
        lm, lconf = body_landmarks(torch.from_numpy(world[row][None]).float())
        if bool((lconf[0, [2, 3, 8, 9]] > 0.3).all()):
            out["torso_deg"][i] = float(facing_angle(torch.from_numpy(joints12[i:i + 1]).float(), lm)[0])
            out["size_ratio"][i] = float(bone_sum(joints12[i:i + 1])[0] / bone_sum(lm.numpy())[0])
    return out


def summarize_checks(checks: dict[str, np.ndarray], max_deg: float = 20.0) -> dict[str, float]:
    """Medians, the share of frames with the torso within `max_deg`, and the counts."""
    deg = checks["torso_deg"][np.isfinite(checks["torso_deg"])]
    kp = checks["kp2d_pct"][np.isfinite(checks["kp2d_pct"])]
    size = checks["size_ratio"][np.isfinite(checks["size_ratio"])]
    return {"frames": int(len(checks["torso_deg"])), "frames_with_landmarks": int(len(deg)),
            "torso_deg_median": float(np.median(deg)) if len(deg) else float("nan"),
            f"torso_within_{max_deg:g}_deg": float((deg <= max_deg).mean()) if len(deg) else float("nan"),
            "kp2d_pct_median": float(np.median(kp)) if len(kp) else float("nan"),
            "size_ratio_median": float(np.median(size)) if len(size) else float("nan")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--internet-root", type=Path, default=None, help="track files (default: RUN_DIR/input)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    ns = parser.parse_args(argv)
    results = load_results(ns.run_dir)
    checks = frame_checks(results, ns.internet_root or ns.run_dir / "input", DataPaths.from_root(ns.data_root))
    summary = summarize_checks(checks)
    print(json.dumps(summary, indent=1))
    if ns.json:
        ns.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
