"""Shared fixtures: small seeded inputs and float64 stacks for exact comparisons."""

import pytest
import torch

from rnn_dynamics.cells import ElmanStack


def make_stack(inits, nonlinearity="relu", hidden=6, layers=1, input_size=2, output_size=1, readout="last",
               seed=0, input_std=0.5, dtype=torch.float64):
    """A float64 stack with input weights large enough that states move."""
    model = ElmanStack.from_inits(inits, input_size, hidden, output_size, nonlinearity, layers, readout,
                                  seed=seed, input_std=input_std, output_std=0.5)
    return model.to(dtype)


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
