"""Fixed and slow points against closed-form answers, a root finder of their own, and autograd Jacobians."""

import math
import re

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from conftest import make_stack, perturbed
from rnn_dynamics.fixed_points import MAX_DAMPING, MIN_DAMPING, find_fixed_points, stack_fixed_points, start_states
from rnn_dynamics.models import list_cells
from rnn_dynamics.spectra import eigenvalues


def _set(stack, w_hh=None, bias=None):
    """Layer 0's recurrent matrix and bias, the same in every cell."""
    with torch.no_grad():
        for tensor, value in ((stack.w_hh[0], w_hh), (stack.bias[0], bias)):
            if value is not None:
                tensor.copy_(value.reshape(tensor.shape[1:]).expand_as(tensor))
    return stack


def _starts(stack, gen, count=5):
    states = torch.randn(stack.num_layers, stack.n_cells, count, stack.state_size(stack.hidden_size), generator=gen,
                         dtype=torch.float64)
    return list(states.unbind(0))


def test_a_linear_cell_ends_on_its_one_fixed_point_with_the_eigenvalues_of_w(gen):
    """h = W h + W_ih x + b has the one fixed point (I - W)^-1 (W_ih x + b) from anywhere, where dF/ds = W; the layer
    above is driven by that point, so its own is (I - W_1)^-1 (W_ih,1 h_0* + b_1)."""
    n = 6
    stack = make_stack(["orthogonal", "he"], nonlinearity="linear", hidden=n, layers=2, input_size=3)
    with torch.no_grad():
        for parameter in (*stack.w_hh, *stack.bias, *stack.w_ih):
            parameter.copy_(0.4 * torch.randn(parameter.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(3, generator=gen, dtype=torch.float64)
    found = stack_fixed_points(stack, _starts(stack, gen), constant_input=x)
    identity = torch.eye(n, dtype=torch.float64)
    below = x.expand(2, 5, 3)
    for layer, points in enumerate(found):
        w = stack.w_hh[layer].detach()  # (M, N, N)
        drive = below @ stack.w_ih[layer].detach().mT + stack.bias[layer].detach()
        expected = torch.linalg.solve(identity - w.unsqueeze(1), drive.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(points.states, expected, rtol=0, atol=1e-12)
        assert points.speed.max() < 1e-26
        assert torch.allclose(points.eigenvalues(), eigenvalues(w).unsqueeze(1).expand(-1, 5, -1), atol=1e-12)
        below = points.states


def test_tanh_units_that_only_feed_themselves_end_where_a_scalar_root_finder_does(gen):
    """W = w I makes every unit its own map h = tanh(w h + b_i), with one root for w < 1 (brentq finds it), and
    dF/dh = diag(w (1 - h*^2)) there."""
    n, w = 5, 0.8
    stack = make_stack(["identity"], nonlinearity="tanh", hidden=n)
    bias = torch.linspace(-1.5, 2.0, n, dtype=torch.float64)
    _set(stack, w_hh=w * torch.eye(n, dtype=torch.float64), bias=bias)
    points = stack_fixed_points(stack, _starts(stack, gen))[0]
    roots = torch.tensor([brentq(lambda h, b=b: math.tanh(w * h + b) - h, -1, 1, xtol=1e-15) for b in bias.tolist()],
                         dtype=torch.float64)
    assert torch.allclose(points.states, roots.expand(1, 5, n), rtol=0, atol=1e-13)
    slopes = torch.sort(w * (1 - roots ** 2), descending=True).values
    assert torch.allclose(points.eigenvalues().real, slopes.expand(1, 5, n), rtol=0, atol=1e-13)
    assert points.eigenvalues().imag.abs().max() == 0


def test_a_bistable_unit_has_three_fixed_points_and_the_searches_name_each_once():
    """h = tanh(2h + 0.1) has three roots (brentq on each bracket): searches started on both sides of each end on
    the nearest, and same_as groups the six searches into the three points; the middle one is unstable (slope > 1)."""
    w, b = 2.0, 0.1
    stack = _set(make_stack(["identity"], nonlinearity="tanh", hidden=1), w_hh=torch.tensor([[w]], dtype=torch.float64),
                 bias=torch.tensor([b], dtype=torch.float64))
    roots = [brentq(lambda h: math.tanh(w * h + b) - h, low, high, xtol=1e-15)
             for low, high in ((-1.0, -0.5), (-0.3, 0.3), (0.5, 1.0))]
    starts = torch.tensor([[[-0.9], [0.9], [-0.1], [-0.8], [0.0], [0.7]]], dtype=torch.float64)
    points = stack_fixed_points(stack, [starts])[0]
    order = [0, 2, 1, 0, 1, 2]  # the root each start lies nearest to, on its side of the unstable one
    assert torch.allclose(points.states[0, :, 0], torch.tensor([roots[i] for i in order], dtype=torch.float64),
                          rtol=0, atol=1e-13)
    assert points.same_as().tolist() == [[0, 1, 2, 0, 2, 1]]
    slopes = points.eigenvalues().real[0, :, 0]
    assert (slopes[[2, 4]] > 1).all() and (slopes[[0, 1, 3, 5]] < 1).all()


def test_searches_that_ended_on_one_point_are_grouped_with_the_first_of_them():
    """Grouping by distance relative to 1 + the norm, greedy in search order, in every cell of a batch; each search
    is grouped with a first one within the tolerance (in a chain 0.8e-6 apart, the third is a point of its own)."""
    from rnn_dynamics.fixed_points import FixedPoints

    a, b, c = torch.tensor([1.0, 0, 0]), torch.tensor([0, 5.0, 0]), torch.tensor([0, 0, 0.0])
    step = torch.tensor([0.8e-6, 0, 0])
    near = torch.tensor([0, 3e-6, 0])  # 3e-6 < 1e-6 (1 + 5): the same point as b; 2e-6 of a is not (1e-6 (1 + 1))
    states = torch.stack([torch.stack([a, b, a + 1e-7, c, b + near, a + torch.tensor([0, 0, 2.5e-6])]),
                          torch.stack([c, c + step, c + 2 * step, c, c, c])])
    zeros = torch.zeros(2, 6)
    points = FixedPoints(states, zeros, torch.zeros(2, 6, 3, 3), zeros.long())
    assert points.same_as().tolist() == [[0, 1, 0, 3, 1, 5], [0, 0, 2, 0, 0, 0]]
    assert points.same_as(tolerance=1e-9).tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 0, 0]]


def test_the_irnn_at_initialisation_stops_where_it_starts_with_eigenvalue_one_for_every_active_unit(gen):
    """W = I, b = 0, no input: every state h >= 0 is a fixed point, dF/dh = diag(h > 0); no search takes a step."""
    stack = make_stack(["identity"], nonlinearity="relu", hidden=6)
    _set(stack, bias=torch.zeros(6, dtype=torch.float64))
    starts = torch.relu(_starts(stack, gen)[0])
    points = stack_fixed_points(stack, [starts])[0]
    assert (points.iterations == 0).all() and torch.equal(points.states, starts) and (points.speed == 0).all()
    active = (starts > 0).sum(-1)
    moduli = points.eigenvalues().abs()
    assert torch.equal((moduli == 1).sum(-1), active) and torch.equal((moduli == 0).sum(-1), 6 - active)


def test_a_relu_map_with_no_fixed_point_ends_on_the_slowest_point_its_kink():
    """h -> relu(1.3 h + 0.5) has no fixed point; |F(h) - h| is least, 0.5 / 1.3, at the kink h = -0.5 / 1.3,
    where Gauss-Newton steps overshoot from either side: the damping grows until no step lowers q."""
    stack = make_stack(["identity"], nonlinearity="relu", hidden=1)
    _set(stack, w_hh=torch.tensor([[1.3]], dtype=torch.float64), bias=torch.tensor([0.5], dtype=torch.float64))
    starts = torch.tensor([[[2.0], [0.1], [-3.0]]], dtype=torch.float64)
    points = stack_fixed_points(stack, [starts], max_iterations=500)[0]
    assert points.iterations.max() < 500
    cut_short = stack_fixed_points(stack, [starts], max_iterations=3)[0]
    assert (cut_short.iterations == 3).all() and (cut_short.speed > points.speed).all()
    assert torch.allclose(points.speed, torch.full((1, 3), 0.5 * (0.5 / 1.3) ** 2, dtype=torch.float64), rtol=1e-8)
    assert torch.allclose(points.states, torch.full((1, 3, 1), -0.5 / 1.3, dtype=torch.float64), atol=1e-6)


def test_a_linear_map_that_holds_a_direction_its_drive_pushes_along_ends_on_the_least_squares_slow_point(gen):
    """h -> W h + b with W symmetric, eigenvalue 1 along v, the rest inside: no fixed point where v.b != 0, and
    ||F(h) - h|| = ||A h + b|| is least, |v.b|, where A h cancels the rest of b: q = (v.b)^2 / 2, reached from
    every start along a family of slow points h = -A^+ b + c v."""
    n = 4
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    w = q @ torch.diag(torch.tensor([1.0, 0.5, -0.3, 0.1], dtype=torch.float64)) @ q.T
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    stack = make_stack(["identity"], nonlinearity="linear", hidden=n)
    _set(stack, w_hh=w, bias=b)
    points = stack_fixed_points(stack, _starts(stack, gen, count=6))[0]
    v = q[:, 0]
    assert points.iterations.max() < 100
    assert torch.allclose(points.speed, torch.full((1, 6), 0.5 * float(v @ b) ** 2, dtype=torch.float64), rtol=1e-12)
    a = w - torch.eye(n, dtype=torch.float64)
    least_squares = -torch.linalg.pinv(a) @ b
    away = points.states[0] - least_squares
    off_the_line = away - (away @ v).unsqueeze(-1) * v  # q is flat at its minimum: an error d in h moves q by ~d^2
    assert off_the_line.abs().max() < 1e-8


def test_normal_equations_too_ill_conditioned_to_factor_take_no_step_until_the_damping_makes_them_solvable(gen):
    """A = dF/ds - I with singular values 1e9, 1e-3 and 0: A^T A + mu I is not positive definite in float64 for small
    mu. The search takes no step there (the map never sees a non-finite state) and ends no slower than it began."""
    n, identity = 3, torch.eye(3, dtype=torch.float64)
    for _ in range(50):  # whether rounding leaves A^T A + mu I indefinite depends on the basis: take one where it does
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        a = q @ torch.diag(torch.tensor([1e9, 1e-3, 0.0], dtype=torch.float64)) @ q.T
        if torch.linalg.cholesky_ex(a.T @ a + MIN_DAMPING * identity).info != 0:
            break
    assert torch.linalg.cholesky_ex(a.T @ a + MIN_DAMPING * identity).info != 0
    b = torch.randn(n, generator=gen, dtype=torch.float64)

    def evaluate(states):
        assert torch.isfinite(states).all()
        return states + states @ a.T + b, (identity + a).expand(*states.shape, n)

    starts = torch.randn(5, n, generator=gen, dtype=torch.float64)
    points = find_fixed_points(evaluate, starts)
    assert (points.speed <= 0.5 * (starts @ a.T + b).square().sum(-1)).all() and points.iterations.max() < 100


def test_searches_of_a_batch_keep_their_own_damping():
    """A search beside others ends where it ends alone: the same states, bit for bit."""
    w = torch.tensor([[[1.3]], [[0.5]]], dtype=torch.float64)

    def evaluate(states):  # two independent ReLU units, as a stack of two cells would be
        pre = states @ w.mT + 0.5
        return torch.relu(pre), (pre > 0).to(states.dtype).unsqueeze(-1) * w.unsqueeze(1)

    starts = torch.tensor([[[2.0], [-3.0]], [[4.0], [1.0]]], dtype=torch.float64)
    together = find_fixed_points(evaluate, starts, max_iterations=500)
    for cell in range(2):
        for start in range(2):
            alone = find_fixed_points(lambda s: tuple(v[cell:cell + 1] for v in evaluate(s.expand(2, 1, 1))),
                                      starts[cell:cell + 1, start:start + 1], max_iterations=500)
            assert torch.equal(alone.states[0, 0], together.states[cell, start])
    assert torch.allclose(together.states[1], torch.ones(2, 1, dtype=torch.float64))  # h = 0.5 h + 0.5


@pytest.mark.parametrize("cell", list_cells())
def test_every_cell_types_points_are_fixed_under_its_own_step_with_the_jacobian_autograd_gives(cell, gen):
    """With recurrent blocks small enough that each step contracts (one fixed point, which every search must reach),
    each layer's point is fixed under the stack's own step (float64), layer 1 driven by layer 0's point, and the
    Jacobians there equal torch.autograd.functional.jacobian of the cell's one-sample step."""
    stack = perturbed(make_stack(["orthogonal", "xavier"], nonlinearity="tanh", hidden=5, layers=2, cell=cell), 0.2)
    with torch.no_grad():
        for weight in stack.w_hh:
            weight.mul_(0.3)
    trace = stack.trace(torch.randn(12, 3, 2, generator=gen, dtype=torch.float64))
    starts = [start_states(trace, layer, 4) for layer in range(2)]
    found = stack_fixed_points(stack, starts)
    below = torch.zeros(1, 4, 2, dtype=torch.float64)
    for layer, points in enumerate(found):
        drive = stack.layer_drive(layer, below)[0].detach()
        with torch.no_grad():
            stepped = stack.recurrence(layer)(points.states, drive)[0]
        assert (stepped - points.states).norm(dim=-1).max() < 1e-12
        for m in range(2):
            step = stack.recurrent_step(layer, m)
            for k in range(4):
                reference = torch.autograd.functional.jacobian(lambda s: step(s, drive[m, k]), points.states[m, k])
                assert torch.allclose(points.jacobians[m, k], reference, rtol=0, atol=1e-12)
        below = points.states[..., :5].unsqueeze(0)


def test_a_cell_type_without_analytic_jacobians_is_served_by_the_generic_autograd_path(gen, monkeypatch):
    """A user's cell type that keeps the protocol's torch.func step Jacobians finds the same points as the analytic
    path of the built-in cell."""
    from rnn_dynamics.models.base import RecurrentStack

    stack = perturbed(make_stack(["orthogonal", "he"], nonlinearity="tanh", hidden=4), 0.2)
    with torch.no_grad():
        stack.w_hh[0].mul_(0.3)
    starts = _starts(stack, gen)
    analytic = stack_fixed_points(stack, starts)[0]
    monkeypatch.setattr(type(stack), "step_jacobians", RecurrentStack.step_jacobians)
    generic = stack_fixed_points(stack, starts)[0]
    assert torch.allclose(generic.states, analytic.states, rtol=0, atol=1e-13)
    assert torch.allclose(generic.jacobians, analytic.jacobians, rtol=0, atol=1e-13)


def test_the_starts_are_states_the_sequences_visited_spread_over_sequences_and_time(gen):
    stack = make_stack(["orthogonal", "he"], nonlinearity="tanh", hidden=3)
    trace = stack.trace(torch.randn(10, 3, 2, generator=gen, dtype=torch.float64))
    starts = start_states(trace, 0, 4)
    states = trace.stacked_states(0)
    assert starts.shape == (2, 4, 3)
    for k, (time, sequence) in enumerate([(2, 0), (5, 1), (8, 2), (10, 0)]):  # round((k + 1) 10 / 4), k mod 3
        assert torch.equal(starts[:, k], states[time, :, sequence])


def test_bad_search_settings_and_starts_are_refused_in_one_line(gen):
    stack = make_stack(["identity"], hidden=3, layers=2)
    with pytest.raises(ValueError, match="one .* tensor per layer \\(2\\), got 1"):
        stack_fixed_points(stack, _starts(stack, gen)[:1])
    with pytest.raises(ValueError, match=re.escape("starts[1] has shape (1, 4, 3); every layer's must be (M, K, S) = "
                                                   "(1, 5, 3), the same K in every layer")):
        stack_fixed_points(stack, [_starts(stack, gen)[0], torch.zeros(1, 4, 3, dtype=torch.float64)])
    with pytest.raises(ValueError, match=re.escape("starts[0] has shape (5, 3); every layer's must be (M, K, S) = "
                                                   "(1, K, 3)")):
        stack_fixed_points(stack, [torch.zeros(5, 3), torch.zeros(5, 3)])
    with pytest.raises(ValueError, match=re.escape("constant_input has shape (3,); it must be (2,)")):
        stack_fixed_points(stack, _starts(stack, gen), constant_input=torch.zeros(3))
    with pytest.raises(ValueError, match="max_iterations must be >= 0 and damping > 0"):
        find_fixed_points(lambda s: (s, torch.eye(3).expand(*s.shape, 3)), torch.zeros(1, 3), max_iterations=-1)
    assert MAX_DAMPING > 1 / np.finfo(np.float64).eps ** 0.5  # the damping rises past any useful step


def test_the_probe_records_the_irnns_visited_states_as_fixed_points_at_initialisation():
    """An IRNN with zero bias, probed on the adding task: every start is a state it visited (h >= 0), so a fixed
    point of speed 0 with ||h|| its norm, and |lambda| = 1 for each of its active units, 0 for the others; the
    eigenvalues are stored along eig for each start."""
    from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings
    from rnn_dynamics.probes.fixed_points import SEARCHES
    from rnn_dynamics.tasks import make_task

    stack = make_stack(["identity", "identity"], nonlinearity="relu", hidden=6)
    _set(stack, bias=torch.zeros(6, dtype=torch.float64))
    task = make_task("adding", seq_len=12, preset="tiny").to(torch.float64)
    context = ProbeContext(stack, task, 0, ProbeSettings(lags=(1, 12), probe_batch=3), inits=["a", "b"])
    records = PROBES.get("fixed_points")(context)
    starts = start_states(context.trace, 0, SEARCHES)  # (M, K, N)
    assert (records["fixed_point_speed"] == 0).all() and (records["fixed_point_iterations"] == 0).all()
    assert np.allclose(records["fixed_point_norm"].sel(layer=0), starts.norm(dim=-1), rtol=1e-15)
    moduli = np.hypot(records["fixed_point_eig_real"], records["fixed_point_eig_imag"]).sel(layer=0)
    assert moduli.dims == ("init", "eig", "start")
    assert np.array_equal((moduli == 1).sum("eig"), (starts > 0).sum(-1)) and (starts > 0).sum() > 0
    assert np.array_equal((moduli == 0).sum("eig"), (starts == 0).sum(-1))


def test_the_probe_holds_the_probe_sequences_mean_input_where_asked(gen):
    """A linear cell's one fixed point with the input held at the probe sequences' mean x̄ over steps and batch:
    (I - W)^-1 (W_ih x̄ + b); at zero, (I - W)^-1 b. The datasets say which (attr input_held)."""
    from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings
    from rnn_dynamics.tasks import make_task

    n = 5
    stack = make_stack(["orthogonal"], nonlinearity="linear", hidden=n)
    with torch.no_grad():
        for parameter in (stack.w_hh[0], stack.bias[0], stack.w_ih[0]):
            parameter.copy_(0.4 * torch.randn(parameter.shape, generator=gen, dtype=torch.float64))
    task = make_task("adding", seq_len=12, preset="tiny").to(torch.float64)
    w, w_ih, b = stack.w_hh[0][0], stack.w_ih[0][0], stack.bias[0][0, 0]
    for held in ("zero", "mean"):
        context = ProbeContext(stack, task, 0, ProbeSettings(lags=(1,), probe_batch=3, fixed_point_input=held), ["a"])
        drive = b + (w_ih @ context.x.mean(dim=(0, 1)) if held == "mean" else 0)
        point = torch.linalg.solve(torch.eye(n, dtype=torch.float64) - w, drive)
        records = PROBES.get("fixed_points")(context)
        np.testing.assert_allclose(records["fixed_point_norm"].sel(layer=0, init="a"), point.norm().item(), rtol=1e-12)
    assert PROBES.get("fixed_points").attrs(ProbeSettings((1,), fixed_point_input="mean"))["fixed_point_speed"] == \
        {"input_held": "the probe sequences' mean input"}


def test_an_unknown_held_input_is_refused_naming_the_valid_ones():
    from rnn_dynamics.config import ConfigError, StudyConfig

    with pytest.raises(ConfigError, match=r"^fixed_point_input 'median' is not one of zero, mean$"):
        StudyConfig(fixed_point_input="median").validate()
