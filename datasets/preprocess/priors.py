"""The source-domain priors a data root needs: `smpl_mean_params.npz` (the network's starting point) and `gmm_08.pkl`
(the pose prior), from the training poses of `h36m_train.npz` (`python train_basemodel.py --make-priors`)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from config import DataPaths
from datasets.h36m import load_h36m_annotations
from datasets.preprocess.gmm_fit import fit_gmm_prior
from models.hmr import save_mean_params
from models.prior import save_gmm_prior
from utils.geometry import batch_rodrigues, rotmat_to_rot6d

logger = logging.getLogger(__name__)
PRIOR_COMPONENTS = 8  # gmm_08.pkl


def mean_rotations(rotmats: np.ndarray) -> np.ndarray:
    """Per-joint mean on SO(3): the arithmetic mean of the matrices projected to the nearest rotation.

    Args:
        rotmats: [N, J, 3, 3].
    Returns:
        [J, 3, 3] rotations (det +1): U diag(1, 1, det(U V^T)) V^T for the SVD U S V^T of the mean.
    """
    assert rotmats.ndim == 4 and rotmats.shape[2:] == (3, 3), rotmats.shape
    u, _, vt = np.linalg.svd(rotmats.mean(axis=0))
    fix = np.ones((rotmats.shape[1], 3))
    fix[:, 2] = np.sign(np.linalg.det(u @ vt))
    return (u * fix[:, None, :]) @ vt


def make_priors(data_root: Path | None, out: Path | None, max_samples: int = 20000, seed: int = 0) -> list[Path]:
    """Write `smpl_mean_params.npz` (mean pose in 6-D, mean betas, cam [0.9, 0, 0]) and `gmm_08.pkl` (8-component
    GMM of the 69-D body poses) from the frames of `h36m_train.npz` that have SMPL. Deterministic given `seed`."""
    paths = DataPaths.from_root(data_root)
    data = load_h36m_annotations(paths.dataset_extras / "h36m_train.npz")
    keep = data["has_smpl"] > 0.5
    pose, shape = data["pose"][keep], data["shape"][keep]
    if len(pose) < PRIOR_COMPONENTS:
        raise ValueError(f"{int(keep.sum())} frames with SMPL; the priors need at least {PRIOR_COMPONENTS}")
    rotmats = batch_rodrigues(torch.from_numpy(pose).reshape(-1, 3)).view(-1, 24, 3, 3).numpy()
    mean_pose = rotmat_to_rot6d(torch.from_numpy(mean_rotations(rotmats))).reshape(-1).numpy()
    out = Path(out) if out is not None else paths.root
    mean_file, gmm_file = out / "smpl_mean_params.npz", out / "gmm_08.pkl"
    save_mean_params(mean_file, mean_pose, shape.mean(axis=0), np.array([0.9, 0.0, 0.0]))
    body = pose[:, 3:]
    if 0 < max_samples < len(body):
        body = body[np.sort(np.random.default_rng(seed).choice(len(body), max_samples, replace=False))]
    save_gmm_prior(gmm_file, **fit_gmm_prior(body, PRIOR_COMPONENTS, seed=seed))
    logger.info("wrote %s and %s from %d poses", mean_file, gmm_file, len(pose))
    return [mean_file, gmm_file]
