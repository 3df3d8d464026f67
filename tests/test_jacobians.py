import math

import pytest
import torch

from conftest import make_stack, perturbed
from rnn_dynamics.jacobians import (DenseJacobians, ElmanJacobians, GatedJacobians, default_lags,
                                    lag_log_singular_values, lag_product_autograd, product_log_norms,
                                    product_log_singular_values, product_log_spectra, spectral_norm,
                                    state_gradient_log_norms, step_jacobians_autograd)
from rnn_dynamics.spectra import graded_log_singular_values
from rnn_dynamics.models import RecurrentStack, get_cell, list_cells
from rnn_dynamics.records import RESOLVED_PRODUCT_NATS
from rnn_dynamics.tasks import make_task


def _traced(nonlinearity, gen, t=40, hidden=6, inits=("identity", "orthogonal", "he"), cell="elman", layers=1):
    stack = perturbed(make_stack(list(inits), nonlinearity, hidden=hidden, input_std=0.8, cell=cell, layers=layers))
    x = torch.randn(t, 3, 2, generator=gen, dtype=torch.float64)
    return stack, x, stack.trace(x)


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_structured_step_jacobians_equal_autograd(cell, nonlinearity, gen):
    """Each cell type's analytic Jacobians against torch.func.jacrev of its step (the base-class path)."""
    stack, x, trace = _traced(nonlinearity, gen, t=15, hidden=5, cell=cell, layers=2)
    for layer in range(2):
        fast, reference = stack.step_jacobians(trace, layer), RecurrentStack.step_jacobians(stack, trace, layer)
        assert len(fast) == 15 and fast.size == type(stack).state_size(5)
        q = torch.randn(3, 3, fast.size, 4, generator=gen, dtype=torch.float64)
        p = torch.randn(3, 3, 4, fast.size, generator=gen, dtype=torch.float64)
        for t in (0, 7, 14):
            assert torch.allclose(fast.dense(t), reference.dense(t), atol=1e-12)
            assert torch.allclose(fast.left(t, q), reference.left(t, q), atol=1e-12)
            assert torch.allclose(fast.right(p, t), reference.right(p, t), atol=1e-12)


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_product_norms_equal_autograd_lag_by_lag(cell, nonlinearity, gen):
    stack, x, trace = _traced(nonlinearity, gen, t=30, cell=cell)
    states, drive = trace.stacked_states(0).detach(), trace.drives[0].detach()
    lags = [1, 2, 7, 20, 30]
    log_norms, log_svals = product_log_norms(stack.step_jacobians(trace, 0), lags, full_spectrum=True)
    for index in range(3):
        step = stack.recurrent_step(0, index)
        for seq in range(3):
            for i, k in enumerate(lags):
                ref = lag_product_autograd(step, states[-1 - k, index, seq], drive[-k:, index, seq])
                expected = torch.linalg.matrix_norm(ref, ord=2)
                assert torch.exp(log_norms[i, index, seq]) == pytest.approx(expected.item(), rel=1e-5, abs=1e-300)
            full = lag_product_autograd(step, states[0, index, seq], drive[:, index, seq])
            ref_svals = torch.linalg.svdvals(full)
            keep = ref_svals > 1e-12 * ref_svals[0]
            assert torch.allclose(torch.exp(log_svals[index, seq])[keep], ref_svals[keep], rtol=1e-5)


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


def test_gated_jacobians_reduce_to_elman(gen):
    """One part, one gate, no diagonal: diag(eta) W, the Elman structure."""
    w = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    d = torch.rand(9, 4, generator=gen, dtype=torch.float64)
    gated = GatedJacobians(w, d[:, None, None, :], torch.zeros(9, 1, 1, 4, dtype=torch.float64))
    elman = ElmanJacobians(w, d)
    q = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    for t in (0, 8):
        assert torch.allclose(gated.dense(t), elman.dense(t)) and torch.allclose(gated.left(t, q), elman.left(t, q))
        assert torch.allclose(gated.right(q.T, t), elman.right(q.T, t))


def test_spectral_norm_equals_the_largest_singular_value(gen):
    m = torch.randn(5, 7, 7, generator=gen, dtype=torch.float64)
    assert torch.allclose(spectral_norm(m), torch.linalg.svdvals(m)[:, 0], rtol=1e-12)


