"""Pose and shape priors: SMPLify's 8-Gaussian pose prior (`gmm_08.pkl`) and the betas L2 prior.

The pose prior is SMPLify-X's `MaxMixturePrior.merged_log_likelihood` (docs/method.md §4): for an
axis-angle body pose x (joints 1..23, D = 69 numbers) and components k = 1..K,

    nll(x) = min_k [ 0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k) - log( w_k / ((2 pi)^(D/2) sqrt|Sigma_k| / s_min) ) ],
    s_min  = min_j sqrt|Sigma_j|.

The log term is computed in log space (the 69-D determinants under- or overflow as plain numbers):

    c_k = -log w_k + (D/2) log(2 pi) + 0.5 (log|Sigma_k| - min_j log|Sigma_j|),

so nll(x) = min_k [0.5 q_k(x) + c_k]. Dividing by s_min shifts every component by the same constant and does not
change the arg-min; it keeps the numbers the original used. The file is read without importing the original's
`utils.smplify` package (docs/method.md §11 item 5) and with a clear error for CRLF line endings (a known failure
of the original).
"""
from __future__ import annotations

import io
import logging
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from utils.geometry import rotmat_to_axis_angle
from utils.io import NUMPY_GLOBALS, UnsafePickleError, restricted_load

logger = logging.getLogger(__name__)

GMM_KEYS = ("means", "covars", "weights")
NUM_BODY_JOINTS = 23  # SMPL joints 1..23; the global orientation (joint 0) is excluded
BODY_POSE_DIM = 3 * NUM_BODY_JOINTS  # 69
GMM_HELP = (
    "it is SMPLify's gmm_08.pkl (data/gmm_08.pkl in the DynaBOA repository, or SPIN's fetch_data.sh), "
    "or fit one with datasets.preprocess.gmm_fit.fit_gmm_prior and models.prior.save_gmm_prior"
)
class _ListPickler(pickle.Pickler):
    """Pickles arrays as `numpy.array(nested list, dtype)`: protocol 0 then writes only ASCII text."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return np.array, (obj.tolist(), obj.dtype.str)
        return NotImplemented


def _validate_gmm(means: Any, covars: Any, weights: Any, source: Path | str) -> dict[str, np.ndarray]:
    """Float64 `means [K, D]`, `covars [K, D, D]`, `weights [K]`; ValueError naming what is wrong."""
    means, covars, weights = (np.asarray(a, dtype=np.float64) for a in (means, covars, weights))
    if means.ndim != 2 or covars.shape != means.shape + means.shape[1:] or weights.shape != means.shape[:1]:
        raise ValueError(
            f"{source}: expected means [K, D], covars [K, D, D], weights [K]; found {means.shape}, "
            f"{covars.shape}, {weights.shape}"
        )
    if not np.all(weights > 0):
        raise ValueError(f"{source}: mixture weights must be positive, found {weights}")
    return {"means": means, "covars": covars, "weights": weights}


def load_gmm_prior(path: Path) -> dict[str, np.ndarray]:
    """Read a GMM prior pickle (`gmm_08.pkl`: latin1, protocol 0 in the original).

    Returns:
        `means [K, D]`, `covars [K, D, D]`, `weights [K]`, float64.
    Raises:
        FileNotFoundError: no such file.
        ValueError: CRLF line endings, not a GMM pickle, or wrong keys / shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GMM pose prior {path} not found: {GMM_HELP}.")
    raw = path.read_bytes()
    text_protocol = not raw.startswith(b"\x80")  # protocols 0 and 1 have no PROTO header
    if text_protocol and b"\r\n" in raw:
        raise ValueError(
            f"{path} has CRLF (Windows) line endings, which corrupt this text pickle (a known failure of the "
            "original release's file). "
            "Restore LF line endings: download the file again, or check it out with `git config core.autocrlf "
            "false` (or mark `*.pkl binary` in .gitattributes)."
        )
    try:  # numpy arrays only (the list form save_gmm_prior writes names numpy.array): anything else is refused
        obj = restricted_load(raw, "GMM pose prior", NUMPY_GLOBALS, name=str(path))
    except UnsafePickleError:
        raise
    except ValueError as err:
        raise ValueError(f"{err}; {GMM_HELP}") from err
    if not isinstance(obj, dict) or any(key not in obj for key in GMM_KEYS):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: expected a dict with keys {list(GMM_KEYS)}, found {found}")
    return _validate_gmm(obj["means"], obj["covars"], obj["weights"], path)


