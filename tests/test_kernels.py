"""The fused scan kernels against the per-step loop they replace, and where they run.

Without a GPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), which
checks their arithmetic and indexing, not their speed; with one, the CUDA tests below run them
compiled. Tests skip where Triton is not installed.
"""

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import gradients_through_both_outputs, make_stack, perturbed
from rnn_dynamics.config import TrainConfig
from rnn_dynamics.kernels import kernel_cells, kernel_mode, scan_kernel, scan_kernels
from rnn_dynamics.models import get_cell
from rnn_dynamics.models.elman import ElmanRecurrence
from rnn_dynamics.nonlinearities import NONLINEARITIES, Nonlinearity, register_nonlinearity
from rnn_dynamics.tasks import make_task
from rnn_dynamics.train import train_stack

triton = pytest.importorskip("triton")
tl = triton.language
from rnn_dynamics.kernels import _agrees  # noqa: E402
from rnn_dynamics.kernels.activations import KERNEL_ACTIVATIONS, register_kernel_activation  # noqa: E402
from rnn_dynamics.kernels import tuning  # noqa: E402
from rnn_dynamics.kernels.elman import LAUNCH  # noqa: E402
from rnn_dynamics.kernels.launch import (blocks, device_shared_memory, device_target, geometries,  # noqa: E402
                                        geometry, resident_weight_bytes, shared_memory_per_block)
from rnn_dynamics.kernels.tuning import choose, forced_geometry  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
#: Cells per stack: two check every cell offset (the interpreter runs one program after another: more cost time).
INITS = ["identity", "he"]
#: Steps of the small problems: enough for every buffer's step offsets and a carry through several steps.
STEPS = 7
KERNEL_CELLS = kernel_cells()
CASES = [(cell, nl) for cell in KERNEL_CELLS for nl in KERNEL_ACTIVATIONS.names()
         if get_cell(cell).nonlinearities is None or nl in get_cell(cell).nonlinearities]
#: Largest |kernel - loop| allowed, relative to the largest |loop| value of the same tensor.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def assert_close_to_scale(a, b, tolerance, name=""):
    error, scale = (a - b).abs().max().item(), b.abs().max().item()
    assert error <= tolerance * max(scale, 1e-30), f"{name}: |kernel - loop| = {error:.2e}, scale {scale:.2e}"


def outputs_and_gradients(stack, x, initial, mode):
    with scan_kernels(mode):
        out, final = stack.forward_with_state(x, initial)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype,
                                                          device=out.device)).square().sum(), list(stack.parameters()))
    return [out, final, *grads]


def result_names(stack) -> list[str]:
    """What :func:`outputs_and_gradients` returns, by name, in its order."""
    return ["outputs", "final", *(name for name, _ in stack.named_parameters())]


def launch_options(cell: str):
    """The ``LAUNCH`` a kernel cell's module declares."""
    return importlib.import_module(f"rnn_dynamics.kernels.{cell}").LAUNCH


#: The kernel cells whose recurrent matrix is read from cache in chunks that their launches may vary.
CHUNKED_CELLS = [cell for cell in KERNEL_CELLS if len(launch_options(cell).loads) > 1]


@pytest.mark.parametrize("cell, nonlinearity", CASES)
@pytest.mark.parametrize("dtype, batch, hidden", [(torch.float64, 19, 16), (torch.float64, 3, 33),
                                                  (torch.float32, 3, 33)])
def test_kernel_equals_the_loop(cell, nonlinearity, dtype, batch, hidden, gen):
    """Outputs, final states and every gradient, 2 layers, a carried non-zero initial state; batches that
    fill part of a tile and one tile and a bit, hidden sizes padded (33 -> 64) and exact (16), in float64, and
    float32 on the shape that pads both (the same indexing: the dtype only sets the tolerance)."""
    stack = perturbed(make_stack(INITS, nonlinearity, hidden=hidden, layers=2, readout="all", output_size=2,
                                 cell=cell, input_std=0.3), scale=0.05).to(DEVICE, dtype)
    x = torch.randn(STEPS, batch, 2, generator=gen, dtype=torch.float64).to(DEVICE, dtype)
    initial = 0.5 * torch.randn(2, len(INITS), batch, type(stack).state_size(hidden), generator=gen,
                                dtype=torch.float64).to(DEVICE, dtype)
    with scan_kernels("on"):
        assert scan_kernel(cell, x, hidden, nonlinearity) is not None
    fused, loop = (outputs_and_gradients(stack, x, initial, mode) for mode in ("on", "off"))
    for name, a, b in zip(result_names(stack), fused, loop):
        assert_close_to_scale(a, b, TOLERANCE[dtype], name)


