"""Every singular value of ds_T/ds_{T-k} at every recorded lag k, however far below the largest (off by default:
it costs several times the lag_spectra probe).

lag_spectra forms each product and resolves its singular values within about 28 nats of the largest; the rest
are rounding. This probe walks back from step T carrying the product in QR form instead
(:func:`~rnn_dynamics.jacobians.lag_log_singular_values`): each value comes out to its own relative accuracy, and
a direction that inactive ReLU units zeroed comes out as -inf. How many directions of the state reach back k steps
(the rank of ds_T/ds_{T-k}), and how far each of the others fell.
"""

from __future__ import annotations

import torch

from ..jacobians import lag_log_singular_values
from ..records import Variable
from .base import Probe, ProbeContext, StackShape, log_mean_exp, register_probe


@register_probe
class FullLagSpectra(Probe):
    name = "full_lag_spectra"
    default = False
    variables = {
        "jacobian_log_singular_values_lag_full": Variable(
            ("layer", "step", "sv", "lag"), "ln of every singular value of ds_T/ds_{T-k}, mean over probe sequences",
            "nats",
            "ln of the mean over probe sequences, descending, at each lag k; S = N values (2N for the LSTM). Each to "
            "its own relative accuracy, however far below the largest (the product carried back from step T in QR "
            "form, then one-sided Jacobi; tested against 300-digit arithmetic to 1e-10 nats), where "
            "jacobian_log_singular_values_lag resolves only those within its resolved_nats; -inf for a direction the "
            "steps zeroed exactly (inactive ReLU units), in every probe sequence"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        spectra = []
        for layer in range(ctx.model.num_layers):
            jacobians = ctx.model.step_jacobians(ctx.trace, layer, dtype=torch.float64)
            per_sequence = lag_log_singular_values(jacobians, ctx.settings.lags)  # (K, M, B, S)
            spectra.append(log_mean_exp(per_sequence, dim=2).permute(1, 2, 0))  # (M, S, K)
        return {"jacobian_log_singular_values_lag_full": torch.stack(spectra, dim=1)}

    def bytes_per_probe(self, shape: StackShape) -> int:
        return 8 * shape.cells * shape.layers * shape.state * shape.lags
