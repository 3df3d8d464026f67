"""Every registered cell type: fast path against the traced loop, against torch.nn, and trained alone."""

import numpy as np
import pytest
import torch

from conftest import gradients_through_both_outputs, make_stack, perturbed
from rnn_dynamics.config import TrainConfig
from rnn_dynamics.models import CELLS, RecurrentStack, get_cell, list_cells
from rnn_dynamics.tasks import make_task
from rnn_dynamics.train import train_stack

INITS = ["identity", "orthogonal", "he"]
CELL_NONLINEARITIES = [(cell, nl) for cell, cls in CELLS.items()
                       for nl in (cls.nonlinearities or ("relu", "tanh", "linear"))]


@pytest.fixture
def x(gen):
    return torch.randn(12, 3, 2, generator=gen, dtype=torch.float64)


def test_registry_has_the_papers_cells_and_a_clear_error():
    assert {"elman", "lstm", "gru"} <= set(list_cells())
    with pytest.raises(ValueError, match="unknown cell 'rnn'; valid cells: elman, gru, lstm"):
        get_cell("rnn")


@pytest.mark.parametrize("cell, nonlinearity", CELL_NONLINEARITIES)
@pytest.mark.parametrize("readout", ["last", "all"])
def test_fast_path_equals_traced_loop_values_and_gradients(cell, nonlinearity, readout, x):
    """The training path (hand-written backward) against autograd through the plain loop."""
    stack = perturbed(make_stack(INITS, nonlinearity, hidden=5, layers=2, readout=readout, output_size=2, cell=cell))
    target = torch.randn_like(stack(x))
    fast_loss = ((stack(x) - target) ** 2).sum()
    fast = torch.autograd.grad(fast_loss, list(stack.parameters()))
    loop_loss = ((stack.trace(x).outputs - target) ** 2).sum()
    loop = torch.autograd.grad(loop_loss, list(stack.parameters()))
    assert torch.allclose(fast_loss, loop_loss, rtol=1e-12)
    for a, b in zip(fast, loop):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, b.abs().max().item()))


FUSED_CELLS = [cell for cell, cls in CELLS.items() if cls.fused is not None]


@pytest.mark.parametrize("cell", FUSED_CELLS)
@pytest.mark.parametrize("uses", [("steps",), ("final",), ("steps", "final")])
def test_the_fused_recurrence_takes_gradients_from_every_step_and_from_the_final_state(cell, uses, x):
    """Both outputs of a cell's fused Function carry gradient, alone or together: h_1..h_T, and the final full
    state s_T that a ``last`` readout reads h_T from (the LSTM's holds c_T too); against autograd through the
    traced loop, from a carried initial state."""
    stack = perturbed(make_stack(INITS, "tanh", hidden=5, cell=cell))
    size = type(stack).state_size(5)
    initial = 0.5 * torch.randn(1, len(INITS), x.shape[1], size, generator=torch.Generator().manual_seed(1),
                                dtype=torch.float64)
    steps_out, final_out = stack.fused.apply(stack.layer_drive(0, x), initial[0], *stack.recurrent_params(0),
                                             stack.activation)
    trace = stack.trace(x, initial)
    fused = gradients_through_both_outputs(stack, steps_out, final_out, torch.Generator().manual_seed(2), uses)
    loop = gradients_through_both_outputs(stack, trace.hidden(0)[1:], trace.states[0][-1],
                                          torch.Generator().manual_seed(2), uses)
    for (name, _), a, b in zip(stack.named_parameters(), fused, loop):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_a_forward_without_gradients_keeps_no_buffers_for_a_backward_and_gives_the_same_numbers(cell, x,
                                                                                                monkeypatch):
    """Under no_grad (a test evaluation, a probe's forward) the fused Function is told that no input needs a
    gradient, which torch does not tell it (its needs_input_grad ignores no_grad), so the loop keeps no cell-major
    copy of its states for a backward (Elman, batch 256 x 6 cells, T = 784: 0.68x the time); outputs and final
    states are those with gradients on, to rounding: the readout and the layer above read the states in another
    memory layout (time-major, not cell-major), which may sum their products in another order."""
    import sys

    stack = perturbed(make_stack(INITS, "tanh", hidden=5, layers=2, readout="all", cell=cell))
    module = sys.modules[type(stack).fused.__module__]
    copies = []

    def spy(by_step, copy):
        copies.append(copy)
        return base_cell_major(by_step, copy)
    base_cell_major = module.cell_major
    monkeypatch.setattr(module, "cell_major", spy)
    with torch.no_grad():
        without = stack.forward_with_state(x)
    assert copies == [False, False]
    copies.clear()
    with_grad = stack.forward_with_state(x)
    assert copies == [True, True]
    for a, b in zip(without, with_grad):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("inputs", [1, 2])
