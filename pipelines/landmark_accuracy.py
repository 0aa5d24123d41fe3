"""How good the detector's 3D pose is as a teacher, and the runs against it, on the MediaPipe 2D protocol's frames.

    python -m pipelines.landmark_accuracy --data-root data/synthetic [--runs exps/x/run_a exps/x/run_b] [--max-frames N]

On the person-frames where the detector found the track's person (`dataset_extras_mediapipe/`), over the
12 body joints (hips, knees, ankles, shoulders, elbows, wrists), ground truth through the evaluation's H36M regressor
(gendered SMPL, as `datasets.evaluation`): PA-MPJPE (similarity-aligned) and MPJPE after aligning the hip centres, in
mm, of MediaPipe's world landmarks and of each run's predictions (neutral SMPL of its `results.npz`), on the same
frames and joints; also per 300-frame window of the stream (windows with no matched frame are left out).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from config import DataPaths
from datasets.mediapipe_protocol import side_dir
from datasets.pw3d import list_track_files
from models.smpl import build_smpl, load_j_regressor
from models.teacher3d import MP_BODY, facing_angle
from utils.metrics import mpjpe, pa_mpjpe

H36M_BODY = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13)  # H36M-17 rows in the GT-block order of teacher3d.MP_BODY
HIPS = (2, 3)


def stream_labels(paths: DataPaths) -> dict[str, np.ndarray]:
    """Per person-frame of the stream (track order): pose, betas, gender, matched, MediaPipe's 12 body joints."""
    cols: dict[str, list] = {k: [] for k in ("pose", "shape", "gender", "matched", "mp")}
    for path in list_track_files(paths.dataset_extras):
        with np.load(path) as data, np.load(side_dir(paths.dataset_extras) / path.name) as side:
            cols["pose"].append(data["pose"])
            cols["shape"].append(data["shape"][:, :10])
            cols["gender"].append(np.broadcast_to(data["gender"], (len(data["pose"]),)))
            cols["matched"].append(side["matched"])
            cols["mp"].append(side["mp_world"][:, list(MP_BODY), :3])
    return {k: np.concatenate(v) for k, v in cols.items()}


def body_joints(smpl, regressor: torch.Tensor, pose: np.ndarray, betas: np.ndarray, batch: int = 256) -> np.ndarray:
    """[N, 12, 3] metres: the H36M regressor's body joints of SMPL meshes (axis-angle pose [N, 72])."""
    out = []
    for i in range(0, len(pose), batch):
        p = torch.as_tensor(pose[i:i + batch], dtype=torch.float32)
        b = torch.as_tensor(betas[i:i + batch], dtype=torch.float32)
        with torch.no_grad():
            verts = smpl(betas=b, body_pose=p[:, 3:], global_orient=p[:, :3], pose2rot=True).vertices
        out.append(torch.einsum("jv,bvc->bjc", regressor, verts)[:, list(H36M_BODY)].numpy())
    return np.concatenate(out) if out else np.zeros((0, 12, 3))


def gt_body_joints(paths: DataPaths, labels: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    regressor = load_j_regressor(paths.j_regressor_h36m)
    out = np.zeros((len(rows), 12, 3))
    for gender, name in (("m", "male"), ("f", "female")):
        pick = (labels["gender"][rows] == "m") if gender == "m" else (labels["gender"][rows] != "m")
        if pick.any():
            out[pick] = body_joints(build_smpl(paths, name), regressor, labels["pose"][rows[pick]],
                                    labels["shape"][rows[pick]])
    return out


def errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame, mm: `pa_mpjpe` and `mpjpe` after aligning the hip centres."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    hip = lambda x: x - x[:, list(HIPS)].mean(1, keepdims=True)  # noqa: E731
    return {"pa_mpjpe": 1000 * np.asarray(pa_mpjpe(pred, gt)), "mpjpe": 1000 * np.asarray(mpjpe(hip(pred), hip(gt)))}


def summary(err: dict[str, np.ndarray], rows: np.ndarray, window: int = 300) -> dict:
    windows = {}
    for start in range(0, int(rows.max()) + 1 if len(rows) else 0, window):
        pick = (rows >= start) & (rows < start + window)
        if pick.any():
            windows[start] = round(float(err["pa_mpjpe"][pick].mean()), 1)
    return {"frames": int(len(rows)), "pa_mpjpe": round(float(err["pa_mpjpe"].mean()), 1),
            "mpjpe": round(float(err["mpjpe"].mean()), 1), "pa_mpjpe_windows": windows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders (results.npz) to compare")
    parser.add_argument("--max-frames", type=int, default=0, help="the stream's first N person-frames (0 = all)")
    parser.add_argument("--json", type=Path, default=None)
    ns = parser.parse_args(argv)
    paths = DataPaths.from_root(ns.data_root)
    labels = stream_labels(paths)
    end = len(labels["pose"]) if ns.max_frames <= 0 else min(ns.max_frames, len(labels["pose"]))
    rows = np.flatnonzero(labels["matched"][:end])
    gt = gt_body_joints(paths, labels, rows)
    report = {"stream_frames": int(end), "matched": int(len(rows)),
              "mediapipe": summary(errors(labels["mp"][rows], gt), rows)}
    # the landmarks' torso direction against the ground truth's, both in the camera frame (the gate's assumption)
    facing = facing_angle(torch.as_tensor(labels["mp"][rows]).float(), torch.as_tensor(gt).float()).numpy()
    report["mediapipe"].update({"facing_deg_median": round(float(np.median(facing)), 1),
                                "facing_over_90_deg_pct": round(float(100 * (facing > 90).mean()), 1)})
    neutral, regressor = build_smpl(paths, "neutral"), load_j_regressor(paths.j_regressor_h36m)
    for run in ns.runs:
        with np.load(run / "results.npz") as res:
            index = {int(i): k for k, i in enumerate(res["index"])}
            have = np.array([r for r in rows if r in index], dtype=np.int64)
            picks = [index[r] for r in have]
            pred = body_joints(neutral, regressor, res["pose"][picks], res["betas"][picks])
        sub = np.searchsorted(rows, have)
        report[run.name] = summary(errors(pred, gt[sub]), have)
        report[run.name]["mediapipe_same_frames"] = summary(errors(labels["mp"][have], gt[sub]), have)["pa_mpjpe"]
    print(json.dumps(report, indent=1))
    if ns.json:
        ns.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
