"""Every singular value of ds_T/ds_{T-k} at every recorded lag k, however far below the largest (off by default:
the walk back and one accurate SVD per lag cost 2.3-4.9x the lag_spectra probe's SVDs at N = 100, T = 50).

lag_spectra forms each product and resolves its singular values within about 28 nats of the largest; the rest
are rounding. This probe walks back from step T carrying the product in QR form instead
(:func:`~rnn_dynamics.jacobians.lag_log_singular_values`): each value comes out to its own relative accuracy, and
a direction that inactive ReLU units zeroed comes out as -inf. How many directions of the state reach back k steps
(the rank of ds_T/ds_{T-k}), and how far each of the others fell.
"""

from __future__ import annotations

from ..jacobians import lag_log_singular_values
from ..records import Variable
from .base import Probe, ProbeContext, StackShape, register_probe
from .lag_spectra import spectra_of_every_layer


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

    def record(self, ctx: ProbeContext):
        return {"jacobian_log_singular_values_lag_full": spectra_of_every_layer(ctx, lag_log_singular_values)}

    def bytes_per_probe(self, shape: StackShape) -> int:
        return 8 * shape.cells * shape.layers * shape.state * shape.lags