@pytest.mark.parametrize("cell", KERNEL_CELLS)
def test_the_kernels_take_gradients_from_every_step_and_from_the_final_state(cell, gen):
    """The backward kernels start their walk from dL/ds_T and read no per-step gradient where no step's output
    was used (the top layer under a ``last`` readout): against the loop for a loss on h_1..h_T, on s_T, or on
    both, and for a 2-layer stack with a ``last`` readout, in float64."""
    stack = perturbed(make_stack(INITS, "tanh", hidden=20, layers=2, readout="last", cell=cell, input_std=0.3),
                      scale=0.05).to(DEVICE)
    x = torch.randn(STEPS, 5, 2, generator=gen, dtype=torch.float64).to(DEVICE)
    initial = 0.5 * torch.randn(2, len(INITS), 5, type(stack).state_size(20), generator=gen,
                                dtype=torch.float64).to(DEVICE)
    for uses in (("steps",), ("final",), ("steps", "final")):
        runs = []
        for mode in ("on", "off"):
            with scan_kernels(mode):
                steps_out, final_out = stack.fused.apply(stack.layer_drive(0, x), initial[0],
                                                         *stack.recurrent_params(0), stack.activation)
                runs.append(gradients_through_both_outputs(stack, steps_out, final_out,
                                                           torch.Generator().manual_seed(2), uses))
        for (name, _), a, b in zip(stack.named_parameters(), *runs):
            assert (a is None) == (b is None), name
            if a is not None:
                assert_close_to_scale(a, b, TOLERANCE[torch.float64], f"{uses}: {name}")
    fused, loop = (outputs_and_gradients(stack, x, initial, mode) for mode in ("on", "off"))
    for name, a, b in zip(result_names(stack), fused, loop):
        assert_close_to_scale(a, b, TOLERANCE[torch.float64], f"last readout: {name}")


@pytest.mark.parametrize("cell", KERNEL_CELLS)
def test_training_with_the_kernel_equals_training_with_the_loop(cell):
    """Adam, per-cell clipping, 3 updates in float64: the same losses and weights either way."""
    task = make_task("adding", seq_len=STEPS, seed=0, batch_size=6, preset="tiny").to(torch.float64)
    config = TrainConfig(steps=3, lr=0.01, optimizer="adam", clip=1.0, probe_every=0)
    runs = []
    for mode in ("on", "off"):
        stack = make_stack(INITS, "relu", hidden=8, cell=cell, input_size=2).to(DEVICE)
        with scan_kernels(mode):
            runs.append((train_stack(stack, task, config).train_loss, [p.detach().cpu() for p in stack.parameters()]))
    (loss_on, params_on), (loss_off, params_off) = runs
    np.testing.assert_allclose(loss_on, loss_off, rtol=1e-10)
    for a, b in zip(params_on, params_off):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", KERNEL_CELLS)