def save_gmm_prior(path: Path, means: np.ndarray, covars: np.ndarray, weights: np.ndarray) -> None:
    """Write a GMM prior as the original's format: a latin1-readable protocol-0 pickle of float64 arrays.

    The arrays are stored as `numpy.array(list, '<f8')` so the file is pure ASCII with LF line endings, exact
    (floats are written with `repr`) and readable by any numpy and by the original loader.

    Args:
        path: output file.
        means: [K, D].
        covars: [K, D, D].
        weights: [K].
    """
    gmm = _validate_gmm(means, covars, weights, path)
    buffer = io.BytesIO()
    _ListPickler(buffer, protocol=0).dump(gmm)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


class MaxMixturePrior(nn.Module):
    """Negative log-likelihood of the closest Gaussian of a mixture (SMPLify-X's "merged" form, module docstring).

    Inverse covariances and the constants c_k are computed once in float64 and kept as float64 buffers; the
    forward pass casts them to the input's dtype.

    Args:
        means: [K, D].
        covars: [K, D, D] symmetric positive definite.
        weights: [K] positive mixture weights.
    """

    def __init__(self, means: np.ndarray, covars: np.ndarray, weights: np.ndarray):
        super().__init__()
        gmm = _validate_gmm(means, covars, weights, "MaxMixturePrior")
        sign, logdet = np.linalg.slogdet(gmm["covars"])  # [K]
        if not np.all(sign > 0):
            raise ValueError("MaxMixturePrior: every covariance must be positive definite")
        dim = gmm["means"].shape[1]
        nll_const = -np.log(gmm["weights"]) + 0.5 * dim * math.log(2 * math.pi) + 0.5 * (logdet - logdet.min())
        self.register_buffer("means", torch.from_numpy(gmm["means"]))
        self.register_buffer("precisions", torch.from_numpy(np.linalg.inv(gmm["covars"])))
        self.register_buffer("nll_const", torch.from_numpy(nll_const))

    @classmethod
    def from_file(cls, path: Path) -> MaxMixturePrior:
        """The prior of a `gmm_08.pkl`-format file (see `load_gmm_prior`)."""
        return cls(**load_gmm_prior(path))

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        """Args: pose [B, D] axis-angle (radians). Returns: [B] negative log-likelihood of the closest component."""
        assert pose.dim() == 2 and pose.shape[1] == self.means.shape[1], (pose.shape, self.means.shape)
        means = self.means.to(pose.dtype)
        precisions = self.precisions.to(pose.dtype)
        diff = pose[:, None, :] - means[None]  # [B, K, D]
        quadratic = torch.einsum("bki,kij,bkj->bk", diff, precisions, diff)  # [B, K]
        return (0.5 * quadratic + self.nll_const.to(pose.dtype)).min(dim=1).values


def pose_prior_loss(prior: MaxMixturePrior, pred_rotmat: torch.Tensor) -> torch.Tensor:
    """GMM prior on the body pose, averaged over the batch (docs/method.md §4, `cal_pose_prior`).

    Args:
        prior: a 69-D `MaxMixturePrior`.
        pred_rotmat: [B, 24, 3, 3] SMPL rotations; joint 0 (global orientation) is ignored.
    Returns:
        Scalar. Axis-angle entries that come out NaN count as 0, as the original.
    """
    assert pred_rotmat.dim() == 4 and pred_rotmat.shape[1:] == (NUM_BODY_JOINTS + 1, 3, 3), pred_rotmat.shape
    batch = pred_rotmat.shape[0]
    body = rotmat_to_axis_angle(pred_rotmat[:, 1:].reshape(-1, 3, 3)).reshape(batch, BODY_POSE_DIM)
    body = torch.where(torch.isnan(body), torch.zeros_like(body), body)
    return prior(body).mean()


def shape_prior_loss(betas: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the sum of squared betas. Args: betas [B, 10]. Returns: scalar."""
    assert betas.dim() == 2, betas.shape
    return (betas * betas).sum(dim=1).mean()
