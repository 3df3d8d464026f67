"""How far training has moved each recurrent block from its initial value, and in how many directions.

Training often changes a recurrent matrix by an update of low rank (Schuessler, Mastrogiuseppe, Dubreuil,
Ostojic & Barak 2020, "The interplay between randomness and structure during learning in RNNs"): the singular
values of W - W_0 say how many directions learning used, and the relative distance how far it went from the
initialisation (whether an IRNN stays near its identity).
"""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, register_probe


@register_probe
class WeightUpdates(Probe):
    name = "weight_updates"
    variables = {
        "weight_drift": Variable(("layer", "gate", "step"), "distance of the recurrent block from its initial value",
                                 "1", "||W - W_0||_F / ||W_0||_F of each recurrent block (each gate's N x N block "
                                 "for gated cells), W_0 the block at step 0; 0 at step 0, inf where W_0 = 0"),
        "update_singular_values": Variable(("layer", "gate", "step", "sv"),
                                           "singular values of the update of the recurrent block", "1",
                                           "singular values of W - W_0, descending, formed and solved in float64; "
                                           "those below about "
                                           "N eps sigma_1 (eps = 2.2e-16) are zero to rounding (a ReLU unit that "
                                           "never fired is not updated); NaN beyond N where sv is longer (state "
                                           "Jacobians of gated cells)"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        initial = ctx.initial_blocks.double()
        update = ctx.model.recurrent_blocks().double().cpu() - initial  # (M, L, G, N, N)
        drift = torch.linalg.matrix_norm(update) / torch.linalg.matrix_norm(initial)
        return {"weight_drift": drift, "update_singular_values": torch.linalg.svdvals(update)}