def test_the_products_of_a_relu_stack_at_initialisation_have_norms_without_flushing_denormals():
    """The float32 products of six ReLU cells at initialisation on the adding task, whose Gram matrices
    LAPACK's float32 eigensolver failed to converge on (LinAlgError) unless denormals were flushed."""
    task = make_task("adding", seq_len=784, seed=0, batch_size=16, preset="default")
    inits = ["identity", "orthogonal", "he", "xavier", "random_walk", "scaled_identity"]
    model = get_cell("elman").from_inits(inits, task.input_size, 100, task.output_size, "relu")
    with torch.no_grad():
        jacobians = model.step_jacobians(model.trace(task.test_x[:, :4]), 0)
    log_norms, log_svals = product_log_norms(jacobians, default_lags(784), full_spectrum=True)
    kept = jacobians.dense(783)[0, 0]  # the one-step product of the identity cell: its norm, directly
    assert math.isclose(log_norms[0, 0, 0].item(), math.log(torch.linalg.svdvals(kept.double())[0].item()),
                        rel_tol=1e-12)
    assert not torch.isnan(log_norms).any() and log_svals.shape == (6, 4, 100)


def test_products_far_below_float_range_stay_exact():
    # 0.01 I over 500 steps: ||product|| = 1e-1000, far below float64's 1e-308.
    jac = ElmanJacobians(0.01 * torch.eye(5), torch.ones(500, 5))
    log_norms, log_svals = product_log_norms(jac, [1, 100, 500], full_spectrum=True)
    expected = torch.tensor([1, 100, 500], dtype=torch.float64) * math.log(0.01)
    assert torch.allclose(log_norms, expected, rtol=1e-6)
    assert torch.allclose(log_svals, torch.full((5,), 500 * math.log(0.01), dtype=torch.float64), rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_singular_values_of_the_product_are_exact_within_the_resolved_range(dtype):
    """J_t = Q D_t Q^T with one orthogonal Q, so the singular values of the product are the products of the |d|.
    The product is formed densely in the Jacobians' dtype: the values within RESOLVED_PRODUCT_NATS of the
    largest are exact (measured: float32 7.1-16.6 nats, float64 30.9-39.7 for N = 20..200, T = 50..784); those
    further below are rounding, as docs/schema.md says and the singular-value figure draws them."""
    resolved = RESOLVED_PRODUCT_NATS[str(dtype).removeprefix("torch.")]
    gen = torch.Generator().manual_seed(7)
    n, steps = 100, 784
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    d = torch.exp(0.3 * torch.randn(steps, n, generator=gen, dtype=torch.float64)
                  - torch.linspace(0, 40 / steps, n, dtype=torch.float64))
    expected = torch.log(d).sum(dim=0).sort(descending=True).values
    _, log_svals = product_log_norms(DenseJacobians((q @ torch.diag_embed(d) @ q.T).to(dtype)), [steps],
                                     full_spectrum=True)
    within = expected[0] - expected <= resolved
    assert within.sum() >= 3 and torch.allclose(log_svals[within], expected[within], rtol=0, atol=0.01)


def test_graded_rows_give_their_own_scales_far_outside_the_float_range(gen):
    """Orthonormal rows scaled by e^0 .. e^-2500 (shuffled): the singular values are exactly the scales, which
    no formed matrix could hold; unscaled rows give LAPACK's values; a zero row gives -inf."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    scales = torch.tensor([0.0, -500, -1000, -1500, -2000, -2500], dtype=torch.float64)
    order = torch.randperm(6, generator=gen)
    got = graded_log_singular_values(q[order], scales[order])
    assert torch.allclose(got, scales, rtol=0, atol=1e-9)
    rows = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    got = graded_log_singular_values(rows, torch.zeros(3, 5, dtype=torch.float64))
    assert torch.allclose(got, torch.log(torch.linalg.svdvals(rows)), rtol=0, atol=1e-12)
    rows[1, 2] = 0.0
    assert torch.isneginf(graded_log_singular_values(rows, torch.zeros(3, 5, dtype=torch.float64))[1, -1])


@pytest.mark.parametrize("spread", [1.0, 300.0, 590.0])
def test_lapack_on_the_formed_matrix_and_jacobi_on_its_rows_give_the_same_values(gen, spread):
    """Within FORMED_SPREAD_LIMIT both engines serve: rows of condition about 1e3 under scales spread over
    ``spread`` nats (shuffled, two rows zero) give LAPACK's dgejsv on the formed matrix and Jacobi on the unit rows
    the same values to 1e-11 nats, -inf for the zero rows in both."""
    from rnn_dynamics.spectra import FORMED_SPREAD_LIMIT, _jacobi_log_values, _lapack_log_values, unit_length_rows

    assert spread < FORMED_SPREAD_LIMIT
    rows = torch.randn(3, 30, 40, generator=gen, dtype=torch.float64)
    rows[..., :4] *= 1e3
    rows[:, [5, 17]] = 0.0
    scales = -spread * torch.rand(3, 30, generator=gen, dtype=torch.float64)
    scales[:, 0], scales[:, 1] = 0.0, -spread
    unit, scale = unit_length_rows(rows, scales)
    lapack, jacobi = _lapack_log_values(unit, scale), _jacobi_log_values(unit, scale, max_sweeps=60)
    assert torch.isneginf(lapack[:, -2:]).all() and torch.isneginf(jacobi[:, -2:]).all()
    assert torch.isfinite(lapack[:, :-2]).all()
    assert torch.allclose(lapack[:, :-2], jacobi[:, :-2], rtol=0, atol=1e-11)
    assert torch.equal(graded_log_singular_values(rows, scales), lapack)


def test_a_matrix_takes_the_same_values_whatever_matrices_share_its_jacobi_batch(gen):
    """Jacobi drops a matrix from the batch once its rows are orthogonal: a nearly orthogonal matrix that converges
    sweeps before the others gives, batched with them, bit for bit what it gives alone, as does each of them (the
    batch rotating on for the slowest moved the others by 1e-16 nats), and the values equal LAPACK's."""
    n = 16
    rows = torch.randn(5, n, n, generator=gen, dtype=torch.float64)
    rows[0] = torch.eye(n, dtype=torch.float64) + 1e-3 * rows[0]
    scales = torch.randn(5, n, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 1, 30, 300, 1]).unsqueeze(-1)
    together = graded_log_singular_values(rows, scales)
    assert torch.equal(together, torch.stack([graded_log_singular_values(rows[i], scales[i]) for i in range(5)]))
    small = torch.tensor([0, 1, 4])  # scales within a few nats: the formed matrix holds every digit
    dense = torch.log(torch.linalg.svdvals(torch.exp(scales[small]).unsqueeze(-1) * rows[small]))
    assert torch.allclose(together[small], dense, rtol=0, atol=1e-12)