def test_the_kernels_read_cell_major_and_time_major_inputs_alike(cell, gen):
    """``layer_drive`` hands the kernels a cell-major drive and autograd hands back gradients in whatever
    layout: the kernels read them where they lie, with the same results as from time-major copies."""
    stack = perturbed(make_stack(INITS, "tanh", hidden=16, cell=cell)).to(DEVICE, torch.float32)
    x = torch.randn(9, 5, 2, generator=gen).to(DEVICE)
    cell_major = stack.layer_drive(0, x).detach()
    assert cell_major.transpose(0, 1).is_contiguous()
    grad_cell_major = torch.randn(cell_major.shape[:-1] + (16,), generator=gen).transpose(0, 1).contiguous().to(
        DEVICE).transpose(0, 1)
    initial = stack.initial_state(5, x)[0]
    params = [p.detach().requires_grad_() for p in stack.recurrent_params(0)]
    results = []
    for drive, grad in ((cell_major, grad_cell_major), (cell_major.contiguous(), grad_cell_major.contiguous())):
        drive = drive.detach().requires_grad_()  # a leaf in the layout it has
        with scan_kernels("on"):
            out, final = stack.fused.apply(drive, initial, *params, stack.activation)
            grads = torch.autograd.grad(out, [drive, *params], grad)
        results.append([out, final, *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_kernels_take_blocks_where_they_lie_and_copy_only_what_they_cannot_index():
    by_cell = torch.randn(3, 7, 5, 4)  # (M, T, B, X)
    read, step, cell = blocks(by_cell.transpose(0, 1))
    assert read.data_ptr() == by_cell.data_ptr() and (step, cell) == (20, 140)
    read, step, cell = blocks(by_cell.permute(1, 0, 3, 2))  # units not contiguous: a time-major copy
    assert read.is_contiguous() and (step, cell) == (60, 20)
    torch.testing.assert_close(read, by_cell.permute(1, 0, 3, 2), rtol=0, atol=0)


#: Units of the geometry tests: padded to 64, so that every chunk size a kernel offers (16, 32, 64) is run, the
#: last chunk partly masked where it has several.
GEOMETRY_HIDDEN = 40


def launch_geometries(cell: str) -> list[dict]:
    """Every geometry a launch of ``cell``'s kernels may run in at N = GEOMETRY_HIDDEN (tile sizes, default and
    doubled warps, chunk sizes and pipeline depths of the loads; matrix on chip or streamed where the kernels
    take RESIDENT); in the interpreter, which runs no warps and no pipelines, one per distinct tile, chunk size
    and RESIDENT, and one split of a cell's units: the last offered (the gated cells' 4 programs a cell, 16-unit
    slices, one of them wholly masked, in one chunk as wide as the state; smaller splits and chunks run the same
    code on wider slices and more chunks, which the unsplit kernels run)."""
    options = launch_options(cell)
    candidates = geometries(GEOMETRY_HIDDEN, torch.float64, None, options)
    if options.resident:
        candidates += [dict(settings, RESIDENT=False) for settings in candidates]
    if DEVICE == "cpu":
        distinct = {}
        for settings in candidates:
            if settings.get("SPLIT", 1) > 1:
                distinct["split"] = settings
            else:
                distinct.setdefault((settings["BLOCK_B"], settings["BLOCK_K"], settings.get("RESIDENT")), settings)
        candidates = list(distinct.values())
    return candidates


@pytest.mark.parametrize("cell", [cell for cell in KERNEL_CELLS if len(launch_geometries(cell)) > 1])
def test_every_launch_geometry_gives_the_loops_numbers(cell, gen):
    """Each geometry a launch may be tuned into (:func:`launch_geometries`), forced: outputs, final states and
    every gradient against the loop; 2 layers, 19 sequences (two 16-sequence tiles, part of one 32- or
    64-sequence tile), N = 40 padded to 64, float64. A split cell's programs meet at every step; the interpreter
    walks them a step per launch (:func:`~rnn_dynamics.kernels.tuning.split_walks`), which also starts each
    backward launch inside the walk, from the carries the launch before left."""
    candidates = launch_geometries(cell)
    if launch_options(cell).splits and DEVICE == "cpu":
        assert [settings["SPLIT"] for settings in candidates if settings["SPLIT"] > 1] == [4]
    assert geometry(GEOMETRY_HIDDEN, torch.float64, None).items() <= candidates[0].items()
    stack = perturbed(make_stack(INITS, "tanh", hidden=GEOMETRY_HIDDEN, layers=2, readout="all", cell=cell,
                                 input_std=0.3), scale=0.05).to(DEVICE)
    x = torch.randn(6, 19, 2, generator=gen, dtype=torch.float64).to(DEVICE)
    initial = 0.5 * torch.randn(2, len(INITS), 19, type(stack).state_size(GEOMETRY_HIDDEN), generator=gen,
                                dtype=torch.float64).to(DEVICE)
    loop = outputs_and_gradients(stack, x, initial, "off")
    for settings in candidates:
        with forced_geometry(**settings):
            fused = outputs_and_gradients(stack, x, initial, "on")
        for name, a, b in zip(result_names(stack), fused, loop):
            assert_close_to_scale(a, b, TOLERANCE[torch.float64], f"{settings}: {name}")


def test_the_tuner_keeps_the_fastest_geometry_that_agrees_with_the_default():
    """Stand-in launches: one candidate is fast but wrong, one fast but off in the last bits (within any
    tolerance, not equal), one fails to build, one is slow; the fastest that equals the default is kept, and
    its outputs are the ones left behind."""
    written = torch.zeros(4)
    outputs = {"default": 1.0, "wrong": 1.5, "last_bits": 1.0 + 2.0 ** -20, "broken": None, "faster": 1.0,
               "slow": 1.0}
    times = {"default": 3.0, "wrong": 0.5, "last_bits": 0.1, "faster": 1.0, "slow": 9.0}
    launched, timed = [], []

    def run(settings):
        launched.append(settings["name"])
        if outputs[settings["name"]] is None:
            raise RuntimeError("out of resources")
        written.fill_(outputs[settings["name"]])

    def seconds(settings):
        timed.append(settings["name"])
        run(settings)
        return times[settings["name"]]

    chosen = choose(run, [{"name": name} for name in outputs], written, seconds)
    assert chosen == {"name": "faster"} and launched[-1] == "faster"
    assert sorted(set(timed)) == ["default", "faster", "slow"]  # no wrong, inexact or broken one is timed


def test_forced_geometries_nest_by_adding_settings():
    """tune_kernels.py forces a geometry around a scan that itself asks for the default: the outer one holds."""
    with forced_geometry(BLOCK_B=32), forced_geometry(), forced_geometry(num_warps=16):
        assert tuning._forced[-1] == {"BLOCK_B": 32, "num_warps": 16}
    assert not tuning._forced


def test_a_tuned_launch_times_its_candidates_once_per_problem(monkeypatch, gen):
    """The tuning path as a GPU in ``auto`` mode takes it, here in the interpreter with a stand-in clock that
    favours 32-sequence tiles: the model's outputs and gradients are still the loop's, each kernel is timed
    on its first launch for a problem only, and a different batch size is a different problem."""
    monkeypatch.setattr(tuning, "tunes", lambda like: True)
    monkeypatch.setattr(tuning, "_chosen", {})
    timings = []

    def stand_in_seconds(run, settings, device):
        timings.append(settings)
        run(settings)
        return 1.0 / settings["BLOCK_B"]
    monkeypatch.setattr(tuning, "_seconds", stand_in_seconds)
    stack = perturbed(make_stack(INITS, "relu", hidden=16, readout="all")).to(DEVICE)
    for batch in (20, 20, 17):  # 32-sequence tiles are offered from 17 sequences on, 64 from 33
        x = torch.randn(4, batch, 2, generator=gen, dtype=torch.float64).to(DEVICE)
        loop = outputs_and_gradients(stack, x, None, "off")
        for name, a, b in zip(["outputs", "final", "params"], outputs_and_gradients(stack, x, None, "on"), loop):
            assert_close_to_scale(a, b, TOLERANCE[torch.float64], name)
    candidates = len(geometries(16, torch.float64, None, LAUNCH, batch=20))
    assert candidates == 4 and len(timings) == 2 * 2 * candidates * tuning.TIMED_RUNS  # fwd + bwd, batches 20, 17
    assert len(tuning._chosen) == 4 and all(settings["BLOCK_B"] == 32 for settings in tuning._chosen.values())
    device = next(stack.parameters()).device  # "cuda:0" where DEVICE says "cuda"
    assert sorted(tuning.choices())[0] == (f"elman backward ({device}, float64, N = 16, {len(INITS)} cells x batch 17, "
                                           "float64 dots): 32 sequences x 64 threads, matrix on chip")


def test_the_tuning_script_drives_the_kernels_as_the_model_does(monkeypatch, capsys, gen):
    """benchmarks/tune_kernels.py calls the Elman kernels directly (a GPU-only script): on a tiny problem here,
    its scan leaves the states and returns the dL/da that the model's Function gives, and its scan of launch
    geometries runs each of them, a geometry that fails reported in its place."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import tune_kernels

    monkeypatch.setattr(tune_kernels, "DEVICE", DEVICE)
    monkeypatch.setattr(tune_kernels, "STEPS", 7)
    monkeypatch.setattr(tune_kernels, "HIDDEN", 20)
    drive, states, weight, grad = tune_kernels.problem(5, 2, gen, torch.float64)
    drive = drive.requires_grad_()
    with scan_kernels("off"):
        out, _ = ElmanRecurrence.apply(drive, states[:, 0], weight, NONLINEARITIES.get("relu"))
        grad_drive = torch.autograd.grad(out, drive, grad)[0]
    grad_pre = tune_kernels.elman_scan("float64")(drive.detach(), states, weight, grad)
    assert_close_to_scale(states[:, 1:].transpose(0, 1), out, 1e-12, "states")
    assert_close_to_scale(grad_pre.transpose(0, 1), grad_drive, 1e-12, "dL/da")
    # its scan of launch geometries, each run once (in place of CUDA's timer)
    monkeypatch.setattr(tune_kernels, "SHAPES", ((5, 2),))
    monkeypatch.setattr(tune_kernels, "GATED_SHAPES", ((5, 2),))
    monkeypatch.setattr(tune_kernels.triton.testing, "do_bench", lambda fn, return_mode: (fn(), 1.0)[1])
    if not torch.cuda.is_available():  # the script asks which GPU it times
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: None)
    tune_kernels.geometry_scan(gen)
    lines = capsys.readouterr().out.splitlines()
    offered = geometries(20, torch.float32, None, tune_kernels.elman.LAUNCH, batch=5)
    assert len(lines) == 4 and lines[1].count(" 1.00") == len(offered) + 1, lines  # + the matrix streamed
    gated = geometries(20, torch.float32, None, tune_kernels.lstm.LAUNCH, batch=5)
    # 6 unsplit (no 64-unit chunks of 32 units) and the cell split in two, in 16- and 32-unit chunks
    assert len(gated) == 8 and lines[2].count(" 1.00") == len(gated), lines
    assert tune_kernels.timed(lambda: 1 / 0) == "failed (ZeroDivisionError: division by zero)"  # a build that fails


def test_the_tuning_scripts_arithmetic_table_counts_switched_relu_units(monkeypatch, capsys, gen):
    """tune_kernels.py's section 1 on a tiny problem here (cuDNN and CUDA's timer stood in for): a line per
    arithmetic with the states' and dL/da's errors apart and the relu units that switched sign; float64
    against itself is exact. On the H200 a dL/da error of 0.2 with float32 states came from such switches."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import tune_kernels

    for name, value in (("DEVICE", DEVICE), ("STEPS", 7), ("HIDDEN", 20), ("SHAPES", ((5, 2),))):
        monkeypatch.setattr(tune_kernels, name, value)
    monkeypatch.setattr(tune_kernels, "cudnn_time", lambda *args, **options: 2.0)
    monkeypatch.setattr(tune_kernels.triton.testing, "do_bench", lambda fn, return_mode: (fn(), 1.0)[1])
    tune_kernels.elman_variants(gen)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(tune_kernels.VARIANTS), lines
    assert lines[-1].split() == ["float64", "error:", "states", "0.0e+00,", "dL/da", "0.0e+00", "(0", "units",
                                 "switched)", "1.00", "ms", "(", "0.25x", "cuDNN)"]
    reference = torch.tensor([[[0.0], [1.0], [-1.0], [2.0]]])
    assert tune_kernels.switched_units(torch.tensor([[[5.0], [-1.0], [-1.0], [0.0]]]), reference) == 2


def test_where_the_kernels_run(monkeypatch):
    x32 = torch.zeros(1, dtype=torch.float32)
    monkeypatch.delenv("RNN_DYNAMICS_KERNELS", raising=False)
    assert kernel_mode() == "auto" and scan_kernel("elman", x32, 100, "relu") is None  # auto: CUDA tensors only
    assert not tuning.tunes(x32)  # geometries are timed on CUDA tensors in auto mode only
    with scan_kernels("on"):
        assert not tuning.tunes(x32)
        assert scan_kernel("elman", x32, 128, "tanh").__name__ == "rnn_dynamics.kernels.elman"
        assert scan_kernel("elman", x32, 129, "relu") is None  # W no longer fits a program's registers
        assert scan_kernel("elman", x32.half(), 100, "relu") is None
        assert scan_kernel("users_cell", x32, 100, "relu") is None  # no kernel module: the loop
        with scan_kernels("off"):
            assert scan_kernel("elman", x32, 100, "relu") is None
    monkeypatch.setenv("RNN_DYNAMICS_KERNELS", "on")
    assert scan_kernel("elman", x32, 100, "relu") is not None
    monkeypatch.setenv("RNN_DYNAMICS_KERNELS", "fast")
    with pytest.raises(ValueError, match="RNN_DYNAMICS_KERNELS= 'fast' is not a kernel mode; valid modes: auto, "
                                         "on, off"):
        kernel_mode()
    with pytest.raises(ValueError, match="kernel mode 'gpu' is not a kernel mode"):
        scan_kernels("gpu").__enter__()


@triton.jit
def softsign_forward(a):
    return a / (1.0 + tl.abs(a))


@triton.jit
def softsign_derivative(out):
    return (1.0 - tl.abs(out)) * (1.0 - tl.abs(out))


@triton.jit
def softsign_wrong_derivative(out):
    return 1.0 - tl.abs(out)


def test_a_study_records_what_ran_its_recurrences():
    from rnn_dynamics import StudyConfig, run_study

    config = StudyConfig(seq_len=[6], inits=["identity", "orthogonal"], nonlinearities=["relu"], seeds=[0], hidden=4,
                         preset="tiny", train=TrainConfig(steps=2, probe_every=0), cells=["elman", "gru"],
                         device=DEVICE)
    from rnn_dynamics.kernels.launch import FAST_FLOAT64

    # float32 states: float64 dots in the interpreter and on A100/H100/H200, TF32x3 on other GPUs
    fast = DEVICE == "cpu" or torch.cuda.get_device_capability() in FAST_FLOAT64
    kernels = f"Triton scan kernels (triton {triton.__version__}, {'float64' if fast else 'tf32x3'} dots)"
    for mode, expected in (("auto", "per-step loop" if DEVICE == "cpu" else kernels), ("on", kernels),
                           ("off", "per-step loop")):
        with scan_kernels(mode):
            assert run_study(config, progress=False).attrs["recurrence"] == expected, mode


def test_the_dataset_says_where_the_kernels_stream_the_cells_matrix(monkeypatch):
    """On a GPU whose programs cannot hold the Elman matrix (an sm_86 one at N = 100), the recorded recurrence
    says so: those kernels' sums run in chunks, and differ from the on-chip kernels' in the last bits."""
    from rnn_dynamics.kernels import describe_recurrence, launch

    monkeypatch.setattr(launch, "capability", lambda tensor: (8, 6))
    x32 = torch.zeros(1)
    with scan_kernels("on"):
        assert describe_recurrence("elman", x32, 100, "relu") == (
            f"Triton scan kernels (triton {triton.__version__}, tf32x3 dots, matrix streamed from cache)")
        assert describe_recurrence("elman", x32, 16, "relu").endswith("tf32x3 dots)")  # 4 KB: on chip
        assert describe_recurrence("lstm", x32, 100, "tanh").endswith("tf32x3 dots)")  # always streams in chunks


@triton.jit
def _elementwise(x_ptr, y_ptr, n, FN: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(y_ptr + i, FN(tl.load(x_ptr + i, mask=i < n, other=0.0)), mask=i < n)


def kernel_elementwise(fn, x):
    y = torch.empty_like(x)
    _elementwise[(1,)](x, y, x.numel(), FN=fn, BLOCK=triton.next_power_of_2(x.numel()))
    return y


@pytest.mark.parametrize("name", KERNEL_ACTIVATIONS.names() + ["sigmoid"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_activations_are_as_exact_as_torch(name, dtype):
    """f within 4 eps (relative) of float64 torch on |a| from 1e-30 to 100, and f' through the kernel's own
    output equal to the loop's formula. The kernels' tanh once lost everything below |a| ~ 1e-8 and 3e-5
    (relative) at |a| = 1e-3 to cancellation: the scale of a stack's states with small inputs. On an H200
    the sigmoid's float32 tl.exp was 5 eps off at a = -11.4, and 1 - y y, which the compiler fused into an
    FMA, parted from the loop's near |y| = 1."""
    from rnn_dynamics.kernels.activations import sigmoid

    magnitudes = torch.logspace(-30, 2, 2000, dtype=torch.float64)
    a = torch.cat([-magnitudes.flip(0), torch.zeros(1, dtype=torch.float64), magnitudes]).to(DEVICE, dtype)
    if name == "sigmoid":  # the gates' squashing function, not a registered nonlinearity
        forward, exact = sigmoid, torch.sigmoid(a.double())
    else:
        forward, exact = KERNEL_ACTIVATIONS.get(name).forward, NONLINEARITIES.get(name)(a.double())
    out = kernel_elementwise(forward, a)
    eps, tiny = torch.finfo(dtype).eps, torch.finfo(dtype).tiny
    error = (out.double() - exact).abs() - 4 * eps * exact.abs()
    assert error.max().item() <= tiny, f"{name}: worst at a = {a[error.argmax()].item():.3e}"
    if name != "sigmoid":
        slope = kernel_elementwise(KERNEL_ACTIVATIONS.get(name).derivative, out)
        expected = NONLINEARITIES.get(name).derivative_from_output(out)
        assert ((slope - expected).abs() <= 2 * eps * expected.abs() + tiny).all(), name


class Softsign(Nonlinearity):
    """a / (1 + |a|): a user's nonlinearity, for the plug-in tests."""

    name = "softsign_test"

    def __call__(self, pre):
        return pre / (1 + pre.abs())

    def derivative_from_output(self, out):
        return (1 - out.abs()) ** 2


@pytest.fixture
def softsign():
    register_nonlinearity(Softsign())
    yield "softsign_test"
    NONLINEARITIES.unregister("softsign_test")
    KERNEL_ACTIVATIONS.unregister("softsign_test")
    _agrees.cache_clear()


def test_a_users_nonlinearity_runs_the_loop_until_it_registers_a_kernel_activation(softsign):
    x = torch.zeros(1)
    with scan_kernels("on"):
        assert scan_kernel("elman", x, 8, softsign) is None
        register_kernel_activation(softsign, softsign_forward, softsign_derivative)
        assert scan_kernel("elman", x, 8, softsign) is not None
    assert _agrees("elman", DEVICE, torch.float64, 8, softsign)


def test_the_first_use_check_runs_whatever_mode_its_caller_is_in():
    """It trains nothing, but it takes gradients: under no_grad or inference_mode it must still pass."""
    _agrees.cache_clear()
    with torch.inference_mode():
        assert _agrees("elman", DEVICE, torch.float64, 9, "tanh")
    with torch.no_grad():
        assert _agrees("lstm", DEVICE, torch.float32, 9, "tanh")


def test_a_kernel_that_disagrees_with_the_loop_is_not_used(softsign):
    """The first-use check of ``auto`` mode can fail: a wrong derivative is caught, reported once, and skipped."""
    register_kernel_activation(softsign, softsign_forward, softsign_wrong_derivative)
    with pytest.warns(RuntimeWarning, match=rf"fused scan kernel \(elman, {DEVICE}, float64, N = 8, softsign_test\) "
                                            r"disagrees with the loop by"):
        assert not _agrees("elman", DEVICE, torch.float64, 8, softsign)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell, nonlinearity", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_kernel_passes_its_first_use_check(cell, nonlinearity, dtype):
    """On a GPU ``auto`` mode picks the kernel: it builds and agrees with the loop at N = 100 (the paper's)."""
    with scan_kernels("auto"):
        assert scan_kernel(cell, torch.zeros(1, device="cuda", dtype=dtype), 100, nonlinearity) is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell, nonlinearity", [("elman", "relu")] + [(cell, "tanh") for cell in KERNEL_CELLS])
@pytest.mark.parametrize("batch", [16, 256])
def test_the_compiled_kernel_at_the_pixel_mnist_shape(cell, nonlinearity, batch, gen):
    """T = 784, N = 100, six cells: in float64 every output and gradient of the kernels equals the loop's to
    1e-8 of the tensor's scale; in float32 each is as close to float64 as the float32 loop's, within 4x its
    error or 1e-6 of scale. Over 784 steps the expanding cells (he: radius about sqrt 2) amplify rounding
    about 1e5-fold (float32 outputs 1e-2 of their scale off float64), so a float32 error is a draw of that
    chaos: on an H200 the kernels' came out up to 3.1x the loop's, where both round alike per step. The
    float64 check is the tight one. The IRNN, and every kernel cell with tanh (a relu LSTM's cell state
    overflows). Each tensor's errors are printed (pytest -rP shows them)."""
    stack = make_stack(["identity", "orthogonal", "he", "xavier", "random_walk", "scaled_identity:scale=0.5"],
                       nonlinearity, hidden=100, input_size=1, cell=cell, input_std=0.001).to("cuda")
    x = torch.rand(784, batch, 1, generator=gen, dtype=torch.float64).to("cuda")
    exact, fused64 = (outputs_and_gradients(stack, x, None, mode) for mode in ("off", "on"))
    stack.float()
    fused, loop = (outputs_and_gradients(stack, x.float(), None, mode) for mode in ("on", "off"))
    names = result_names(stack)
    for name, kernel64, kernel_value, loop_value, exact_value in zip(names, fused64, fused, loop, exact):
        assert torch.isfinite(exact_value).all(), f"{name}: float64 itself is not finite; the problem is ill-posed"
        kernel64_error, kernel_error, loop_error = ((value.double() - exact_value).abs().max().item()
                                                    for value in (kernel64, kernel_value, loop_value))
        scale = exact_value.abs().max().item()
        ratio = kernel_error / max(loop_error, 1e-300)
        print(f"{name}: scale {scale:.2e}; from the float64 loop: float64 kernel {kernel64_error:.1e}, "
              f"float32 kernel {kernel_error:.2e}, float32 loop {loop_error:.2e} ({ratio:.2f}x)")
        assert kernel64_error <= 1e-8 * scale, f"{name}: float64 kernel {kernel64_error:.2e} off, scale {scale:.2e}"
        assert kernel_error <= 4 * loop_error + 1e-6 * scale, (
            f"{name}: kernel {kernel_error:.2e} and loop {loop_error:.2e} from float64, scale {scale:.2e}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", KERNEL_CELLS)
@pytest.mark.parametrize("batch, cells", [(256, 32), (16, 1)])
def test_tuned_launches_on_a_gpu_give_the_default_geometrys_numbers(cell, batch, cells, monkeypatch, gen):
    """``auto`` mode times each kernel's geometries at its first launch: at batch 256 x 32 cells (where larger tiles
    cut the Elman programs 2- or 4-fold) and at batch 16 x one cell (where a gated cell may be split among
    programs) outputs and gradients equal those of the default geometry (``on``) bit for bit, as the tuning's
    check of each candidate asks."""
    monkeypatch.setattr(tuning, "_chosen", {})
    stack = make_stack((INITS * 16)[:cells], "tanh", hidden=100, input_size=1, cell=cell, input_std=0.001).to(
        "cuda", torch.float32)
    x = torch.rand(100, batch, 1, generator=gen).to("cuda")
    tuned, default = (outputs_and_gradients(stack, x, None, mode) for mode in ("auto", "on"))
    assert len(tuning.choices()) == 2, tuning.choices()  # forward and backward, each tuned once
    for name, a, b in zip(result_names(stack), tuned, default):
        assert torch.equal(a, b), name



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", CHUNKED_CELLS)
def test_on_a_gpu_every_way_to_load_a_streamed_matrix_gives_the_default_geometrys_bits(cell, gen):
    """Chunks of 16, 32 or 64 units, loads pipelined or not, a cell's units split among 2, 4 or 8 programs: the
    products accumulate over the units in one order whatever the chunks and slices, so each geometry gives the
    default's outputs and gradients bit for bit (N = 100, float32, the GPU's own dot arithmetic), as the tuning's
    check asks of every candidate it may choose.
    (TF32x3 products may order their three passes by chunk; such GPUs' tuning then drops the wider chunks.)"""
    stack = make_stack(INITS, "tanh", hidden=100, input_size=1, cell=cell, input_std=0.3).to("cuda", torch.float32)
    x = torch.rand(50, 19, 1, generator=gen).to("cuda")
    candidates = geometries(100, torch.float32, options=launch_options(cell), batch=19, n_cells=len(INITS),
                            **device_target(torch.zeros(1, device="cuda")))  # splits where every program fits
    if candidates[0]["DOT"] == "tf32x3":
        pytest.skip("TF32x3 dots: the wider chunks may change the order of the three passes")
    with forced_geometry():
        default = outputs_and_gradients(stack, x, None, "on")
    for settings in candidates[1:]:
        with forced_geometry(**settings):
            other = outputs_and_gradients(stack, x, None, "on")
        for name, a, b in zip(result_names(stack), other, default):
            assert torch.equal(a, b), f"{tuning.describe(settings)}: {name}"

def test_every_kernel_compiles_for_hopper_and_ampere():
    """Triton's own compiler and ptxas, no GPU: each kernel builds for sm_90 and sm_80 (float64 dots), sm_86
    and sm_75 (TF32x3 dots) as a first launch would, fits that GPU's shared memory (the Elman kernels held
    their matrix in 144 KB, which the 99 KB an sm_86 GPU gives a program and a T4's 64 KB refused: there
    they now stream it), and the Elman kernels (the paper's IRNN) do not spill at N = 100."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "rnn_dynamics.kernels.compile_report", "--arch", "90", "80",
                           "86", "75", "--dtype", "float32", "--hidden", "100"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if " registers, " in line]
    assert len(lines) == 4 * 2 * len(KERNEL_CELLS), proc.stdout
    for line in lines:
        registers, stack, programs = (int(word) for word in re.findall(r"(\d+) (?:registers|bytes stack|programs)",
                                                                      line))
        assert registers <= 255 and (stack == 0 or " elman " not in line) and programs >= 1, line
    assert sum(("sm_86 elman" in line or "sm_75 elman" in line) and "matrix streamed" in line
               for line in lines) == 4, proc.stdout
    assert sum("sm_90 elman" in line and "matrix on chip)" not in line for line in lines) == 0, proc.stdout


def test_the_gated_kernels_offer_pipelined_and_wider_loads_and_they_build():
    """Tuning candidates, never the default geometry: each gated kernel's loads two stages deep, and in 64-unit
    chunks, build for sm_90 (N = 100, float32, 512 threads) with Triton's compiler and ptxas within 255 registers
    and launch (a program fits on a multiprocessor). They spill, which only the GPU's timing can price."""
    import os
    import subprocess
    import sys

    assert CHUNKED_CELLS == ["gru", "lstm"]
    for cell in CHUNKED_CELLS:
        candidates = geometries(100, torch.float32, (9, 0), launch_options(cell))
        loads = [(c["BLOCK_K"], c["num_stages"]) for c in candidates if c["SPLIT"] == 1]
        assert loads[0] == (16, 1) and len(loads) == 8
        assert set(loads) == {(16, 1), (16, 2), (32, 1), (64, 1)} and loads.count((16, 2)) == 2
    code = """
import torch
from rnn_dynamics.kernels import compile_report as report, gru, lstm
from rnn_dynamics.kernels.launch import geometries
for module in (gru, lstm):
    offered = [g for g in geometries(100, torch.float32, (9, 0), module.LAUNCH) if g["SPLIT"] == 1]
    for settings in ([g for g in offered if g["num_stages"] == 2][-1], [g for g in offered if g["BLOCK_K"] == 64][-1]):
        for kernel in (module._forward, module._backward):
            usage = report.resource_usage(report.compile_kernel(kernel, 90, "float32", settings))
            print(usage.registers, report.programs_per_sm(90, usage, 32 * settings["num_warps"]))
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    builds = [tuple(map(int, line.split())) for line in proc.stdout.splitlines()]
    assert len(builds) == 8 and all(registers <= 255 and programs >= 1 for registers, programs in builds), builds


def test_a_gated_cell_is_split_among_programs_only_where_each_has_a_multiprocessor():
    """The split candidates (N = 100: slices of 64, 32 and 16 units; the 16-unit one also in one chunk as wide as
    the state): offered where cells x tiles x programs a cell fit the GPU's multiprocessors, never to the Elman
    (its matrix is held on chip), never as slices under 16 units, and always where the GPU is not given."""
    lstm = launch_options("lstm")
    splits = [(c["SPLIT"], c["BLOCK_K"], c["num_warps"]) for c in geometries(100, torch.float32, (9, 0), lstm)
              if c["SPLIT"] > 1]
    assert splits == [(2, 16, 8), (4, 16, 8), (8, 16, 8), (8, 128, 8)]

    def offered(n_cells, batch, hidden=100, multiprocessors=132):
        return sorted({c["SPLIT"] for c in geometries(hidden, torch.float32, (9, 0), lstm, batch=batch,
                                                      n_cells=n_cells, multiprocessors=multiprocessors)})
    assert offered(1, 16) == offered(6, 16) == offered(16, 16) == [1, 2, 4, 8]
    assert offered(32, 16) == offered(33, 16) == [1, 2, 4]  # 33 cells x 4 programs fit 132 multiprocessors
    assert offered(34, 16) == [1, 2] and offered(32, 256) == [1] and offered(1, 16, multiprocessors=7) == [1, 2, 4]
    assert offered(1, 16, hidden=40) == [1, 2, 4] and offered(1, 16, hidden=16) == [1]
    assert all("SPLIT" not in c for c in geometries(100, torch.float32, (9, 0), LAUNCH))


def test_a_split_cells_programs_meet_through_the_gpus_l2():
    """What the compiler makes of a meeting (no GPU: Triton's compiler for sm_90): the split kernels wait with an
    acquire load of the counter and arrive with a release add, each by one thread between barriers, and read the
    states and gradients the other programs wrote past L1 (ld.global.cg); the unsplit kernels do none of it."""
    import os
    import subprocess
    import sys

    code = """
import torch
from rnn_dynamics.kernels import compile_report as report, gru, lstm
from rnn_dynamics.kernels.launch import geometries

def fenced(lines, i, after):  # one thread's (predicated), with a block barrier just before (and after)
    near = lines[i + 1:i + 4] if after else lines[max(0, i - 3):i]
    return lines[i].startswith("@%p") and any(line.startswith("bar.sync") for line in near)

for module in (gru, lstm):
    offered = geometries(100, torch.float32, (9, 0), module.LAUNCH)
    for settings in (offered[0], offered[-1]):
        for kernel in (module._forward, module._backward):
            compiled = report.compile_kernel(kernel, 90, "float32", settings)
            ptx, usage = compiled.asm["ptx"], report.resource_usage(compiled)
            lines = [line.strip() for line in ptx.splitlines()
                     if line.strip() and not line.strip().startswith(("//", ".loc", "$L"))]
            acquires = [i for i, line in enumerate(lines) if "ld.global.gpu.acquire.b32" in line]
            releases = [i for i, line in enumerate(lines) if "red.global.gpu.release.add" in line]
            guarded = all(fenced(lines, i, False) and fenced(lines, i, True) for i in acquires) and all(
                fenced(lines, i, False) for i in releases)
            print(settings["SPLIT"], len(acquires), len(releases), ptx.count("ld.global.cg"), int(guarded),
                  usage.registers, usage.stack_bytes)
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    builds = [tuple(map(int, line.split())) for line in proc.stdout.splitlines()]
    assert len(builds) == 8, builds
    for split, acquires, releases, past_l1, guarded, registers, stack in builds:
        assert registers <= 255, builds
        if split == 1:
            assert (acquires, releases, past_l1) == (0, 0, 0), builds
        else:  # 8 programs a cell, one 128-unit chunk: no spills in the forward, at most 80 bytes in the backward
            assert split == 8 and acquires >= 1 and releases == 1 and past_l1 > 0 and guarded, builds
            assert stack <= 128, builds


def test_the_shared_memory_of_a_gpu_by_its_compute_capability():
    """Listed capabilities as listed; others take the nearest listed one below (a newer minor version keeps its
    generation's), and one below every entry the smallest."""
    assert shared_memory_per_block((9, 0)) == 227 << 10 and shared_memory_per_block((8, 9)) == 99 << 10
    assert shared_memory_per_block((8, 8)) == 163 << 10 and shared_memory_per_block((11, 0)) == 227 << 10
    assert shared_memory_per_block((6, 1)) == 64 << 10
    resident = geometries(100, torch.float32, (8, 6), LAUNCH)[0]
    assert resident_weight_bytes(resident) == 144 << 10 and not resident["RESIDENT"]


def test_a_present_gpu_is_asked_for_its_shared_memory(monkeypatch):
    """The device's own opt-in limit (what Triton checks) decides where the matrix stays on chip; the table by
    compute capability serves only where torch does not report it."""
    from types import SimpleNamespace

    reported = SimpleNamespace(major=9, minor=0, shared_memory_per_block_optin=99 << 10)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: reported)
    assert device_shared_memory(torch.device("cuda", 0)) == 99 << 10
    assert not geometries(100, torch.float32, (9, 0), LAUNCH, shared_memory=99 << 10)[0]["RESIDENT"]
    assert geometries(100, torch.float32, (9, 0), LAUNCH)[0]["RESIDENT"]
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(major=8, minor=6))
    assert device_shared_memory(torch.device("cuda", 0)) == 99 << 10
    assert device_target(torch.zeros(1)) == dict(gpu=None, shared_memory=None, multiprocessors=None)


@pytest.mark.parametrize("args, message", [
    (["--hidden", "129"], "error: --hidden must lie in 1..128 (the sizes the kernels serve), got [129]"),
    (["--arch", "90", "12"], "error: --arch 12: not a compute capability this ptxas builds for; valid: "),
])
def test_the_compile_report_refuses_what_it_cannot_build(args, message):
    """One line and exit code 2 before anything is compiled (a bad --arch once dumped Triton's PTX)."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "rnn_dynamics.kernels.compile_report", *args],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1 and message in proc.stderr, \
        proc.stderr
