import math

import pytest
import torch

from conftest import make_stack
from rnn_dynamics.jacobians import (DenseJacobians, ElmanJacobians, default_lags, lag_product_autograd,
                                    product_log_norms, state_gradient_norms, step_jacobians_autograd)


def _traced(nonlinearity, gen, t=40, hidden=6, inits=("identity", "orthogonal", "he")):
    stack = make_stack(list(inits), nonlinearity, hidden=hidden, input_std=0.8)
    x = torch.randn(t, 3, 2, generator=gen, dtype=torch.float64)
    return stack, x, stack.trace(x)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "linear"])
def test_structured_step_jacobians_equal_autograd(nonlinearity, gen):
    stack, x, trace = _traced(nonlinearity, gen)
    preacts = trace.stacked_preacts(0).detach()
    states = trace.stacked_states(0).detach()
    drive = stack.layer_drive(0, x).detach()
    jac = ElmanJacobians.from_preacts(stack.w_hh[0].detach().unsqueeze(1), preacts, nonlinearity)
    for cell in range(3):
        auto = step_jacobians_autograd(stack.recurrent_step(0, cell), states[:-1, cell], drive[:, cell])
        for t in (0, 17, 39):
            assert torch.allclose(jac.dense(t)[cell], auto[t], atol=1e-12)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_product_norms_equal_autograd_lag_by_lag(nonlinearity, gen):
    stack, x, trace = _traced(nonlinearity, gen)
    states = trace.stacked_states(0).detach()
    drive = stack.layer_drive(0, x).detach()
    jac = ElmanJacobians.from_preacts(stack.w_hh[0].detach().unsqueeze(1), trace.stacked_preacts(0).detach(),
                                      nonlinearity)
    lags = [1, 2, 7, 20, 40]
    log_norms, log_svals = product_log_norms(jac, lags, full_spectrum=True)
    for cell in range(3):
        step = stack.recurrent_step(0, cell)
        for seq in range(3):
            for i, k in enumerate(lags):
                ref = lag_product_autograd(step, states[-1 - k, cell, seq], drive[-k:, cell, seq])
                expected = torch.linalg.matrix_norm(ref, ord=2)
                assert torch.exp(log_norms[i, cell, seq]) == pytest.approx(expected.item(), rel=1e-5, abs=1e-300)
            full = lag_product_autograd(step, states[0, cell, seq], drive[:, cell, seq])
            ref_svals = torch.linalg.svdvals(full)
            keep = ref_svals > 1e-12 * ref_svals[0]
            assert torch.allclose(torch.exp(log_svals[cell, seq])[keep], ref_svals[keep], rtol=1e-5)


def test_dense_and_structured_sequences_agree(gen):
    w = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    d = torch.rand(9, 4, generator=gen, dtype=torch.float64)
    structured = ElmanJacobians(w, d)
    dense = DenseJacobians(torch.stack([structured.dense(t) for t in range(9)]))
    a, _ = product_log_norms(structured, [1, 5, 9])
    b, _ = product_log_norms(dense, [1, 5, 9])
    assert torch.allclose(a, b, atol=1e-12)
    q = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    assert torch.allclose(structured.left(3, q), dense.left(3, q))
    assert torch.allclose(structured.right(q, 3), dense.right(q, 3))


def test_products_far_below_float_range_stay_exact():
    # 0.01 I over 500 steps: ||product|| = 1e-1000, far below float64's 1e-308.
    jac = ElmanJacobians(0.01 * torch.eye(5), torch.ones(500, 5))
    log_norms, log_svals = product_log_norms(jac, [1, 100, 500], full_spectrum=True)
    expected = torch.tensor([1, 100, 500], dtype=torch.float64) * math.log(0.01)
    assert torch.allclose(log_norms, expected, rtol=1e-6)
    assert torch.allclose(log_svals, torch.full((5,), 500 * math.log(0.01), dtype=torch.float64), rtol=1e-6)


def test_dead_relu_product_is_minus_infinity():
    dact = torch.ones(10, 3)
    dact[4] = 0.0  # every unit inactive at one step cuts all paths
    log_norms, _ = product_log_norms(ElmanJacobians(torch.eye(3), dact), [1, 5, 6, 10])
    assert torch.isfinite(log_norms[:2]).all() and torch.isneginf(log_norms[2:]).all()


def test_state_gradient_norms_are_total_derivatives(gen):
    # For a last-step loss, dL/dh_t = (dh_T/dh_t)^T dL/dh_T: check autograd's answer against the product.
    stack, x, trace = _traced("tanh", gen, t=15)
    y = torch.randn(3, dtype=torch.float64, generator=gen)
    trace = stack.trace(x, grad_wrt_states=True)
    loss = ((trace.outputs[..., 0] - y) ** 2).sum()
    norms = state_gradient_norms(loss, trace.states[0])
    assert norms.shape == (16, 3, 3)
    delta_T = 2 * (trace.outputs[..., 0] - y).detach().unsqueeze(-1) * stack.w_out.detach()  # (M, B, N)
    jac = ElmanJacobians.from_preacts(stack.w_hh[0].detach().unsqueeze(1), trace.stacked_preacts(0).detach(), "tanh")
    delta = delta_T
    for t in range(15, -1, -1):
        assert torch.allclose(norms[t], delta.norm(dim=-1), rtol=1e-10)
        if t > 0:
            delta = (jac.dense(t - 1).transpose(-1, -2) @ delta.unsqueeze(-1)).squeeze(-1)


def test_default_lags():
    lags = default_lags(784)
    assert lags[0] == 1 and lags[-1] == 784 and 25 <= len(lags) <= 31
    assert default_lags(1) == [1]
    with pytest.raises(ValueError, match="lags must lie in 1..10"):
        product_log_norms(ElmanJacobians(torch.eye(2), torch.ones(10, 2)), [0, 3])