def test_products_of_a_network_with_every_unit_inactive_are_minus_infinity_not_an_error(gen):
    """Every ReLU unit off at every step: each product is exactly 0, so Jacobi gets no row that is not 0 (and a
    batch of matrices with no rows): every value is -inf, at each lag and over the whole product."""
    weight = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    dead = ElmanJacobians(weight, torch.zeros(6, 5, dtype=torch.float64))
    assert torch.isneginf(lag_log_singular_values(dead, [1, 3, 6])).all()
    assert torch.isneginf(product_log_singular_values(dead)).all()
    assert graded_log_singular_values(torch.zeros(3, 0, 5, dtype=torch.float64),
                                      torch.zeros(3, 0, dtype=torch.float64)).shape == (3, 0)


def test_every_singular_value_of_a_product_spanning_thousands_of_nats_is_exact(gen):
    """J_t = Q_t diag(e^lambda) Q_{t-1}^T telescopes: the product Q_T diag(e^(T lambda)) Q_0^T has singular values
    e^(T lambda_i) exactly, here from 0 down to -4000 nats (the dense product resolves 28 nats of them). Each
    factor is well conditioned (e^5), so forming it in float64 moves its singular values by rounding only."""
    n, steps = 8, 800
    rates = torch.linspace(0.0, -5.0, n, dtype=torch.float64)
    frames = [torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0] for _ in range(steps + 1)]
    factors = torch.stack([frames[t + 1] @ torch.diag(torch.exp(rates)) @ frames[t].T for t in range(steps)])
    got = product_log_singular_values(DenseJacobians(factors))
    assert torch.allclose(got, steps * rates, rtol=1e-12, atol=1e-10)
    dense = product_log_spectra(DenseJacobians(factors), [steps])[0]
    assert (dense - steps * rates).abs()[1:].min() > 100  # only the largest is right there


