"""The weight gradients' split-K sums (rnn_dynamics.models.weight_gradients) against single products and autograd."""

import pytest
import torch

from conftest import make_stack, perturbed
from rnn_dynamics.kernels import scan_kernels
from rnn_dynamics.models import CELLS
from rnn_dynamics.models import weight_gradients
from rnn_dynamics.models.weight_gradients import (MIN_CHUNK_ROWS, InputDrive, split_k_chunks,
                                                   summed_outer_products)


def operands(gen):
    """g (3, 24, 5) and three layouts of x (3, 24, 2): contiguous, a slice of a buffer one step longer per cell
    (as the states are), and one input expanded over every cell (stride 0)."""
    g = torch.randn(3, 24, 5, generator=gen, dtype=torch.float64)
    contiguous = torch.randn(3, 24, 2, generator=gen, dtype=torch.float64)
    sliced = torch.randn(3, 7, 4, 2, generator=gen, dtype=torch.float64)[:, :-1].reshape(3, 24, 2)
    shared = torch.randn(1, 24, 2, generator=gen, dtype=torch.float64).expand(3, -1, -1)
    return g, {"contiguous": contiguous, "sliced": sliced, "shared": shared}


@pytest.mark.parametrize("chunks", [1, 2, 3, 8, 24])
def test_chunked_sums_equal_one_product_in_every_layout(chunks, gen):
    g, layouts = operands(gen)
    for name, x in layouts.items():
        exact = torch.einsum("mkp,mkq->mpq", g, x)
        assert (summed_outer_products(g, x, chunks) - exact).abs().max() <= 1e-13 * exact.abs().max(), name


def test_chunks_must_divide_the_rows(gen):
    g, layouts = operands(gen)
    with pytest.raises(ValueError, match="chunks 5 must divide the 24 rows"):
        summed_outer_products(g, layouts["contiguous"], 5)


def test_the_split_is_the_largest_divisor_that_keeps_long_chunks_and_only_on_cuda():
    cuda = torch.device("cuda")
    assert split_k_chunks(784 * 256, torch.device("cpu")) == 1
    assert split_k_chunks(MIN_CHUNK_ROWS - 1, cuda) == 1
    for rows in (784 * 256, 784 * 16, 200 * 7, 4099 * 3):
        chunks = split_k_chunks(rows, cuda)
        longer = [d for d in range(chunks + 1, rows + 1) if rows % d == 0 and rows // d >= MIN_CHUNK_ROWS]
        assert rows % chunks == 0 and (chunks == 1 or rows // chunks >= MIN_CHUNK_ROWS) and not longer
    assert split_k_chunks(784 * 256, cuda) == 49  # 200,704 rows = 49 chunks of 4,096


def test_the_input_drive_passes_gradcheck_and_vmap(gen):
    flat, weight, bias = (torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
                          for shape in ((3, 8, 4), (3, 5, 4), (3, 1, 5)))
    assert torch.autograd.gradcheck(InputDrive.apply, (flat, weight, bias))
    two = flat.detach().unsqueeze(0).expand(2, -1, -1, -1)
    batched = torch.func.vmap(InputDrive.apply, in_dims=(0, None, None))(two, weight, bias)
    assert torch.allclose(batched[1], torch.baddbmm(bias, flat, weight.transpose(1, 2)), atol=1e-14)


@pytest.mark.parametrize("cell", CELLS.names())
@pytest.mark.parametrize("kernels", ["off", "on"])
def test_a_stack_trains_on_the_same_gradients_with_the_rows_split(cell, kernels, monkeypatch, gen):
    """Every weight gradient of a 2-layer stack (W_ih of a shared input and of the layer below, W_hh, b) with
    the K = T x B rows cut into 3 chunks (as a GPU cuts them) equals the single products' to 1e-12."""
    stack = perturbed(make_stack(["identity", "orthogonal", "he"], "tanh", hidden=5, layers=2, output_size=2,
                                 readout="all", cell=cell))
    x = torch.randn(6, 4, 2, generator=gen, dtype=torch.float64)

    def gradients():
        with scan_kernels(kernels):
            return torch.autograd.grad(stack(x).square().sum(), list(stack.parameters()))

    single = gradients()
    monkeypatch.setattr(weight_gradients, "split_k_chunks", lambda rows, device: 3)
    for (name, _), a, b in zip(stack.named_parameters(), gradients(), single):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max(), name
