"""Shared fixtures: small seeded inputs and float64 stacks for exact comparisons."""

import pytest
import torch

from rnn_dynamics.models import get_cell


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


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