def test_the_shared_input_drive_passes_gradcheck_unsplit_and_split(inputs, gen, monkeypatch):
    """bias + x W^T for x shared by every cell, with its own backward: gradients of x, W and b against finite
    differences, with dL/dW as one bmm and (as on a GPU) over chunks of the rows: 24 rows in 2, 3 or 4 chunks."""
    from rnn_dynamics.models import _drive

    x = torch.randn(24, inputs, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 5, inputs, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 1, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_drive.SharedInputDrive.apply, (x, w, b))
    monkeypatch.setattr(_drive, "SPLIT_DEVICES", ("cpu",))
    for rows, chunks in ((12, 2), (8, 3), (6, 4)):
        monkeypatch.setattr(_drive, "SPLIT_ROWS", rows)
        assert _drive.chunks_for(24, inputs, x.device) == chunks
        assert torch.autograd.gradcheck(_drive.SharedInputDrive.apply, (x, w, b))


@pytest.mark.parametrize("inputs", [1, 2])
def test_the_shared_input_drive_is_bias_plus_the_product_in_cell_major_memory(inputs, gen):
    """One input value a row (an elementwise product) or two (a bmm): bias + x W^T per cell, (M, K, P) contiguous,
    against the sums written out in float64."""
    from rnn_dynamics.models._drive import SharedInputDrive

    x = torch.randn(50, inputs, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 7, inputs, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 1, 7, generator=gen, dtype=torch.float64)
    drive = SharedInputDrive.apply(x, w, b)
    expected = b + sum(x[None, :, i, None] * w[:, None, :, i] for i in range(inputs))
    assert drive.shape == (3, 50, 7) and drive.is_contiguous()
    torch.testing.assert_close(drive, expected, rtol=1e-14, atol=1e-14)


def test_the_weight_gradient_is_split_on_a_gpu_only_for_long_narrow_inputs():
    """Pixel MNIST at batch 256 (200,704 rows, one input) in 49 chunks of 4,096 rows on CUDA; one bmm on the CPU,
    for an input wider than 16 or for fewer rows than two chunks; a prime row count stays whole."""
    from rnn_dynamics.models._drive import chunks_for

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert chunks_for(784 * 256, 1, cuda) == 49 and chunks_for(784 * 256, 1, cpu) == 1
    assert chunks_for(784 * 256, 17, cuda) == 1 and chunks_for(8191, 1, cuda) == 1
    assert chunks_for(8192, 2, cuda) == 2 and chunks_for(8209, 1, cuda) == 1


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_training_with_the_weight_gradient_split_gives_the_unsplit_gradients(cell, gen, monkeypatch):
    """The split that a GPU takes, forced on the CPU: every parameter's gradient of a stack equals the one bmm's
    to float64 rounding (36 rows in 4 chunks of 9)."""
    from rnn_dynamics.models import _drive

    stack = perturbed(make_stack(INITS, "tanh", hidden=5, layers=2, cell=cell))
    x = torch.randn(12, 3, 2, generator=gen, dtype=torch.float64)
    whole = torch.autograd.grad(stack(x).square().sum(), list(stack.parameters()))
    monkeypatch.setattr(_drive, "SPLIT_DEVICES", ("cpu",))
    monkeypatch.setattr(_drive, "SPLIT_ROWS", 9)
    assert _drive.chunks_for(36, 2, x.device) == 4
    split = torch.autograd.grad(stack(x).square().sum(), list(stack.parameters()))
    for (name, _), a, b in zip(stack.named_parameters(), split, whole):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("cell", list_cells())
def test_fast_path_passes_gradcheck(cell, gen):
    """Finite differences against the hand-written backward, for every parameter of the stack."""
    stack = perturbed(make_stack(["he", "orthogonal"], "tanh", hidden=3, cell=cell))
    x = torch.randn(5, 2, 2, generator=gen, dtype=torch.float64)
    names = [name for name, _ in stack.named_parameters()]
    values = tuple(p.detach().clone().requires_grad_() for p in stack.parameters())

    def forward(*params):
        return torch.func.functional_call(stack, dict(zip(names, params)), (x,))

    assert torch.autograd.gradcheck(forward, values)


