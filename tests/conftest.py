"""Shared fixtures: small seeded inputs, float64 stacks for exact comparisons, and a data root.

Every test runs with RNN_DYNAMICS_DATA pointing at a data root the tests make: synthetic MNIST
digits in the official IDX layout, a small PTB-format corpus, a small TIMIT-layout corpus and an .npz of
sequences, so that every task runs without downloads (the speech task reads the TIMIT fixture).
Without a GPU, Triton's interpreter runs the fused scan kernels on the CPU (tests/test_kernels.py);
it must be chosen before Triton is imported.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fixtures import make_mnist, make_ptb, make_sequences, make_timit
from rnn_dynamics.models import get_cell


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
