import pytest
import torch

from conftest import make_stack

INITS = ["identity", "orthogonal", "he"]


@pytest.fixture
def x(gen):
    return torch.randn(12, 3, 2, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("layers", [1, 2])
def test_stack_matches_torch_nn_rnn(nonlinearity, layers, x):
    stack = make_stack(INITS, nonlinearity, hidden=5, layers=layers)
    out = stack(x)
    for cell in range(len(INITS)):
        rnn = torch.nn.RNN(2, 5, num_layers=layers, nonlinearity=nonlinearity).double()
        with torch.no_grad():
            for layer in range(layers):
                getattr(rnn, f"weight_ih_l{layer}").copy_(stack.w_ih[layer][cell])
                getattr(rnn, f"weight_hh_l{layer}").copy_(stack.w_hh[layer][cell])
                getattr(rnn, f"bias_ih_l{layer}").copy_(stack.bias[layer][cell, 0])
                getattr(rnn, f"bias_hh_l{layer}").zero_()
        seq, _ = rnn(x)
        expected = seq[-1] @ stack.w_out[cell].T + stack.b_out[cell]
        assert torch.allclose(out[cell], expected, atol=1e-12)


def test_cells_are_independent(x):
    stack = make_stack(INITS, "tanh")
    out = stack(x)
    for cell, init in enumerate(INITS):
        alone = make_stack([init], "tanh")
        assert torch.allclose(out[cell], alone(x)[0], atol=1e-13)


def test_cells_share_input_and_readout_weights_only():
    stack = make_stack(INITS, "relu")
    assert torch.equal(stack.w_ih[0][0], stack.w_ih[0][2])
    assert torch.equal(stack.w_out[0], stack.w_out[1])
    assert not torch.equal(stack.w_hh[0][1], stack.w_hh[0][2])


def test_trace_keeps_states_and_preactivations(x):
    stack = make_stack(INITS, "relu", layers=2)
    trace = stack.trace(x)
    assert len(trace.states) == 2 and len(trace.states[0]) == 13 and len(trace.preacts[1]) == 12
    assert torch.count_nonzero(trace.states[0][0]) == 0
    for layer in range(2):
        assert torch.equal(trace.stacked_states(layer)[1:], torch.relu(trace.stacked_preacts(layer)))
    h1 = trace.states[0][1]
    assert torch.allclose(trace.preacts[1][0], torch.einsum("mbi,mni->mbn", h1, stack.w_ih[1]) + stack.bias[1])


def test_readout_all_gives_every_step(x):
    stack = make_stack(INITS, "tanh", readout="all", output_size=4)
    out = stack(x)
    assert out.shape == (12, 3, 3, 4)
    assert torch.allclose(out[-1], make_stack(INITS, "tanh", output_size=4)(x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=0), "hidden_size must be a positive integer"),
    (dict(nonlinearity="gelu"), "unknown nonlinearity 'gelu'"),
    (dict(readout="mean"), "unknown readout 'mean'"),
])
def test_bad_shapes(kwargs, message):
    from rnn_dynamics.cells import ElmanStack
    base = dict(n_cells=2, input_size=2, hidden_size=4, output_size=1)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ElmanStack(**base)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(x):
    stack = make_stack(INITS, "relu")
    assert torch.allclose(stack.cuda()(x.cuda()).cpu(), make_stack(INITS, "relu")(x), atol=1e-10)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "linear"])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_fused_recurrence_gradients_equal_autograd_loop(nonlinearity, readout, x):
    """The training path (hand-written backward) against autograd through the plain loop."""
    stack = make_stack(INITS, nonlinearity, layers=2, readout=readout, output_size=2)
    target = torch.randn_like(stack(x))
    fused_loss = ((stack(x) - target) ** 2).sum()
    fused = torch.autograd.grad(fused_loss, list(stack.parameters()))
    loop_loss = ((stack.trace(x).outputs - target) ** 2).sum()
    loop = torch.autograd.grad(loop_loss, list(stack.parameters()))
    assert torch.allclose(fused_loss, loop_loss, rtol=1e-12)
    for a, b in zip(fused, loop):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fused_recurrence_passes_gradcheck(gen):
    from rnn_dynamics.cells import ElmanRecurrence
    drive = torch.randn(5, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = (0.5 * torch.randn(2, 4, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda d, w: ElmanRecurrence.apply(d, w, "tanh"), (drive, weight))


def test_bias_initialisation_is_configurable():
    stack = make_stack(INITS, "relu", layers=2)
    assert torch.count_nonzero(stack.bias[0]) == 0
    from rnn_dynamics.cells import ElmanStack
    biased = ElmanStack.from_inits(INITS, 2, 5, 1, "relu", num_layers=2, bias=0.1)
    assert torch.equal(biased.bias[1], torch.full_like(biased.bias[1], 0.1))
    assert torch.count_nonzero(biased.b_out) == 0
