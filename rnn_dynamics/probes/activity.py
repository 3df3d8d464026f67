"""The fraction of active (ReLU) or saturated (tanh) units."""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, register_probe


@register_probe
class Activity(Probe):
    name = "activity"
    variables = {
        "active_fraction": Variable(
            ("layer", "step"), "fraction of active (ReLU) or saturated (tanh) units", "1",
            "over probe sequences, time and units, of the outputs of the cell's nonlinearity (Elman: h_t; "
            "LSTM and GRU: the candidate): ReLU h > 0; tanh |h| > 0.95; NaN where the nonlinearity has no "
            "such notion (linear)"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        model = ctx.model
        fractions = []
        for layer in range(model.num_layers):
            active = model.activation.active(model.activations(ctx.trace, layer))  # (T, M, B, N) or None
            fractions.append(torch.full((model.n_cells,), float("nan")) if active is None
                             else active.double().mean(dim=(0, 2, 3)).cpu())
        return {"active_fraction": torch.stack(fractions, dim=1)}