def test_the_finite_time_exponents_of_a_long_gaussian_product_meet_its_lyapunov_spectrum(gen):
    """4,000 Gaussian steps of variance 1/N: the product's singular values span 7,000 nats, and (1/T) ln sigma_i
    equals the QR method's exponents of the same steps to 0.002 and Newman's closed form to 0.05."""
    from rnn_dynamics import theory
    from rnn_dynamics.spectra import lyapunov_spectrum

    n, steps = 10, 4000
    factors = torch.randn(steps, n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    rates = product_log_singular_values(DenseJacobians(factors)) / steps
    assert (rates[0] - rates[-1]) * steps > 5000
    assert torch.allclose(rates, lyapunov_spectrum(factors), rtol=0, atol=0.002)
    expected = torch.from_numpy(theory.gaussian_product_exponents(n, 1 / math.sqrt(n)))
    assert torch.allclose(rates, expected, rtol=0, atol=0.05)


def _exact_log_singular_values(factors: torch.Tensor, digits: int) -> torch.Tensor:
    """ln of the singular values of factors[T-1] ... factors[0], in ``digits``-digit arithmetic (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(digits):
        product = mpmath.eye(factors.shape[-1])
        for factor in factors:
            product = mpmath.matrix(factor.tolist()) * product
        values = mpmath.svd_r(product, compute_uv=False)
        return torch.tensor(sorted((float(mpmath.log(v)) for v in values), reverse=True), dtype=torch.float64)


def test_a_saturating_tanh_products_singular_values_equal_700_digit_arithmetic(gen):
    """Step Jacobians diag(1 - h_t^2) W of a driven tanh network, 120 steps: its product's singular values span
    about 800 nats; every one equals the 700-digit computation to 1e-10 nats."""
    n, steps = 16, 120
    weight = 1.5 * torch.randn(n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    h, derivatives = torch.zeros(n, dtype=torch.float64), []
    for _ in range(steps):
        h = torch.tanh(weight @ h + torch.randn(n, generator=gen, dtype=torch.float64))
        derivatives.append(1 - h * h)
    jacobians = ElmanJacobians(weight, torch.stack(derivatives))
    expected = _exact_log_singular_values(torch.stack([jacobians.dense(t) for t in range(steps)]), 700)
    got = product_log_singular_values(jacobians)
    assert expected[0] - expected[-1] > 500
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)


def _driven_relu_jacobians(gen, n: int, steps: int, coupling: float) -> ElmanJacobians:
    """Step Jacobians of W = I + coupling G under the ReLU masks of a trajectory driven by noise: their zeros are
    exact, so every product's rank is too."""
    weight = torch.eye(n, dtype=torch.float64) + coupling * torch.randn(n, n, generator=gen, dtype=torch.float64)
    h, masks = torch.rand(n, generator=gen, dtype=torch.float64), []
    for _ in range(steps):
        a = weight @ h + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
        h = a.clamp(min=0)
        masks.append((a > 0).double())
    return ElmanJacobians(weight, torch.stack(masks))


def test_a_non_finite_step_makes_only_the_lags_that_reach_it_nan(gen):
    """J_1 of one sequence holds a NaN: its products at every lag k < T leave J_1 out and keep their values, the
    one at k = T is NaN, and the other sequence is untouched at every lag (a flag changed in place once spread the
    NaN to every lag taken before it)."""
    factors = torch.randn(6, 2, 4, 4, generator=gen, dtype=torch.float64)
    broken = factors.clone()
    broken[0, 1, 0, 0] = math.nan
    values = lag_log_singular_values(DenseJacobians(broken), [1, 3, 6])
    clean = lag_log_singular_values(DenseJacobians(factors), [1, 3, 6])
    assert torch.isnan(values[2, 1]).all() and not torch.isnan(values[:2]).any() and not torch.isnan(values[:, 0]).any()
    assert torch.equal(values[:2], clean[:2]) and torch.equal(values[:, 0], clean[:, 0])


def test_the_carried_product_keeps_only_as_many_directions_as_some_sequence_keeps(gen):
    """Under ReLU masks a product loses directions for good: the QR form then carries only as many as the sequence
    that keeps most (Q is S x a, a < S, so each later QR is of S x a), and still gives S values, -inf for the rest
    (their exactness: the tests around this one)."""
    from rnn_dynamics.jacobians import _QRProduct

    n, steps, sequences = 16, 40, 3
    weight = torch.eye(n, dtype=torch.float64) + 0.3 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    h, masks = torch.rand(sequences, n, generator=gen, dtype=torch.float64), []
    for _ in range(steps):
        a = h @ weight.T + 0.3 * torch.randn(sequences, n, generator=gen, dtype=torch.float64)
        h = a.clamp(min=0)
        masks.append((a > 0).double())
    jacobians = ElmanJacobians(weight, torch.stack(masks))
    carried = _QRProduct(jacobians)
    for t in range(steps):
        carried.zero_rows((jacobians.dense(t) == 0).all(dim=-2))
        carried.multiply(jacobians.left(t, carried.q))
    values = product_log_singular_values(jacobians)
    kept = torch.isfinite(values).sum(dim=-1)
    assert values.shape == (sequences, n) and torch.equal(carried.log_singular_values(), values)
    assert kept.max() < n and tuple(carried.q.shape) == (sequences, n, int(kept.max()))


def test_directions_inactive_relu_units_kill_are_minus_infinity_and_the_rest_exact(gen):
    """An IRNN-like W under the ReLU masks of a driven trajectory: the product has rank r < N, so N - r singular
    values are exactly 0 (-inf); the r others equal 300-digit arithmetic. The dense product leaves out J_T's zero
    rows, whose directions are exactly -inf there too, and gives rounding for the directions earlier steps killed."""
    n, steps = 16, 120
    jacobians = _driven_relu_jacobians(gen, n, steps, coupling=0.05)
    factors = torch.stack([jacobians.dense(t) for t in range(steps)])
    rank = int(torch.linalg.matrix_rank(_product(factors)))  # the exact rank: the masks' zeros are exact
    got = product_log_singular_values(jacobians)
    assert 0 < rank < n and torch.isfinite(got).sum() == rank and torch.isneginf(got[rank:]).all()
    assert torch.allclose(got[:rank], _exact_log_singular_values(factors, 300)[:rank], rtol=0, atol=1e-10)
    dense = product_log_spectra(jacobians, [steps])[0]
    rows = int((factors[-1] != 0).any(dim=-1).sum())  # J_T's nonzero rows
    assert rank < rows < n and torch.isfinite(dense[:rows]).all() and torch.isneginf(dense[rows:]).all()


def _product(factors: torch.Tensor) -> torch.Tensor:
    product = torch.eye(factors.shape[-1], dtype=factors.dtype)
    for factor in factors:
        product = factor @ product
    return product


@pytest.mark.parametrize("cell", list_cells())
def test_full_depth_singular_values_equal_the_dense_products_within_its_resolved_range(cell, gen):
    """Every cell type's own structured Jacobians: where the dense product resolves its singular values, the two
    agree; a diverged sequence gives NaN for itself alone."""
    stack, x, trace = _traced("tanh", gen, t=40, cell=cell)
    jacobians = stack.step_jacobians(trace, 0)
    dense = product_log_spectra(jacobians, [40])[0]
    got = product_log_singular_values(jacobians)
    within = dense[..., :1] - dense <= RESOLVED_PRODUCT_NATS["float64"]
    assert within.sum() > within.shape[0] * within.shape[1] and torch.allclose(got[within], dense[within], atol=1e-6)
    x[5, 2, 0] = math.nan
    got = product_log_singular_values(stack.step_jacobians(stack.trace(x), 0))
    assert torch.isnan(got[:, 2]).all() and torch.isfinite(got[:, :2]).all()


def test_full_depth_singular_values_of_float32_factors_and_of_a_dead_product():
    """Float32 factors are multiplied in float64 (exact for them): 0.5 I over 5 steps gives 5 ln 0.5 exactly; a
    step with every unit inactive leaves nothing but -inf."""
    half = product_log_singular_values(ElmanJacobians(0.5 * torch.eye(3), torch.ones(5, 1, 3)))
    assert half.dtype == torch.float64 and torch.equal(half, torch.full((1, 3), 5 * math.log(0.5), dtype=half.dtype))
    dact = torch.ones(6, 2, 3)
    dact[3, 1] = 0.0
    dead = product_log_singular_values(ElmanJacobians(torch.eye(3), dact))
    assert torch.isfinite(dead[0]).all() and torch.isneginf(dead[1]).all()


def test_every_singular_value_at_every_lag_of_a_telescoping_product_is_exact(gen):
    """The telescoping steps above: ds_T/ds_{T-k} = Q_T diag(e^(k lambda)) Q_(T-k)^T, so at each lag k the values
    are k lambda_i exactly, from 0 down to -4000 nats at k = 800, where the dense products resolve 28 nats."""
    n, steps = 8, 800
    rates = torch.linspace(0.0, -5.0, n, dtype=torch.float64)
    frames = [torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0] for _ in range(steps + 1)]
    factors = torch.stack([frames[t + 1] @ torch.diag(torch.exp(rates)) @ frames[t].T for t in range(steps)])
    lags = [1, 3, 40, 799, 800]
    got = lag_log_singular_values(DenseJacobians(factors), lags)
    assert got.shape == (5, n) and torch.allclose(got, torch.tensor(lags).double()[:, None] * rates, rtol=0, atol=1e-10)
    assert torch.allclose(got[-1], product_log_singular_values(DenseJacobians(factors)), rtol=0, atol=1e-10)


