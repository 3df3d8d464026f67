"""The hidden-state norm ||h_t|| over time: activity that explodes or dies is the first thing to look at."""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, register_probe


@register_probe
class StateNorm(Probe):
    name = "state_norm"
    variables = {
        "state_norm": Variable(("layer", "step", "time"), "||h_t||, mean over probe sequences", "1",
                               "Euclidean norm of the hidden state h_t (the c part of an LSTM state left out); "
                               "h_0 = 0; NaN where t > T"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        norms = [ctx.trace.hidden(layer).norm(dim=-1).double().mean(dim=-1)  # (T + 1, M)
                 for layer in range(ctx.model.num_layers)]
        return {"state_norm": torch.stack(norms).permute(2, 0, 1)}
