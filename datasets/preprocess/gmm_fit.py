"""Fitting a pose prior in the original's format: a full-covariance Gaussian mixture by EM (k-means++ seeding, then
hard assignment, then EM), for `gmm_08.pkl` when the licensed file is absent (`python train_basemodel.py
--make-priors`, datasets/preprocess/priors.py). The prior itself (reading and the loss) is models/prior.py."""
from __future__ import annotations

import logging
import math

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from utils.clustering import kmeans_plus_plus

logger = logging.getLogger(__name__)


def fit_gmm_prior(
    poses_aa: np.ndarray,
    n_components: int = 8,
    seed: int = 0,
    max_iter: int = 200,
    tol: float = 1e-6,
    reg_covar: float = 1e-6,
) -> dict[str, np.ndarray]:
    """Fit a full-covariance Gaussian mixture by EM, initialised by k-means++ seeding and hard assignment.

    Args:
        poses_aa: [N, D] samples (e.g. D = 69 axis-angle body poses), N >= n_components.
        n_components: K.
        seed: seeds the k-means++ initialisation (the only randomness).
        max_iter: most EM iterations.
        tol: stop when the mean log-likelihood improves by less than this.
        reg_covar: added to every covariance diagonal (keeps them positive definite).
    Returns:
        `means [K, D]`, `covars [K, D, D]`, `weights [K]`, float64 (the `save_gmm_prior` inputs).
    """
    x = np.asarray(poses_aa, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < n_components:
        raise ValueError(f"fitting a {n_components}-component prior needs at least {n_components} poses as an [N, D] "
                         f"array, got shape {x.shape}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    centres = kmeans_plus_plus(x, n_components, np.random.default_rng(seed),
                               lambda points, centre: _squared_distances(points, centre[None])[:, 0])
    nearest = _squared_distances(x, centres).argmin(1)
    weights, means, covars = _m_step(x, np.eye(n_components)[nearest], reg_covar)
    previous = -np.inf
    for iteration in range(max_iter):
        log_joint = _log_gaussians(x, means, covars) + np.log(weights)  # [N, K]
        log_norm = logsumexp(log_joint, axis=1)  # [N]
        weights, means, covars = _m_step(x, np.exp(log_joint - log_norm[:, None]), reg_covar)
        mean_ll = float(log_norm.mean())
        if mean_ll - previous < tol:
            break
        previous = mean_ll
    logger.info("GMM fit: K=%d, %d iterations, mean log-likelihood %.4f", n_components, iteration + 1, mean_ll)
    return {"means": means, "covars": covars, "weights": weights}


def _squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """||x_n - c_k||^2 for x [N, D], centres [K, D]. [N, K], clipped at 0 against rounding."""
    sq = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None]
    return np.maximum(sq, 0.0)


def _m_step(x: np.ndarray, resp: np.ndarray, reg_covar: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights [K], means [K, D], covariances [K, D, D] from responsibilities resp [N, K]."""
    counts = resp.sum(0) + 10 * np.finfo(np.float64).eps  # [K]
    means = resp.T @ x / counts[:, None]
    covars = np.empty((len(means), x.shape[1], x.shape[1]))
    for k, mean in enumerate(means):  # one component at a time: memory O(N D), not O(N K D)
        diff = x - mean  # [N, D]
        covars[k] = (resp[:, k, None] * diff).T @ diff / counts[k] + reg_covar * np.eye(x.shape[1])
    return counts / counts.sum(), means, covars


def _log_gaussians(x: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, Sigma_k) for every sample and component, via Cholesky factors. [N, K]."""
    n, dim = x.shape
    out = np.empty((n, len(means)))
    for k, (mean, cov) in enumerate(zip(means, covars, strict=True)):
        chol = np.linalg.cholesky(cov)
        z = solve_triangular(chol, (x - mean).T, lower=True)  # [D, N]
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        out[:, k] = -0.5 * (dim * math.log(2 * math.pi) + logdet + (z * z).sum(0))
    return out
