"""Every parameter of every cell at every probe step, so that a trained network can be rebuilt from the dataset
(:func:`rnn_dynamics.trained_stack`) and studied in ways no probe foresaw. Off by default: N^2 values per block
per probe step."""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, StackShape, register_probe


def flat_parameters(model) -> torch.Tensor:
    """(M, P): each cell's parameters, flattened in ``model.parameters()`` order."""
    return torch.cat([p.detach().reshape(model.n_cells, -1) for p in model.parameters()], dim=1)


@register_probe
class Parameters(Probe):
    name = "parameters"
    default = False
    dims = {"parameter": ("index into a cell's parameters, flattened in its parameters() order", "1")}
    variables = {
        "parameters": Variable(("step", "parameter"), "every parameter of the cell", "1",
                               "the cell's parameters (w_out, b_out, w_ih of every layer, w_hh of every layer, bias of "
                               "every layer, then any a cell type adds), each flattened, in the order of "
                               "RecurrentStack.parameters(), stored in "
                               "float64 (the training dtype's values exactly); rnn_dynamics.trained_stack rebuilds "
                               "the network; NaN beyond a cell type's count where larger ones share the dataset"),
    }

    def bytes_per_probe(self, shape: StackShape) -> int:
        return 8 * shape.cells * shape.parameters

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        return {"parameters": flat_parameters(ctx.model)}
