"""Tests of models/prior.py: the merged GMM likelihood by hand, the gmm_08.pkl format, EM, the loss wrappers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.preprocess.gmm_fit import fit_gmm_prior
from models.prior import (
    MaxMixturePrior,
    load_gmm_prior,
    pose_prior_loss,
    save_gmm_prior,
    shape_prior_loss,
)

LOG_2PI = math.log(2 * math.pi)


def _random_gmm(k: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, dim, dim)) * 0.1
    covars = a @ a.transpose(0, 2, 1) + 0.05 * np.eye(dim)
    weights = rng.uniform(0.5, 1.5, size=k)
    return {"means": rng.normal(size=(k, dim)) * 0.3, "covars": covars, "weights": weights / weights.sum()}


def _py2_bytes(data: bytes) -> str:
    """A byte string as Python 2's repr writes it inside S'...' (the escapes of the released file)."""
    named = {ord("\\"): "\\\\", ord("'"): "\\'", ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}
    return "".join(named.get(b, chr(b) if 32 <= b < 127 else f"\\x{b:02x}") for b in data)


def _py2_array(a: np.ndarray) -> str:
    """A float64 array in the protocol-0 text that numpy 1 under Python 2 wrote (the layout of gmm_08.pkl)."""
    dims = "".join(f"I{d}\n" for d in a.shape)
    data = _py2_bytes(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return (
        "cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I0\ntS'b'\ntR"
        f"(I1\n({dims}tcnumpy\ndtype\n(S'f8'\nI0\nI1\ntR(I3\nS'<'\nNNNI-1\nI-1\nI0\ntbI00\nS'{data}'\ntb"
    )


def test_one_component_value_by_hand() -> None:
    # mu = (1, 2), Sigma = diag(4, 1), w = 1, x = (3, 2): diff = (2, 0), quadratic = 2^2 / 4 = 1.
    # c = -log 1 + (2/2) log(2 pi) + 0.5 (log 4 - log 4) = log(2 pi) = 1.837877, so nll = 0.5 * 1 + 1.837877.
    prior = MaxMixturePrior(np.array([[1.0, 2.0]]), np.diag([4.0, 1.0])[None], np.array([1.0]))
    value = prior(torch.tensor([[3.0, 2.0]], dtype=torch.float64))
    assert value.shape == (1,)
    assert value.item() == pytest.approx(0.5 + LOG_2PI, abs=1e-12)
    assert value.item() == pytest.approx(2.337877, abs=1e-6)


def test_min_picks_the_nearer_component() -> None:
    # components at (0, 0) with Sigma = I and at (10, 0) with Sigma = 4 I, weights 0.5 each; x = (9, 0).
    # comp 0: 0.5 * 81 + log 2 + log(2 pi) = 43.03; comp 1: sqrt|4I| / min sqrt|.| = 4 / 1, quadratic 1/4, so
    # 0.5 * 0.25 - log(0.5 / (2 pi * 4)) = 0.125 + log 2 + log(2 pi) + log 4 = 4.0491 -> the nearer one wins.
    prior = MaxMixturePrior(
        np.array([[0.0, 0.0], [10.0, 0.0]]), np.stack([np.eye(2), 4 * np.eye(2)]), np.array([0.5, 0.5])
    )
    values = prior(torch.tensor([[9.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    assert values[0].item() == pytest.approx(0.125 + math.log(2) + LOG_2PI + math.log(4), abs=1e-12)
    assert values[1].item() == pytest.approx(math.log(2) + LOG_2PI, abs=1e-12)  # at the first mean


def test_matches_the_original_formula_in_69d() -> None:
    gmm = _random_gmm(8, 69, seed=0)
    prior = MaxMixturePrior(**gmm)
    x = np.random.default_rng(1).normal(size=(3, 69)) * 0.3
    # the original's constants, as plain numbers (fine in float64 for these covariances)
    sqrdets = np.sqrt(np.linalg.det(gmm["covars"]))
    nll_weights = gmm["weights"] / ((2 * np.pi) ** 34.5 * (sqrdets / sqrdets.min()))
    diff = x[:, None] - gmm["means"][None]
    quad = np.einsum("bki,kij,bkj->bk", diff, np.linalg.inv(gmm["covars"]), diff)
    expected = (0.5 * quad - np.log(nll_weights)).min(1)
    assert np.allclose(prior(torch.from_numpy(x)).numpy(), expected, rtol=1e-10)
    as_float32 = prior(torch.from_numpy(x).float())
    assert as_float32.dtype == torch.float32
    assert np.allclose(as_float32.numpy(), expected, rtol=1e-4)


def test_file_round_trip_is_exact_ascii_with_lf(tmp_path: Path) -> None:
    gmm = _random_gmm(3, 5, seed=2)
    path = tmp_path / "gmm.pkl"
    save_gmm_prior(path, **gmm)
    raw = path.read_bytes()
    raw.decode("ascii")  # raises on any non-ASCII byte
    assert raw.startswith(b"(dp0\n")  # protocol 0: no PROTO header
    assert b"\r" not in raw and raw.count(b"\n") > 100
    loaded = load_gmm_prior(path)
    for key, value in gmm.items():
        assert loaded[key].dtype == np.float64
        assert np.array_equal(loaded[key], value)  # bit-exact: floats are written with repr


def test_reads_the_python2_layout_of_the_release(tmp_path: Path) -> None:
    gmm = _random_gmm(2, 4, seed=3)
    text = "(dp0\n" + "".join(f"S'{key}'\n{_py2_array(gmm[key])}s" for key in ("covars", "weights", "means")) + "."
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(text.encode("ascii"))
    loaded = load_gmm_prior(path)
    assert all(np.array_equal(loaded[key], gmm[key]) for key in gmm)
    assert torch.equal(MaxMixturePrior.from_file(path).means, torch.from_numpy(gmm["means"]))


def test_crlf_file_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gmm_08.pkl"
    save_gmm_prior(path, **_random_gmm(2, 3, seed=4))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(ValueError, match="CRLF.*Restore LF line endings"):
        load_gmm_prior(path)


def test_bad_files_fail_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gmm_08.pkl"):
        load_gmm_prior(tmp_path / "absent.pkl")
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(ValueError, match="refused to read this GMM pose prior: it names os.system"):
        load_gmm_prior(tmp_path / "evil.pkl")
    (tmp_path / "nokeys.pkl").write_bytes(b"(dp0\nS'means'\np1\nI1\ns.")
    with pytest.raises(ValueError, match="expected a dict with keys"):
        load_gmm_prior(tmp_path / "nokeys.pkl")
    with pytest.raises(ValueError, match="expected means \\[K, D\\]"):
        save_gmm_prior(tmp_path / "bad.pkl", np.zeros((2, 3)), np.zeros((2, 3, 4)), np.ones(2))


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_pose_prior_loss(batch: int) -> None:
    prior = MaxMixturePrior(**_random_gmm(4, 69, seed=6))
    rotmat = torch.eye(3).expand(batch, 24, 3, 3).clone()
    rotmat[:, 0] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # global orient ignored
    at_zero = prior(torch.zeros(1, 69)).item()
    assert pose_prior_loss(prior, rotmat).item() == pytest.approx(at_zero, rel=1e-6)
    # a 90-degree turn about z of joint 1 is axis-angle (0, 0, pi/2) in the first three entries
    rotmat[-1, 1] = rotmat[0, 0]
    bent = torch.zeros(1, 69)
    bent[0, 2] = math.pi / 2
    expected = ((batch - 1) * at_zero + prior(bent).item()) / batch
    assert pose_prior_loss(prior, rotmat).item() == pytest.approx(expected, rel=1e-5)


def test_pose_prior_loss_maps_nan_to_zero() -> None:
    prior = MaxMixturePrior(**_random_gmm(2, 69, seed=7))
    rotmat = torch.eye(3).expand(1, 24, 3, 3).clone()
    rotmat[0, 5] = float("nan")
    assert pose_prior_loss(prior, rotmat).item() == pytest.approx(prior(torch.zeros(1, 69)).item(), rel=1e-6)


def test_shape_prior_loss() -> None:
    betas = torch.tensor([[1.0, 2.0] + [0.0] * 8, [0.0, 0.0, 3.0] + [0.0] * 7])
    assert shape_prior_loss(betas).item() == pytest.approx((1 + 4 + 9) / 2)  # (5 + 9) / 2 = 7


def test_em_recovers_two_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(600, 2)) * [0.5, 0.2] + [-5.0, 1.0]
    b = rng.normal(size=(1400, 2)) * 1.0 + [5.0, -2.0]
    fit = fit_gmm_prior(np.concatenate([a, b]), n_components=2, seed=0)
    order = np.argsort(fit["means"][:, 0])  # component near x = -5 first
    means, covars, weights = fit["means"][order], fit["covars"][order], fit["weights"][order]
    assert np.allclose(weights, [0.3, 0.7], atol=0.01)
    assert np.allclose(means, [[-5.0, 1.0], [5.0, -2.0]], atol=0.1)
    assert np.allclose(np.diagonal(covars, axis1=1, axis2=2), [[0.25, 0.04], [1.0, 1.0]], rtol=0.15)
    assert abs(covars[1, 0, 1]) < 0.1
