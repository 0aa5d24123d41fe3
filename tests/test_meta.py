"""Invariants of the bilevel primitive (ported from learn2learn's MAML tests), used as the adaptor uses it: the
model's own parameter dict, `inner_step`, and `torch.func.functional_call` with the probed weights."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from models.meta import NonFiniteGradientError, inner_step


def _call(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return functional_call(model, params, (x,))


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())  # the tensors themselves, as the adaptor's `self.params`


def _mlp(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2)).to(dtype).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 2),
    ).eval()


def _data(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    x_in, y_in = torch.randn(5, 4, generator=g, dtype=dtype), torch.randn(5, 2, generator=g, dtype=dtype)
    x_out, y_out = torch.randn(5, 4, generator=g, dtype=dtype), torch.randn(5, 2, generator=g, dtype=dtype)
    return x_in, y_in, x_out, y_out


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean()


def test_functional_call_with_own_params_predicts_as_the_module():
    model = _mlp()
    x = _data()[0]
    assert torch.equal(_call(model, _params(model), x), model(x))


def test_inner_step_lowers_inner_loss():
    model = _mlp()
    x_in, y_in, _, _ = _data()
    params = _params(model)
    before = _mse(_call(model, params, x_in), y_in)
    probed = inner_step(before, params, lr=1e-2)
    assert _mse(_call(model, probed, x_in), y_in).item() < before.item()
    assert all(params[n] is p for n, p in model.named_parameters())  # the model itself was not changed


def test_outer_gradient_reaches_original_parameters():
    model = _mlp()
    x_in, y_in, x_out, y_out = _data()
    params = _params(model)
    probed = inner_step(_mse(_call(model, params, x_in), y_in), params, lr=1e-2)
    _mse(_call(model, probed, x_out), y_out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_first_order_gradient_equals_gradient_at_probed_weights():
    model = _mlp()
    x_in, y_in, x_out, y_out = _data()
    params = _params(model)
    probed = inner_step(_mse(_call(model, params, x_in), y_in), params, lr=0.1, first_order=True)
    _mse(_call(model, probed, x_out), y_out).backward()
    # independently: a copy of the network holding theta', differentiated at theta'
    probe = copy.deepcopy(model)
    probe.load_state_dict({n: t.detach() for n, t in probed.items()})
    _mse(probe(x_out), y_out).backward()
    for (name, p), q in zip(model.named_parameters(), probe.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_second_order_analytic_scalar_example():
    # f(x) = w x, w0 = 1. Inner: L_in = (2w - 1)^2, g = 2*2*(2*1 - 1) = 4, lr = 0.1 -> w' = 1 - 0.4 = 0.6.
    # Outer: L_out = (w' * 1 - 0)^2, dL_out/dw' = 2 * 0.6 = 1.2.
    # First order: dL/dw = 1.2. Second order: dw'/dw = 1 - lr * 2 * 2^2 = 0.2, so dL/dw = 1.2 * 0.2 = 0.24.
    expected = {True: 1.2, False: 0.24}
    for first_order, grad in expected.items():
        model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(1.0)
        params = _params(model)
        low = (_call(model, params, torch.tensor([[2.0]])) - 1.0).pow(2).sum()
        probed = inner_step(low, params, lr=0.1, first_order=first_order)
        torch.testing.assert_close(probed["weight"], torch.tensor([[0.6]]))
        _call(model, probed, torch.tensor([[1.0]])).pow(2).sum().backward()
        torch.testing.assert_close(model.weight.grad, torch.tensor([[grad]]))


def _outer_after_step(model: nn.Module, params: dict[str, torch.Tensor], lr: float, first_order: bool):
    x_in, y_in, x_out, y_out = _data(torch.float64)
    adapted = inner_step(_mse(_call(model, params, x_in), y_in), params, lr, first_order=first_order)
    return _mse(_call(model, adapted, x_out), y_out)


def test_second_order_matches_finite_differences_and_first_order_does_not():
    model = _mlp(torch.float64)
    lr, eps = 0.5, 1e-6
    grads = {}
    for first_order in (True, False):
        params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
        outer = _outer_after_step(model, params, lr, first_order)
        grads[first_order] = torch.autograd.grad(outer, params["0.weight"])[0]
    numeric = torch.zeros(4)
    for k, (i, j) in enumerate([(0, 0), (3, 1), (5, 2), (7, 3)]):
        values = []
        for sign in (1.0, -1.0):
            params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
            with torch.no_grad():
                params["0.weight"][i, j] += sign * eps
            values.append(_outer_after_step(model, params, lr, first_order=False).item())
        numeric[k] = (values[0] - values[1]) / (2 * eps)
    picked = {fo: torch.stack([g[0, 0], g[3, 1], g[5, 2], g[7, 3]]).float() for fo, g in grads.items()}
    torch.testing.assert_close(picked[False], numeric, rtol=1e-5, atol=1e-7)
    assert (picked[True] - numeric).abs().max() > 1e-3  # first order misses the Hessian term


def test_group_norm_network_adapts_and_gradients_reach_gn_affine():
    model = _cnn()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    params = _params(model)
    before = _call(model, params, x).pow(2).mean()
    probed = inner_step(before, params, lr=1e-2)
    assert _call(model, probed, x).pow(2).mean().item() < before.item()
    _call(model, probed, x).sum().backward()
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0
    assert model[1].bias.grad is not None


def test_unused_and_frozen_parameters_are_left_unchanged():
    model = nn.ModuleDict({"used": nn.Linear(3, 1), "unused": nn.Linear(3, 1)})
    model["used"].bias.requires_grad_(False)
    params = _params(model)
    loss = model["used"](torch.ones(2, 3)).sum()
    updated = inner_step(loss, params, lr=0.1)
    assert updated["unused.weight"] is params["unused.weight"]
    assert updated["used.bias"] is params["used.bias"]
    # d loss / d w = sum over the 2 rows of x = [2, 2, 2]; w' = w - 0.1 * 2
    torch.testing.assert_close(updated["used.weight"], params["used.weight"].detach() - 0.2)


def test_non_finite_gradient_raises_specific_error():
    model = nn.Linear(2, 1)
    params = _params(model)
    before = {n: p.detach().clone() for n, p in params.items()}
    zero = (_call(model, params, torch.zeros(1, 2)) - model.bias.detach()).sum()  # == 0, depends on the parameters
    with pytest.raises(NonFiniteGradientError, match="not finite"):
        inner_step(torch.sqrt(zero), params, lr=0.1)  # sqrt'(0) = inf
    with pytest.raises(NonFiniteGradientError, match="inner loss"):
        inner_step(_call(model, params, torch.ones(1, 2)).sum() * float("nan"), params, lr=0.1)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing was updated