def test_at_every_lag_the_directions_relu_units_kill_are_minus_infinity_and_the_rest_exact(gen):
    """W = I + 0.3 G under the ReLU masks of a driven trajectory: at each lag k, ds_T/ds_{T-k} has rank r_k (from
    7 at k = 1 down to 4: 300-digit arithmetic puts the other values at its rounding, below -600 nats), so N - r_k
    values are -inf and the r_k others equal that arithmetic to 1e-10 nats; at k = T the same as the walk forward."""
    n, steps = 12, 60
    jacobians = _driven_relu_jacobians(gen, n, steps, coupling=0.3)
    factors = torch.stack([jacobians.dense(t) for t in range(steps)])
    lags = [1, 4, 15, steps]
    got = lag_log_singular_values(jacobians, lags)
    ranks = []
    for values, k in zip(got, lags):
        exact = _exact_log_singular_values(factors[steps - k:], 300)
        rank = int((exact > -300).sum())
        assert (exact[rank:] < -600).all(), k  # a clear gap: these are 0 in exact arithmetic
        assert torch.isfinite(values).sum() == rank and torch.isneginf(values[rank:]).all(), k
        assert torch.allclose(values[:rank], exact[:rank], rtol=0, atol=1e-10), k
        ranks.append(rank)
    assert ranks[-1] < ranks[0] < n
    forward = product_log_singular_values(jacobians)
    assert torch.equal(torch.isneginf(forward), torch.isneginf(got[-1]))
    assert torch.allclose(forward[:ranks[-1]], got[-1, :ranks[-1]], rtol=0, atol=1e-10)


