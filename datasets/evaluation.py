"""The 3DPW evaluation protocol of docs/method.md §9, per frame.

MPJPE and PA-MPJPE compare 14 LSP joints regressed with `J_regressor_h36m` from the predicted (neutral) mesh and the
ground-truth mesh of the person's gender; PVE compares the predicted mesh with a NEUTRAL ground-truth mesh of the same
pose and shape (DynaBOA's convention, kept so that numbers compare with its 82.0 mm; BOA used the gendered mesh).
All meshes sit at the SMPL origin without translation. Results are in millimetres.
"""
from __future__ import annotations

import numpy as np
import torch

from config import DataPaths
from models.smpl import build_smpl, load_j_regressor
from utils.metrics import evaluate_batch


class Evaluator:
    """Ground-truth bodies and per-frame metrics.

    Args:
        paths: data paths (SMPL models of the three genders and `J_regressor_h36m.npy`).
        device: where the SMPL forward passes run.
    """

    def __init__(self, paths: DataPaths, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.smpl = {g: build_smpl(paths, g).to(self.device) for g in ("neutral", "male", "female")}
        self.j_regressor = load_j_regressor(paths.j_regressor_h36m).to(self.device)

    def gt_vertices(self, pose: np.ndarray, betas: np.ndarray, gender: str) -> torch.Tensor:
        """[1, 6890, 3] mesh of `gender` ('m', 'f' or 'neutral'; anything but 'm' counts as female, as the original)."""
        model = self.smpl["neutral" if gender == "neutral" else "male" if gender == "m" else "female"]
        pose_t = torch.as_tensor(pose, dtype=torch.float32, device=self.device).view(1, 72)
        betas_t = torch.as_tensor(betas, dtype=torch.float32, device=self.device).view(1, -1)[:, :10]
        with torch.no_grad():
            return model(betas=betas_t, body_pose=pose_t[:, 3:], global_orient=pose_t[:, :3], pose2rot=True).vertices

    def __call__(self, pred_vertices: torch.Tensor, gt: dict) -> dict[str, float]:
        """Metrics of one frame: `mpjpe`, `pa_mpjpe`, `pve` in mm.

        Args:
            pred_vertices: [1, 6890, 3] neutral prediction.
            gt: `pose` [72] (camera-frame root), `betas` [10], `gender`.
        """
        gendered = self.gt_vertices(gt["pose"], gt["betas"], gt["gender"])
        neutral = self.gt_vertices(gt["pose"], gt["betas"], "neutral")
        res = evaluate_batch(pred_vertices.to(self.device), gendered, neutral, self.j_regressor)
        return {k: float(v[0]) for k, v in res.items()}
