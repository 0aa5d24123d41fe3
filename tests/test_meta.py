"""Invariants of the functional MAML primitive (ported from learn2learn's MAML tests)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from models.meta import FunctionalLearner, NonFiniteGradientError, functional_forward, inner_step, params_of


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


def test_clone_predicts_exactly_as_original_and_shares_the_module():
    model = _mlp()
    x = _data()[0]
    learner = FunctionalLearner(model)
    assert learner.module is model  # no copy of the module
    assert all(learner.params[n] is p for n, p in model.named_parameters())
    assert torch.equal(learner(x), model(x))
    assert torch.equal(functional_forward(model, params_of(model), x), model(x))


def test_inner_step_lowers_inner_loss():
    model = _mlp()
    x_in, y_in, _, _ = _data()
    learner = FunctionalLearner(model)
    before = _mse(learner(x_in), y_in)
    learner.adapt(before, lr=1e-2)
    after = _mse(learner(x_in), y_in)
    assert after.item() < before.item()


def test_outer_gradient_reaches_original_parameters():
    model = _mlp()
    x_in, y_in, x_out, y_out = _data()
    learner = FunctionalLearner(model)
    learner.adapt(_mse(learner(x_in), y_in), lr=1e-2)
    _mse(learner(x_out), y_out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_first_order_gradient_equals_gradient_at_probed_weights():
    model = _mlp()
    x_in, y_in, x_out, y_out = _data()
    learner = FunctionalLearner(model)
    learner.adapt(_mse(learner(x_in), y_in), lr=0.1, first_order=True)
    _mse(learner(x_out), y_out).backward()
    # independently: a copy of the network holding theta', differentiated at theta'
    probe = copy.deepcopy(model)
    probe.load_state_dict({n: t.detach() for n, t in learner.params.items()})
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
        learner = FunctionalLearner(model)
        learner.adapt((learner(torch.tensor([[2.0]])) - 1.0).pow(2).sum(), lr=0.1, first_order=first_order)
        torch.testing.assert_close(learner.params["weight"], torch.tensor([[0.6]]))
        learner(torch.tensor([[1.0]])).pow(2).sum().backward()
        torch.testing.assert_close(model.weight.grad, torch.tensor([[grad]]))


def _outer_after_step(model: nn.Module, params: dict[str, torch.Tensor], lr: float, first_order: bool):
    x_in, y_in, x_out, y_out = _data(torch.float64)
    adapted = inner_step(_mse(functional_forward(model, params, x_in), y_in), params, lr, first_order=first_order)
    return _mse(functional_forward(model, adapted, x_out), y_out)


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


def test_dropout_in_eval_mode_is_deterministic():
    model = _mlp()
    x = _data()[0]
    learner = FunctionalLearner(model)
    learner.adapt(_mse(learner(x), torch.zeros(5, 2)), lr=1e-2)
    assert torch.equal(learner(x), learner(x))
    model.train()  # the learner follows the module's mode: dropout now samples
    assert not torch.equal(learner(x), learner(x))


def test_group_norm_network_adapts_and_gradients_reach_gn_affine():
    model = _cnn()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    learner = FunctionalLearner(model)
    assert torch.equal(learner(x), model(x))
    before = learner(x).pow(2).mean()
    learner.adapt(before, lr=1e-2)
    assert learner(x).pow(2).mean().item() < before.item()
    learner(x).sum().backward()
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0
    assert model[1].bias.grad is not None


def test_unused_and_frozen_parameters_are_left_unchanged():
    model = nn.ModuleDict({"used": nn.Linear(3, 1), "unused": nn.Linear(3, 1)})
    model["used"].bias.requires_grad_(False)
    params = params_of(model)
    loss = model["used"](torch.ones(2, 3)).sum()
    updated = inner_step(loss, params, lr=0.1)
    assert updated["unused.weight"] is params["unused.weight"]
    assert updated["used.bias"] is params["used.bias"]
    # d loss / d w = sum over the 2 rows of x = [2, 2, 2]; w' = w - 0.1 * 2
    torch.testing.assert_close(updated["used.weight"], params["used.weight"].detach() - 0.2)


def test_non_finite_gradient_raises_specific_error():
    model = nn.Linear(2, 1)
    learner = FunctionalLearner(model)
    zero = (learner(torch.zeros(1, 2)) - model.bias.detach()).sum()  # == 0, depends on the parameters
    with pytest.raises(NonFiniteGradientError, match="not finite"):
        learner.adapt(torch.sqrt(zero), lr=0.1)  # sqrt'(0) = inf
    with pytest.raises(NonFiniteGradientError, match="inner loss"):
        learner.adapt(learner(torch.ones(1, 2)).sum() * float("nan"), lr=0.1)
    assert all(learner.params[n] is p for n, p in model.named_parameters())  # nothing was updated


def test_learner_never_writes_module_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    learner = FunctionalLearner(model)
    x = torch.randn(6, 3) + 5.0
    learner(x)
    assert torch.equal(model[1].running_mean, torch.zeros(4))
    assert model[1].num_batches_tracked.item() == 0
    model(x)  # the module itself still updates them (so the check above could fail)
    assert not torch.equal(model[1].running_mean, torch.zeros(4))