@pytest.mark.parametrize("cell", list_cells())
def test_cells_are_independent_and_share_input_and_readout_weights(cell, x):
    stack = make_stack(INITS, "tanh", cell=cell)
    out = stack(x)
    for index, init in enumerate(INITS):
        assert torch.allclose(out[index], make_stack([init], "tanh", cell=cell)(x)[0], atol=1e-13)
    assert torch.equal(stack.w_ih[0][0], stack.w_ih[0][2]) and torch.equal(stack.w_out[0], stack.w_out[1])
    assert not torch.equal(stack.w_hh[0][1], stack.w_hh[0][2])


@pytest.mark.parametrize("cell", list_cells())
def test_an_init_spec_fills_every_gate_block(cell):
    stack = make_stack(["scaled_identity:scale=0.5", "orthogonal"], "tanh", hidden=4, cell=cell)
    blocks = stack.recurrent_blocks()  # (M, L, G, N, N)
    assert blocks.shape == (2, 1, len(stack.gates), 4, 4)
    assert torch.allclose(blocks[0], 0.5 * torch.eye(4, dtype=torch.float64).expand_as(blocks[0]))
    for gate in range(len(stack.gates)):
        q = blocks[1, 0, gate]
        assert torch.allclose(q.T @ q, torch.eye(4, dtype=torch.float64), atol=1e-6)  # stored in float32
    if len(stack.gates) > 1:  # each gate's block is its own draw
        assert not torch.equal(blocks[1, 0, 0], blocks[1, 0, 1])


def test_elman_matches_torch_nn_rnn(x):
    for nonlinearity in ("relu", "tanh"):
        stack = make_stack(INITS, nonlinearity, hidden=5, layers=2)
        out = stack(x)
        for cell in range(len(INITS)):
            rnn = torch.nn.RNN(2, 5, num_layers=2, nonlinearity=nonlinearity).double()
            with torch.no_grad():
                for layer in range(2):
                    getattr(rnn, f"weight_ih_l{layer}").copy_(stack.w_ih[layer][cell])
                    getattr(rnn, f"weight_hh_l{layer}").copy_(stack.w_hh[layer][cell])
                    getattr(rnn, f"bias_ih_l{layer}").copy_(stack.bias[layer][cell, 0])
                    getattr(rnn, f"bias_hh_l{layer}").zero_()
            seq, _ = rnn(x)
            assert torch.allclose(out[cell], seq[-1] @ stack.w_out[cell].T + stack.b_out[cell], atol=1e-12)


def test_lstm_matches_torch_nn_lstm(x):
    stack = perturbed(make_stack(INITS, "tanh", hidden=5, cell="lstm"))
    hidden = stack.trace(x).hidden(0)[1:]
    order = [0, 1, 3, 2]  # torch stores i, f, g, o; the stack i, f, o, g
    for cell in range(len(INITS)):
        lstm = torch.nn.LSTM(2, 5).double()
        with torch.no_grad():
            lstm.weight_hh_l0.copy_(stack.w_hh[0][cell].reshape(4, 5, 5)[order].reshape(20, 5))
            lstm.weight_ih_l0.copy_(stack.w_ih[0][cell].reshape(4, 5, 2)[order].reshape(20, 2))
            lstm.bias_ih_l0.copy_(stack.bias[0][cell, 0].reshape(4, 5)[order].reshape(20))
            lstm.bias_hh_l0.zero_()
        seq, _ = lstm(x)
        assert torch.allclose(hidden[:, cell], seq, atol=1e-13)


def test_gru_matches_torch_nn_gru(x):
    stack = perturbed(make_stack(INITS, "tanh", hidden=5, cell="gru"))
    hidden = stack.trace(x).hidden(0)[1:]
    for cell in range(len(INITS)):
        gru = torch.nn.GRU(2, 5).double()
        with torch.no_grad():
            gru.weight_hh_l0.copy_(stack.w_hh[0][cell])
            gru.weight_ih_l0.copy_(stack.w_ih[0][cell])
            gru.bias_ih_l0.copy_(stack.bias[0][cell, 0])
            gru.bias_hh_l0.zero_()
            gru.bias_hh_l0[10:].copy_(stack.b_hn[0][cell, 0])
        seq, _ = gru(x)
        assert torch.allclose(hidden[:, cell], seq, atol=1e-13)