def test_lags_take_the_same_values_whichever_lags_share_a_jacobi_run(gen, monkeypatch):
    """Jacobi runs on as many lags at once as LAG_SPECTRA_CHUNK_BYTES of nonzero rows hold, each lag with its own
    count of -inf rows: one lag per run, two, or all of them give the same values in the same order."""
    import rnn_dynamics.jacobians as module

    n, steps = 12, 60
    jacobians = _driven_relu_jacobians(gen, n, steps, coupling=0.3)
    lags = [1, 2, 4, 9, 15, 31, steps]
    runs = []
    for budget in (1, 2 * n * n * 8, 1 << 30):  # one lag per run, two (n x n rows of 8 bytes each at most), all
        monkeypatch.setattr(module, "LAG_SPECTRA_CHUNK_BYTES", budget)
        runs.append(lag_log_singular_values(jacobians, lags))
    assert len(set(torch.isneginf(runs[0]).sum(dim=-1).tolist())) > 2  # the lags differ in rank
    for run in runs[1:]:
        assert torch.equal(torch.isneginf(run), torch.isneginf(runs[0]))
        assert torch.allclose(run, runs[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_units_no_other_unit_reads_are_minus_infinity_at_every_lag_and_over_the_whole_product(seed):
    """Units no other unit reads (zero columns of W, 1 to 3 of them) leave every product that many ranks short: the
    walk back meets them as zero rows of J_t^T, the walk forward multiplies in the projection off them first;
    either way exactly that many values are -inf, and the others equal 300-digit arithmetic (without the
    projection, the forward walk left 28 of 40 such cases at rounding values, -180 to -1300 nats)."""
    gen = torch.Generator().manual_seed(seed)
    n, steps, unread = 4 + 2 * seed, 5 + 7 * seed, 1 + seed % 3
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)
    weight[:, torch.randperm(n, generator=gen)[:unread]] = 0.0
    jacobians = ElmanJacobians(weight, 0.5 + torch.rand(steps, n, generator=gen, dtype=torch.float64))
    whole, lags = product_log_singular_values(jacobians), lag_log_singular_values(jacobians, [1, steps // 2, steps])
    assert torch.isneginf(whole[-unread:]).all() and torch.isfinite(whole[:-unread]).all()
    assert torch.isneginf(lags[:, -unread:]).all() and torch.isfinite(lags[:, :-unread]).all()
    exact = _exact_log_singular_values(torch.stack([jacobians.dense(t) for t in range(steps)]), 300)
    assert (exact[-unread:] < -600).all()
    assert torch.allclose(whole[:-unread], exact[:-unread], rtol=0, atol=1e-10)
    assert torch.allclose(lags[-1, :-unread], exact[:-unread], rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", list_cells())
def test_every_lags_singular_values_equal_the_dense_products_within_its_resolved_range(cell, gen):
    """Every cell type's own structured Jacobians, ReLU and tanh: at each lag, where the dense product resolves its
    singular values, the two agree to that product's rounding (an SVD's error is about eps sigma_1, so
    eps e^(ln sigma_1 - ln sigma_i) in ln sigma_i: 1e-14 at the top, 1e-5 at 28 nats below it); a diverged sequence
    gives NaN for itself alone."""
    for nonlinearity in ("relu", "tanh") if get_cell(cell).nonlinearities is None else ("tanh",):
        stack, x, trace = _traced(nonlinearity, gen, t=30, cell=cell)
        jacobians, lags = stack.step_jacobians(trace, 0), [1, 2, 9, 30]
        dense = product_log_spectra(jacobians, lags)
        got = lag_log_singular_values(jacobians, lags)
        depth = dense[..., :1] - dense
        within = depth <= RESOLVED_PRODUCT_NATS["float64"]
        assert within[-1].sum() > within.shape[1] * within.shape[2]
        rounding = 1e-12 + 10 * torch.finfo(torch.float64).eps * torch.exp(depth[within])
        assert ((got[within] - dense[within]).abs() <= rounding).all(), nonlinearity
    x[25, 2, 0] = math.nan  # every state of sequence 2 from step 26 on: every lag's product holds one
    got = lag_log_singular_values(stack.step_jacobians(stack.trace(x), 0), [1, 5, 30])
    assert torch.isnan(got[:, :, 2]).all() and torch.isfinite(got[:, :, :2]).all()


def test_products_without_the_last_steps_zero_rows_keep_every_norm_and_singular_value(gen):
    """J_T's zero rows (units inactive at step T) are left out of the carried products, up to the sequence with the
    most nonzero rows: sequences with 2, 5, all 6 and 3 rows zero (the last with a NaN), against the explicit
    products' SVDs at every lag; the 2 directions left out of every sequence are exactly -inf."""
    n, steps, lags = 6, 12, [1, 2, 7, 12]
    dact = (torch.rand(steps, 4, n, generator=gen, dtype=torch.float64) > 0.3).double()
    dact[-1] = 1.0
    dact[-1, 0, :2] = dact[-1, 1, :5] = dact[-1, 2] = dact[-1, 3, 3:] = 0.0
    dact[3, 3, 1] = math.nan
    jacobians = ElmanJacobians(torch.randn(n, n, generator=gen, dtype=torch.float64), dact)
    log_norms, log_svals = product_log_norms(jacobians, lags, full_spectrum=True)
    spectra = product_log_spectra(jacobians, lags)
    for i, lag in enumerate(lags):
        product = _product(torch.stack([jacobians.dense(t) for t in range(steps - lag, steps)]))
        exact = torch.log(torch.linalg.svdvals(product[:3]))  # sequence 3 holds the NaN from lag 9 on
        resolved = exact[..., :1] - exact <= 20.0
        assert torch.allclose(log_norms[i, :3], exact[:, 0], rtol=0, atol=1e-12)
        assert torch.allclose(spectra[i, :3][resolved], exact[resolved], rtol=0, atol=1e-8)
        assert torch.isneginf(spectra[i, :3, 4:]).all() and torch.isfinite(spectra[i, :2, :1]).all()
        assert torch.isneginf(spectra[i, 2]).all() and torch.isneginf(log_norms[i, 2])
        assert torch.isnan(spectra[i, 3]).all() == (lag > 8) and torch.isfinite(spectra[i, 3, :1]).all() == (lag <= 8)
    torch.testing.assert_close(log_svals, spectra[-1], rtol=0, atol=0, equal_nan=True)


def test_dead_relu_product_is_minus_infinity():
    dact = torch.ones(10, 3)
    dact[4] = 0.0  # every unit inactive at one step cuts all paths
    log_norms, _ = product_log_norms(ElmanJacobians(torch.eye(3), dact), [1, 5, 6, 10])
    assert torch.isfinite(log_norms[:2]).all() and torch.isneginf(log_norms[2:]).all()


def test_non_finite_products_give_nan_not_an_error():
    dact = torch.ones(6, 3)
    dact[2, 0] = math.nan  # a diverged cell
    log_norms, log_svals = product_log_norms(ElmanJacobians(torch.eye(3), dact), [1, 6], full_spectrum=True)
    assert torch.isfinite(log_norms[0]) and torch.isnan(log_norms[1]) and torch.isnan(log_svals).all()


def _autograd_state_gradient_norms(stack, x, y):
    trace = stack.trace(x, grad_wrt_states=True)
    loss = ((trace.outputs[..., 0] - y) ** 2).sum()
    states = [s for layer in trace.states for s in layer]
    grads = torch.autograd.grad(loss, states, allow_unused=True)
    norms = [torch.zeros(s.shape[:-1], dtype=s.dtype) if g is None else g.norm(dim=-1) for s, g in zip(states, grads)]
    return trace, torch.stack(norms).reshape(stack.num_layers, -1, *norms[0].shape)


def _readout_grad(stack, trace, y):
    hidden = trace.hidden(stack.num_layers - 1)[1:].detach().requires_grad_()
    loss = ((stack.read_out(hidden)[..., 0] - y) ** 2).sum()
    return torch.autograd.grad(loss, hidden)[0]


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("readout", ["last", "all"])
def test_state_gradient_log_norms_equal_autograd(cell, readout, gen):
    """The log-scaled walk back through time and layers against one autograd backward (float64)."""
    stack = perturbed(make_stack(["identity", "orthogonal", "he"], "tanh", hidden=5, layers=2, cell=cell,
                                 readout=readout))
    x = torch.randn(15, 3, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(15, 1, 3, dtype=torch.float64) if readout == "all" else torch.randn(3, dtype=torch.float64)
    trace, reference = _autograd_state_gradient_norms(stack, x, y)
    ours = state_gradient_log_norms(stack, trace, _readout_grad(stack, trace, y)).exp()
    assert ours.shape == (2, 16, 3, 3)
    assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-14)


def test_state_gradient_far_below_float_range_is_exact():
    """A linear 0.5 I network over 1200 steps: dL/dh_t = 0.5^(T-t) dL/dh_T, down to 1e-361."""
    stack = make_stack(["scaled_identity:scale=0.5"], "linear", hidden=3)
    x = torch.randn(1200, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randn(2, dtype=torch.float64)
    trace = stack.trace(x)
    readout_grad = _readout_grad(stack, trace, y)
    log_norms = state_gradient_log_norms(stack, trace, readout_grad)[0, :, 0]  # (T + 1, B)
    at_end = readout_grad[-1, 0].norm(dim=-1).log()
    lags = torch.arange(1200, -1, -1, dtype=torch.float64)
    assert torch.allclose(log_norms, at_end + lags[:, None] * math.log(0.5), rtol=1e-12)
    assert log_norms[0].max() < -800  # e^-800: far below float64's 1e-308, still exact


def test_step_jacobians_autograd_shapes(gen):
    step = make_stack(["he"], "tanh").recurrent_step(0, 0)
    jac = step_jacobians_autograd(step, torch.randn(4, 3, 6, generator=gen, dtype=torch.float64),
                                  torch.randn(4, 3, 6, generator=gen, dtype=torch.float64))
    assert jac.shape == (4, 3, 6, 6)


def test_default_lags():
    lags = default_lags(784)
    assert lags[0] == 1 and lags[-1] == 784 and 25 <= len(lags) <= 31
    assert default_lags(1) == [1]
    with pytest.raises(ValueError, match="lags must lie in 1..10"):
        product_log_norms(ElmanJacobians(torch.eye(2), torch.ones(10, 2)), [0, 3])
