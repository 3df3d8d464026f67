"""Every singular value of ds_T/ds_{T-k} at every recorded lag k (off by default: N values per lag).

How many directions of the state reach back k steps, and how fast each fades: the norms of the Jacobian
products (jacobian_products) give the largest at each lag, this probe the rest of the spectrum.
"""

from __future__ import annotations

import torch

from ..jacobians import product_log_spectra
from ..records import Variable
from .base import Probe, ProbeContext, ProbeSettings, StackShape, log_mean_exp, register_probe
from .jacobian_products import PRODUCT_ATTRS, PRODUCT_DTYPE


@torch.no_grad()
def spectra_of_every_layer(ctx: ProbeContext, spectra) -> torch.Tensor:
    """(M, layer, S, K): ``spectra(jacobians, lags)`` (K, M, B, S) of each layer's step Jacobians in float64 at the
    probe's lags, the ln of the mean over probe sequences."""
    layers = []
    for layer in range(ctx.model.num_layers):
        jacobians = ctx.model.step_jacobians(ctx.trace, layer, dtype=getattr(torch, PRODUCT_DTYPE))
        layers.append(log_mean_exp(spectra(jacobians, ctx.settings.lags), dim=2).permute(1, 2, 0))  # (M, S, K)
    return torch.stack(layers, dim=1)


@register_probe
class LagSpectra(Probe):
    name = "lag_spectra"
    default = False
    variables = {
        "jacobian_log_singular_values_lag": Variable(
            ("layer", "step", "sv", "lag"), "ln of the singular values of ds_T/ds_{T-k}, mean over probe sequences",
            "nats",
            "ln of the mean over probe sequences, descending, at each lag k; S = N values (2N for the LSTM). "
            "Formed in float64 as jacobian_log_singular_values (attrs product_dtype, resolved_nats): values "
            "further below the largest at their lag, such as directions the steps killed, are rounding, but -inf "
            "(exact) for the directions that units inactive at step T zero"),
    }

    def record(self, ctx: ProbeContext):
        return {"jacobian_log_singular_values_lag": spectra_of_every_layer(ctx, product_log_spectra)}

    def bytes_per_probe(self, shape: StackShape) -> int:
        return 8 * shape.cells * shape.layers * shape.state * shape.lags

    def attrs(self, settings: ProbeSettings) -> dict[str, dict]:
        return {"jacobian_log_singular_values_lag": PRODUCT_ATTRS}
