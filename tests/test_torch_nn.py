"""Trained torch.nn recurrent modules held in a stack: the stack computes what each module computes, its step
Jacobians multiply to the module's own autograd Jacobian, and a module it cannot hold is refused in one line."""

import pytest
import torch
from torch import nn

from rnn_dynamics import from_torch, get_cell, list_cells

#: Every module a registered cell type can hold (torch's defaults: tanh for nn.RNN and nn.RNNCell), and ReLU ones.
MODULE_TYPES = [kind for name in list_cells() for kind in get_cell(name).torch_modules]
CASES = [(kind, {}) for kind in MODULE_TYPES] + [(kind, {"nonlinearity": "relu"}) for kind in (nn.RNN, nn.RNNCell)]


def _case_id(case):
    return getattr(case, "__name__", None) or "-".join(map(str, case.values())) or "default"


def _modules(kind, options, count, layers=1, **shape):
    torch.manual_seed(0)
    layered = {"num_layers": layers} if issubclass(kind, nn.RNNBase) else {}
    return [kind(3, 5, **layered, **shape, **options).double() for _ in range(count)]


def _run(module, x, state=None):
    """(h_1..h_T, the final state) of ``module`` over x (T, B, I) from ``state`` (zero where None), in the state's
    form the module takes; a ...Cell applied step by step."""
    if isinstance(module, nn.RNNBase):
        return module(x, state)
    hidden = []
    for x_t in x:
        state = module(x_t, state)
        hidden.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(hidden), state


def test_every_torch_module_type_of_a_registered_cell_is_covered():
    assert {nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell} <= set(MODULE_TYPES)


@pytest.mark.parametrize("kind, options", CASES, ids=_case_id)
def test_the_stack_computes_what_each_module_computes(kind, options):
    """Two modules (of two layers, where they have layers; their own random weights and both biases), each with its
    readout: the stack's outputs at every step and at the last equal the modules' to float64 rounding."""
    modules = _modules(kind, options, 2, layers=2)
    readouts = [nn.Linear(5, 4).double() for _ in modules]
    x = torch.randn(9, 6, 3, dtype=torch.float64)
    every_step, last = from_torch(modules, readouts, readout="all")(x), from_torch(modules, readouts)(x)
    for cell, (module, linear) in enumerate(zip(modules, readouts)):
        hidden, _ = _run(module, x)
        assert torch.allclose(every_step[:, cell], linear(hidden), rtol=0, atol=1e-12)
        assert torch.allclose(last[cell], linear(hidden[-1]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind, options", CASES, ids=_case_id)
def test_the_stacks_step_jacobians_multiply_to_the_modules_own_jacobian(kind, options):
    """ds_T/ds_0 from the stack's analytic step Jacobians against torch.autograd through the module itself,
    from zero states (the LSTM's state is (h, c))."""
    (module,) = _modules(kind, options, 1)
    x = torch.randn(12, 1, 3, dtype=torch.float64)
    stack = from_torch(module)
    jacobians = stack.step_jacobians(stack.trace(x), 0)
    product = jacobians.dense(len(jacobians) - 1)
    for t in range(len(jacobians) - 2, -1, -1):
        product = product @ jacobians.dense(t)
    size = stack.state_size(5)

    def final_state(flat):
        parts = flat.reshape(size // 5, 1, 5)  # h (and c) of one sequence
        if isinstance(module, nn.RNNBase):
            parts = parts.unsqueeze(1)  # and of one layer
        _, final = _run(module, x, tuple(parts) if size > 5 else parts[0])
        return torch.cat([part.reshape(5) for part in (final if isinstance(final, tuple) else (final,))])

    reference = torch.autograd.functional.jacobian(final_state, torch.zeros(size, dtype=torch.float64))
    assert torch.allclose(product[0, 0], reference, rtol=0, atol=1e-12)


def test_a_module_without_biases_or_readout_is_held_with_zeros():
    (module,) = _modules(nn.GRU, {}, 1, bias=False)
    stack = from_torch(module, readout="all")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    assert torch.allclose(stack.trace(x).hidden(0)[1:, 0], module(x)[0], rtol=0, atol=1e-13)
    assert stack(x).shape == (4, 1, 2, 1) and not stack(x).any()


@pytest.mark.parametrize("modules, readouts, message", [
    (lambda: nn.Linear(3, 5), None, "Linear is not a recurrent module this toolkit can hold; valid: torch.nn.GRU, "),
    (lambda: nn.RNN(3, 5, bidirectional=True), None, "module 0 is bidirectional"),
    (lambda: nn.LSTM(3, 5, proj_size=2), None, "module 0 is projected"),
    (lambda: [nn.RNN(3, 5), nn.RNN(3, 6)], None, "module 1 .* differs from module 0"),
    (lambda: [nn.RNN(3, 5), nn.GRU(3, 5)], None, "module 1 \\(GRU"),
    (lambda: [nn.RNN(3, 5), nn.RNNCell(3, 5)], None, "module 1 \\(RNNCell"),
    (lambda: [nn.RNN(3, 5)] * 2, lambda: [nn.Linear(5, 2)], "1 readouts for 2 modules"),
    (lambda: nn.RNN(3, 5), lambda: nn.Linear(4, 2), "readouts must all be nn.Linear\\(5, O\\)"),
    (lambda: [], None, "no module given"),
])
def test_modules_it_cannot_hold_are_refused_in_one_line(modules, readouts, message):
    with pytest.raises(ValueError, match=message) as error:
        from_torch(modules(), readouts() if readouts else None)
    assert "\n" not in str(error.value)


def test_every_probe_records_a_held_module_through_a_probe_context():
    """The study's probes serve a held module as they serve a trained stack: each records every variable it
    declares, labelled with the name given for the module."""
    from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings, list_probes
    from rnn_dynamics.tasks import make_task

    torch.manual_seed(0)
    module = nn.RNN(2, 5, nonlinearity="relu").double()  # the adding task's two inputs
    task = make_task("adding", seq_len=12, preset="tiny").to(torch.float64)
    context = ProbeContext(from_torch(module, nn.Linear(5, 1).double()), task, 0, ProbeSettings(lags=(1, 4, 12)),
                           inits=["mine"])
    for name in list_probes():
        probe = PROBES.get(name)
        records = probe(context)
        assert set(records) == set(probe.variables), name
        assert all(list(array["init"].values) == ["mine"] for array in records.values()), name