def test_lstm_forget_bias_option():
    stack = make_stack(["identity"], "tanh", hidden=3, cell="lstm", forget_bias=2.5)
    bias = stack.bias[0][0, 0].reshape(4, 3)
    assert torch.equal(bias[1], torch.full((3,), 2.5, dtype=torch.float64))
    assert torch.count_nonzero(bias[[0, 2, 3]]) == 0
    assert make_stack(["identity"], "tanh", hidden=3, cell="lstm").bias[0][0, 0, 3:6].eq(1.0).all()  # default 1.0
    with pytest.raises(ValueError, match="cell 'elman' has no option 'forget_bias'; its options: none"):
        make_stack(["identity"], cell="elman", forget_bias=1.0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_refuse_a_nonlinearity_they_cannot_take(cell):
    message = f"cell '{cell}' cannot take nonlinearity 'linear'; valid for {cell}: tanh, relu"
    with pytest.raises(ValueError, match=message):
        make_stack(["identity"], "linear", cell=cell)


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_each_cell_trains_as_if_alone(cell, optimizer):
    task = make_task("adding", seq_len=10, seed=0, batch_size=8, preset="tiny")
    task.train_x, task.train_y = task.train_x.double(), task.train_y.double()
    config = TrainConfig(steps=8, lr=0.01, optimizer=optimizer, clip=0.5, probe_every=0)
    stack = make_stack(INITS, "tanh", cell=cell)
    result = train_stack(stack, task, config)
    for index, init in enumerate(INITS):
        alone = make_stack([init], "tanh", cell=cell)
        alone_result = train_stack(alone, task, config)
        np.testing.assert_allclose(result.train_loss[:, index], alone_result.train_loss[:, 0], rtol=1e-9)
        for p_stack, p_alone in zip(stack.parameters(), alone.parameters()):
            assert torch.allclose(p_stack[index], p_alone[0], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("cell", list_cells())
def test_parameter_count_is_the_real_count(cell):
    stack = make_stack(["identity"], "tanh", hidden=4, layers=2, input_size=3, output_size=2, cell=cell)
    assert sum(p[0].numel() for p in stack.parameters()) == type(stack).parameter_count(3, 4, 2, 2)


def test_a_fused_recurrence_whose_final_state_has_no_gradient_still_trains_a_last_readout(x):
    """A user's Function may mark s_T non-differentiable (the contract before the built-in cells let gradients
    through it): a ``last`` readout then reads h_T from the step outputs, with the same gradients."""
    from rnn_dynamics.models.elman import ElmanRecurrence, ElmanStack

    class FrozenFinal(ElmanRecurrence):
        @staticmethod
        def forward(ctx, *args):
            steps_out, final = ElmanRecurrence.forward(ctx, *args)
            ctx.mark_non_differentiable(final)
            return steps_out, final

    class Frozen(ElmanStack):
        fused = FrozenFinal

    built_in = perturbed(make_stack(INITS, "tanh", hidden=5, layers=2))
    frozen = Frozen.from_inits(INITS, 2, 5, 1, "tanh", 2).double()
    frozen.load_state_dict(built_in.state_dict())
    grads = [torch.autograd.grad(stack(x).square().sum(), list(stack.parameters())) for stack in (frozen, built_in)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_base_class_fallbacks_cover_a_new_cell_type(x):
    """A user's cell written as a step function alone gets the traced forward and autograd Jacobians."""

    class Leaky(RecurrentStack):
        """h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + drive)."""

        gates = ("recurrent",)

        def step(self, params, state, drive):
            (weight,) = params
            pre = drive + torch.matmul(state, weight.mT)
            return 0.7 * state + 0.3 * torch.tanh(pre), pre

    stack = Leaky.from_inits(["orthogonal"], 2, 4, 1, "tanh", input_std=0.5).double()
    trace = stack.trace(x)
    jac = stack.step_jacobians(trace, 0)
    pre = trace.stacked_preacts(0)
    derivative = 1 - torch.tanh(pre[5, 0, 1]) ** 2
    expected = 0.7 * torch.eye(4, dtype=torch.float64) + 0.3 * derivative[:, None] * stack.w_hh[0][0]
    assert torch.allclose(jac.dense(5)[0, 1], expected, atol=1e-12)
    assert torch.equal(stack(x), trace.outputs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", list_cells())
def test_cuda_matches_cpu(cell, x):
    stack = make_stack(INITS, "tanh", cell=cell)
    assert torch.allclose(stack.cuda()(x.cuda()).cpu(), make_stack(INITS, "tanh", cell=cell)(x), atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", list_cells())
def test_training_on_cuda_matches_cpu(cell):
    """The loop that keeps losses and divergence on the device trains as on the CPU (float64)."""
    task = make_task("adding", seq_len=20, seed=0, batch_size=8, preset="tiny").to(torch.float64)
    config = TrainConfig(steps=6, lr=0.01, optimizer="adam", clip=1.0, probe_every=0)
    on_cpu, on_gpu = make_stack(INITS, "tanh", cell=cell), make_stack(INITS, "tanh", cell=cell).cuda()
    losses_cpu, losses_gpu = train_stack(on_cpu, task, config).train_loss, train_stack(on_gpu, task, config).train_loss
    np.testing.assert_allclose(losses_gpu, losses_cpu, rtol=1e-10)
    for p_cpu, p_gpu in zip(on_cpu.parameters(), on_gpu.parameters()):
        assert torch.allclose(p_gpu.cpu(), p_cpu, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", list_cells())
def test_cuda_gradients_with_the_input_weight_gradient_split_match_one_bmm(cell, gen, monkeypatch):
    """On a GPU the first layer's dL/dW_ih is split over chunks of rows (T = 784, batch 16: 12,544 rows, 2
    chunks), as the CPU's one bmm would not be: every gradient equals the unsplit one's to float32 rounding."""
    from rnn_dynamics.models import _drive

    stack = make_stack(INITS, "tanh", hidden=100, input_size=1, cell=cell, input_std=0.3).to("cuda", torch.float32)
    x = torch.rand(784, 16, 1, generator=gen).to("cuda")
    assert _drive.chunks_for(784 * 16, 1, x.device) == 2
    split = torch.autograd.grad(stack(x).square().sum(), list(stack.parameters()))
    monkeypatch.setattr(_drive, "SPLIT_DEVICES", ())
    whole = torch.autograd.grad(stack(x).square().sum(), list(stack.parameters()))
    for (name, _), a, b in zip(stack.named_parameters(), split, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()), msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", list_cells())
def test_probes_of_a_cuda_stack_match_the_cpu(cell):
    """Probes of small matrix chains run on a CPU copy of a GPU stack, the test evaluation on the GPU."""
    from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings

    task = make_task("adding", seq_len=20, seed=0, batch_size=8, preset="tiny").to(torch.float64)
    settings = ProbeSettings((1, 5, 20), probe_batch=2, test_size=16)
    on_cpu, on_gpu = make_stack(INITS, "tanh", cell=cell), make_stack(INITS, "tanh", cell=cell).cuda()
    cpu_ctx, gpu_ctx = (ProbeContext(m, task, 0, settings, INITS) for m in (on_cpu, on_gpu))
    assert gpu_ctx.cpu_context.model.w_out.device.type == "cpu"
    for name, probe in PROBES.items():
        for variable, values in probe(gpu_ctx).items():
            np.testing.assert_allclose(values.values, probe(cpu_ctx)[variable].values, rtol=1e-7, atol=1e-10,
                                       err_msg=f"{name}: {variable}")


def test_probes_on_a_cpu_stack_share_one_context():
    from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings

    task = make_task("adding", seq_len=20, seed=0, batch_size=8, preset="tiny")
    ctx = ProbeContext(make_stack(INITS, "relu", dtype=torch.float32), task, 0, ProbeSettings((1, 5)), INITS)
    assert ctx.cpu_context is ctx
    assert [name for name, probe in PROBES.items() if not probe.runs_on_cpu] == ["losses"]


def test_bad_shapes():
    cls = get_cell("elman")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        cls(2, 2, 0, 1)
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        cls(2, 2, 4, 1, nonlinearity="gelu")
    with pytest.raises(ValueError, match="unknown readout 'mean'"):
        cls(2, 2, 4, 1, readout="mean")


@pytest.mark.parametrize("cell", list_cells())
def test_carried_state_continues_the_sequence(cell, x):
    """Two halves with the state carried across equal one pass, on the fast path and the traced loop."""
    stack = perturbed(make_stack(INITS, "tanh", hidden=5, layers=2, readout="all", cell=cell))
    whole, final = stack.forward_with_state(x)
    first, middle = stack.forward_with_state(x[:5])
    second, end = stack.forward_with_state(x[5:], middle)
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-12) and torch.allclose(end, final, atol=1e-12)
    traced = stack.trace(x[5:], middle)
    assert torch.allclose(traced.outputs, second, atol=1e-12)
    assert end.shape == (2, len(INITS), 3, type(stack).state_size(5)) and not end.requires_grad


@pytest.mark.parametrize("cell", list_cells())
def test_token_inputs_are_one_hot_inputs(cell, gen):
    stack = perturbed(make_stack(INITS, "tanh", hidden=5, input_size=7, readout="all", cell=cell))
    tokens = torch.randint(0, 7, (9, 3), generator=gen)
    one_hot = torch.nn.functional.one_hot(tokens, 7).double()
    assert torch.allclose(stack(tokens), stack(one_hot), atol=1e-12)
    loss = stack(tokens).square().sum()
    grads = torch.autograd.grad(loss, list(stack.parameters()))
    reference = torch.autograd.grad(stack(one_hot).square().sum(), list(stack.parameters()))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, reference))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU exists")
@pytest.mark.parametrize("script", ["bench_gpu.py", "tune_kernels.py"])
def test_the_gpu_benchmarks_say_they_need_a_gpu(script):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / script)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA GPU" in proc.stderr


def test_the_gpu_benchmark_times_cudnn_in_ieee_float32_and_then_restores_torchs_setting(monkeypatch):
    """bench_gpu.py's like-for-like baseline: cuDNN's float32 RNN products without TF32 inside the block only
    (torch's default lets cuDNN use TF32, while the kernels' dots are float32-class)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_gpu

    assert bench_gpu.cudnn_float32_products() == "tf32"
    with bench_gpu.cudnn_in_ieee_float32():
        assert bench_gpu.cudnn_float32_products() == "ieee"
    assert bench_gpu.cudnn_float32_products() == "tf32"



def test_the_gpu_benchmark_times_a_cheap_probe_over_enough_calls(monkeypatch):
    """bench_gpu.py's per_call: a call of 10 ms (stood in for by a clock that the call advances) timed in batches
    that fill 50 ms, 5 calls each, one call first to size them; the median batch's time per call."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_gpu

    clock, calls = [0.0], []

    def call():
        calls.append(1)
        clock[0] += 0.010 if len(calls) != 4 else 0.100  # one slow call: the median leaves its batch out
    monkeypatch.setattr(bench_gpu.time, "perf_counter", lambda: clock[0])
    assert bench_gpu.per_call(call, "cpu", repeats=3) == pytest.approx(0.010)
    assert len(calls) == 1 + 3 * 5

def test_the_update_profile_names_the_recurrence_and_refuses_bad_sizes(monkeypatch, capsys):
    """benchmarks/profile_update.py on a tiny CPU stack: the table holds the Elman recurrence's forward and
    backward; a size below 1, a device torch cannot name and a GPU that is absent are refused in one line
    (argparse's usage aside)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import profile_update

    assert profile_update.main(["--device", "cpu", "--seq-len", "5", "--batch", "2", "--cells", "2",
                                "--steps", "1", "--rows", "50"]) == 0
    out = capsys.readouterr().out
    assert "elman (relu), 2 cells x batch 2, T = 5" in out and "ElmanRecurrenceBackward" in out
    bad = [["--cells", "0"], ["--device", "tpu"]] + ([] if torch.cuda.is_available() else [["--device", "cuda"]])
    for argv in bad:
        with pytest.raises(SystemExit) as stop:
            profile_update.main(argv)
        assert stop.value.code == 2
        assert f"error: argument {argv[0]}: {argv[1]}: " in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_weight_gradient_benchmark_s_ways_all_give_the_models_products(monkeypatch, capsys):
    """benchmarks/bench_weight_gradients.py on the CPU with chunks forced (6 of the 60 rows, 8 of the padded 64):
    every split-K way, the padded layout's included, and the swapped operands give dL/dW_hh and dL/dW_ih to
    float32 rounding of float64; a size below 1 is refused in one line."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_weight_gradients

    errors = bench_weight_gradients.main(["--device", "cpu", "--batch", "4", "--cells", "2", "--seq-len", "15",
                                          "--hidden", "5", "--inputs", "3", "--chunk-rows", "8", "--repeats", "1"])
    assert "chunks of the 60 rows: 6 (padded: 8 of 64)" in capsys.readouterr().out
    assert set(errors["dW_hh"]) == {"one bmm", "swapped", "per cell", "copied", "padded"}
    assert set(errors["dW_ih"]) == {"one bmm", "swapped", "per cell", "copied"}
    assert all(error < 1e-6 for product in errors.values() for error in product.values()), errors
    with pytest.raises(SystemExit) as stop:
        bench_weight_gradients.main(["--chunk-rows", "0", "--device", "cpu"])
    assert stop.value.code == 2 and "error: argument --chunk-rows: 0: " in capsys.readouterr().err.splitlines()[-1]
