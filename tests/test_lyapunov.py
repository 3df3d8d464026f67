"""Lyapunov spectra against closed-form answers, direct simulation and the autograd path."""

import math

import numpy as np
import pytest
import torch

from conftest import make_stack, perturbed
from rnn_dynamics import theory
from rnn_dynamics.jacobians import ElmanJacobians
from rnn_dynamics.lyapunov import cell_step, model_largest_exponent, model_lyapunov_spectrum, unroll
from rnn_dynamics.models import list_cells
from rnn_dynamics.spectra import benettin_largest_exponent, lyapunov_spectrum, qr_lyapunov


def _repeat(matrix, steps):
    return matrix.expand(steps, *matrix.shape)


def test_orthogonal_linear_map_has_all_exponents_zero(gen):
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=gen, dtype=torch.float64))
    assert lyapunov_spectrum(_repeat(q, 300)).abs().max() < 1e-6


def test_diagonal_map_gives_log_abs_entries(gen):
    d = torch.tensor([1.5, -0.5, 0.9, 0.2, -1.1], dtype=torch.float64)
    lam = lyapunov_spectrum(_repeat(torch.diag(d), 400))
    expected = torch.sort(torch.log(d.abs()), descending=True).values
    assert torch.allclose(lam, expected, atol=0.02)  # finite-time bias of a random frame, O(1/T)
    top2 = lyapunov_spectrum(_repeat(torch.diag(d), 400), k=2)
    assert torch.allclose(top2, expected[:2], atol=0.02)


@pytest.mark.parametrize("scale", [0.01, 0.7, 1.3])
def test_scaled_identity_linear_map_gives_log_scale(scale):
    lam = lyapunov_spectrum(_repeat(scale * torch.eye(8, dtype=torch.float64), 50))
    assert torch.allclose(lam, torch.full((8,), math.log(scale), dtype=torch.float64), atol=1e-12)


