"""Shared fixtures: small seeded inputs, float64 stacks for exact comparisons, and a data root.

Every test runs with RNN_DYNAMICS_DATA pointing at a data root the tests make: synthetic MNIST
digits in the official IDX layout, a small PTB-format corpus, a small TIMIT-layout corpus and an .npz of
sequences, so that every task runs without downloads (the speech task reads the TIMIT fixture).
Without a GPU, Triton's interpreter runs the fused scan kernels on the CPU (tests/test_kernels.py);
it must be chosen before Triton is imported. Under pytest-xdist (the default, ``-n auto``: one worker per core)
each worker runs on a core of its own with one torch thread.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fixtures import make_mnist, make_ptb, make_sequences, make_timit
from rnn_dynamics.executors import available_cores
from rnn_dynamics.models import get_cell


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker per core this process may run on (xdist's own count, psutil's, is of the host's
    physical cores, which an affinity mask or a container can make too many)."""
    return available_cores()


def _pin_this_xdist_worker_to_one_core():
    """Under pytest-xdist (``-n N``), worker i runs on core i alone, with one torch thread: the workers then share
    the machine without OpenMP threads waiting on each other, and what a test starts (dask workers, commands)
    inherits its core. Without xdist nothing changes."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or available_cores() < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


_pin_this_xdist_worker_to_one_core()


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_mnist(root / "mnist")
    make_ptb(root / "ptb")
    make_timit(root)
    make_sequences(root / "sequences.npz")
    previous = os.environ.get("RNN_DYNAMICS_DATA")
    os.environ["RNN_DYNAMICS_DATA"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("RNN_DYNAMICS_DATA", None)
    else:
        os.environ["RNN_DYNAMICS_DATA"] = previous


def make_stack(inits, nonlinearity="relu", hidden=6, layers=1, input_size=2, output_size=1, readout="last",
               seed=0, input_std=0.5, dtype=torch.float64, cell="elman", **options):
    """A float64 stack of ``cell`` with input weights large enough that states move."""
    model = get_cell(cell).from_inits(inits, input_size, hidden, output_size, nonlinearity, layers, readout,
                                      seed=seed, input_std=input_std, output_std=0.5, **options)
    return model.to(dtype)


def perturbed(model, scale=0.1, seed=0):
    """``model`` with every parameter moved by seeded noise, so that zero biases and tied gates are broken."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def gradients_through_both_outputs(stack, steps_out, final_out, gen, uses):
    """Gradients of every parameter from a loss on h_1..h_T, on the final full state s_T, or on both
    (``uses``); an output left out of the loss gets no gradient at all (None, not zeros)."""
    terms = []
    if "steps" in uses:
        terms.append((steps_out * torch.randn(steps_out.shape, generator=gen, dtype=torch.float64).to(steps_out)).sum())
    if "final" in uses:
        terms.append((final_out * torch.randn(final_out.shape, generator=gen, dtype=torch.float64).to(final_out)).sum())
    return torch.autograd.grad(sum(terms), list(stack.parameters()), retain_graph=True, allow_unused=True)


def run_in_process(main, argv, capsys) -> tuple[int, str, str]:
    """A command's ``main(argv)`` run in this process, without an interpreter's start: (exit code, stdout, stderr)
    as a shell would see them (``fail`` and argparse exit through SystemExit)."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
