"""Every singular value of ds_T/ds_0, however far below the largest (off by default: it costs several times the
jacobian_products probe).

jacobian_products forms the product and resolves its singular values within about 28 nats of the largest; the
rest are rounding. This probe carries the product in QR form instead
(:func:`~rnn_dynamics.jacobians.product_log_singular_values`): each value comes out to its own relative accuracy,
and a direction that inactive ReLU units zeroed comes out as -inf. How many directions of the state survive T
steps, and how far each of the others fell.
"""

from __future__ import annotations

import torch

from ..jacobians import product_log_singular_values
from ..records import Variable
from .base import Probe, ProbeContext, log_mean_exp, register_probe


@register_probe
class FullProductSpectrum(Probe):
    name = "full_product_spectrum"
    default = False
    variables = {
        "jacobian_log_singular_values_full": Variable(
            ("layer", "step", "sv"), "ln of every singular value of ds_T/ds_0, mean over probe sequences", "nats",
            "ln of the mean over probe sequences, descending; S = N values (2N for the LSTM). Each to its own "
            "relative accuracy, however far below the largest (the product carried in QR form, then one-sided "
            "Jacobi; tested against 700-digit arithmetic to 1e-10 nats over 800 nats), where "
            "jacobian_log_singular_values resolves only those within its resolved_nats; -inf for a direction the "
            "steps zeroed exactly (inactive ReLU units), in every probe sequence"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        values = [log_mean_exp(product_log_singular_values(ctx.model.step_jacobians(ctx.trace, layer,
                                                                                    dtype=torch.float64)), dim=1)
                  for layer in range(ctx.model.num_layers)]  # each (M, S)
        return {"jacobian_log_singular_values_full": torch.stack(values, dim=1)}