def test_gaussian_products_match_newman_formula(gen):
    n, steps = 50, 8000  # at 3000 steps the smallest exponents still wander by 0.04
    jac = torch.randn(steps, n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    lam = lyapunov_spectrum(jac, warmup=50).numpy()
    theory_lam = theory.gaussian_product_exponents(n, 1 / math.sqrt(n))
    assert np.abs(lam - theory_lam).max() < 0.03


def test_a_long_reorthonormalisation_interval_is_reached_by_doubling(gen):
    """Q D_t Q^T with rates spread over 1.25 nats per step: asked for 30- or 100-step blocks, the QR method grows
    its blocks from one step by doubling until the frame has turned towards the growth directions (jumping to 30
    steps after the first, it flagged full-rank directions as killed: -inf), and agrees with QR every step."""
    n, steps = 40, 200
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    rates = torch.linspace(0.0, 250.0 / steps, n, dtype=torch.float64)[torch.randperm(n, generator=gen)]
    d = torch.exp(0.3 * torch.randn(steps, n, generator=gen, dtype=torch.float64) - rates)
    jacobians = q @ torch.diag_embed(d) @ q.T
    every_step = lyapunov_spectrum(jacobians)
    for interval in (30, 100):
        assert torch.allclose(lyapunov_spectrum(jacobians, reortho_every=interval), every_step, rtol=0, atol=1e-12)


def test_batched_input_and_reorthonormalising_less_often(gen):
    jac = torch.randn(3, 600, 6, 6, generator=gen, dtype=torch.float64) / math.sqrt(6)
    every = lyapunov_spectrum(jac)
    sparse = lyapunov_spectrum(jac, reortho_every=3)
    assert every.shape == (3, 6)
    assert torch.allclose(every, sparse, atol=1e-8)
    one = lyapunov_spectrum(jac[1])
    assert torch.allclose(one, every[1], atol=1e-12)


@pytest.mark.parametrize("gain", [1.5, 2.0])
def test_reorthonormalising_every_k_steps_agrees_on_a_full_rank_tanh_network(gain):
    """K = 1, 3, 5, 10 give the same spectrum and no -inf: the QR interval shortens itself where the
    local exponents spread too far for the smallest direction to keep its digits."""
    stack = make_stack([f"random_walk:gain={gain}"], "tanh", hidden=64, input_std=0.5)
    x = torch.randn(600, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spectra = [model_lyapunov_spectrum(stack, x, warmup=50, reortho_every=k).exponents for k in (1, 3, 5, 10)]
    assert torch.isfinite(spectra[0]).all()
    assert spectra[0].min() < -5  # a spread of over 5 nats per step: 10 steps apart it would lose every digit
    for other in spectra[1:]:
        assert torch.allclose(other, spectra[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", list_cells())
def test_sum_of_exponents_is_the_mean_log_determinant(cell, gen):
    """With k = S the QR diagonals multiply to det J_t at every step, for any cell type."""
    stack = perturbed(make_stack(["he", "orthogonal"], "tanh", hidden=5, cell=cell, input_std=0.8))
    x = torch.randn(80, 2, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        trace = stack.trace(x)
    jac = stack.step_jacobians(trace, 0, dtype=torch.float64)
    log_det = torch.stack([torch.linalg.slogdet(jac.dense(t))[1] for t in range(10, 80)]).mean(dim=0)
    lam = model_lyapunov_spectrum(stack, x, warmup=10).exponents
    assert lam.shape == (2, 2, type(stack).state_size(5))
    assert torch.allclose(lam.sum(dim=-1), log_det, atol=1e-10)


@pytest.mark.parametrize("cell", list_cells())
def test_largest_exponent_matches_direct_simulation_for_every_cell(cell):
    """The QR largest exponent of the full state (2N for the LSTM) against Benettin's two trajectories."""
    stack = perturbed(make_stack(["random_walk:gain=2", "orthogonal"], "tanh", hidden=20, cell=cell, input_std=0.5))
    x = torch.randn(1500, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    qr = model_lyapunov_spectrum(stack, x, k=2, warmup=100).exponents[..., 0]
    direct = model_largest_exponent(stack, x, warmup=100)
    assert torch.allclose(qr, direct, atol=0.02)


def test_local_exponents_average_to_the_spectrum(gen):
    jac = torch.randn(100, 5, 5, generator=gen, dtype=torch.float64)
    result = lyapunov_spectrum(jac, warmup=10, reortho_every=4, local=True)
    ends = np.array(result.block_ends)
    lengths = torch.tensor(np.diff(np.concatenate([[10], ends])), dtype=torch.float64)
    assert ends[0] == 14 and ends[-1] == 100  # blocks restart at the end of warm-up
    weighted = (result.local * lengths[:, None]).sum(0) / 90
    assert torch.allclose(weighted, result.exponents, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=7), r"k must lie in 1..6"),
    (dict(k=0), r"k must lie in 1..6"),
    (dict(warmup=20), r"warmup must lie in 0..19"),
    (dict(reortho_every=0), "reortho_every must be >= 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lyapunov_spectrum(torch.eye(6).expand(20, 6, 6), **kwargs)
    with pytest.raises(ValueError, match=r"must be \(T, N, N\)"):
        lyapunov_spectrum(torch.eye(6))


def _positive_irnn(scale, hidden=6):
    """An IRNN whose inputs and input weights are positive, so every state stays positive."""
    spec = "identity" if scale == 1 else f"scaled_identity:scale={scale}"
    stack = make_stack([spec], "relu", hidden=hidden)
    with torch.no_grad():
        stack.w_ih[0].abs_()
    x = torch.rand(40, 3, 2, dtype=torch.float64) + 0.1
    return stack, x


@pytest.mark.parametrize("scale", [1, 0.01])
def test_irnn_at_initialisation_with_positive_states(scale):
    stack, x = _positive_irnn(scale)
    assert (stack.trace(x).stacked_states(0)[1:] > 0).all()
    lam = model_lyapunov_spectrum(stack, x).exponents
    assert torch.allclose(lam, torch.tensor(theory.scaled_identity_exponents(6, scale)).expand_as(lam), atol=1e-12)


def test_dead_relu_units_give_minus_infinity_not_nan():
    stack, x = _positive_irnn(1)
    with torch.no_grad():
        stack.w_ih[0][:, :2] = -stack.w_ih[0][:, :2]  # units 0 and 1 always driven negative: dead
    # warm-up 1 discards the first step, whose projection of the random frame onto the live units
    # shrinks its columns once; afterwards J = diag(0, 0, 1, 1, 1, 1) exactly.
    lam = model_lyapunov_spectrum(stack, x, warmup=1).exponents[0]
    assert not torch.isnan(lam).any()
    assert torch.isneginf(lam).sum(-1).eq(2).all()
    assert lam[:, :4].abs().max() < 1e-12  # the four live units keep exponent 0


def test_qr_matches_direct_simulation_on_chaotic_tanh_network():
    n = 50
    stack = make_stack(["random_walk:gain=2"], "tanh", hidden=n, input_std=0.1)
    x = torch.randn(3000, 2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    qr = model_lyapunov_spectrum(stack, x, k=3, warmup=200).exponents[..., 0]
    direct = model_largest_exponent(stack, x, warmup=200)
    assert (qr > 0.02).all()  # chaotic
    assert torch.allclose(qr, direct, atol=0.02)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_analytic_and_autograd_paths_agree(nonlinearity, gen):
    stack = make_stack(["he"], nonlinearity, hidden=8, input_std=1.0)
    x = torch.randn(60, 3, 2, generator=gen, dtype=torch.float64)
    cell = torch.nn.RNNCell(2, 8, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        cell.weight_ih.copy_(stack.w_ih[0][0])
        cell.weight_hh.copy_(stack.w_hh[0][0])
        cell.bias_ih.copy_(stack.bias[0][0, 0])
        cell.bias_hh.zero_()
    analytic = model_lyapunov_spectrum(stack, x, warmup=5).exponents[0]
    generic = model_lyapunov_spectrum(cell, x, warmup=5).exponents
    finite = torch.isfinite(analytic)
    assert torch.equal(finite, torch.isfinite(generic))
    assert torch.allclose(analytic[finite], generic[finite], rtol=0, atol=1e-8)


def test_lstm_through_the_generic_path_matches_direct_simulation(gen):
    cell = torch.nn.LSTMCell(2, 6).double()
    x = torch.randn(400, 2, 2, generator=gen, dtype=torch.float64)
    result = model_lyapunov_spectrum(cell, x, warmup=50)
    assert result.exponents.shape == (2, 12) and torch.isfinite(result.exponents).all()
    step, _ = cell_step(cell)
    batched = torch.func.vmap(step)
    h0 = torch.zeros(2, 12, dtype=torch.float64)
    with torch.no_grad():
        direct = benettin_largest_exponent(lambda h, t: batched(h, x[t]), h0, 400, warmup=50)
    assert torch.allclose(result.exponents[:, 0], direct, atol=0.02)
    assert unroll(step, h0, x).shape == (401, 2, 12)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_cell_step_equals_the_torch_module(kind, gen):
    cell = {"rnn": torch.nn.RNNCell(3, 5, nonlinearity="relu"), "gru": torch.nn.GRUCell(3, 5),
            "lstm": torch.nn.LSTMCell(3, 5)}[kind].double()
    step, size = cell_step(cell)
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    state = torch.randn(4, size, generator=gen, dtype=torch.float64)
    ours = torch.func.vmap(step)(state, x)
    if kind == "lstm":
        h, c = cell(x, (state[:, :5], state[:, 5:]))
        theirs = torch.cat([h, c], dim=1)
    else:
        theirs = cell(x, state)
    assert torch.allclose(ours, theirs, atol=1e-14)


def test_structured_sequence_gives_the_same_spectrum_as_dense(gen):
    w = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    d = torch.rand(80, 5, generator=gen, dtype=torch.float64)
    structured = ElmanJacobians(w, d)
    dense = torch.stack([structured.dense(t) for t in range(80)])
    assert torch.allclose(qr_lyapunov(structured).exponents, lyapunov_spectrum(dense), atol=1e-12)


def test_upper_layer_spectrum_matches_direct_simulation():
    stack = make_stack(["random_walk:gain=2", "orthogonal"], "tanh", hidden=30, layers=2, input_std=0.5)
    x = torch.randn(1500, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    qr = model_lyapunov_spectrum(stack, x, layer=1, k=2, warmup=100).exponents[..., 0]
    direct = model_largest_exponent(stack, x, layer=1, warmup=100)
    assert qr.shape == (2, 2)
    assert torch.allclose(qr, direct, atol=0.02)
