"""Norms of the Jacobian products ds_T/ds_{T-k} against lag k, and the singular values of ds_T/ds_0."""

from __future__ import annotations

import torch

from ..jacobians import product_log_norms
from ..records import RESOLVED_PRODUCT_NATS, Variable
from .base import Probe, ProbeContext, ProbeSettings, log_mean_exp, register_probe

#: The products are formed in float64 whatever the training dtype: the step Jacobians' factors are exact in it, and
#: the singular values it resolves below the largest reach 28 nats instead of float32's 6 (RESOLVED_PRODUCT_NATS).
PRODUCT_DTYPE = "float64"
#: What the singular-value variables of a product say of it: the dtype it was formed in and how far below its
#: largest singular value the others are exact (figures.singular_values reads them).
PRODUCT_ATTRS = {"product_dtype": PRODUCT_DTYPE, "resolved_nats": RESOLVED_PRODUCT_NATS[PRODUCT_DTYPE]}


@register_probe
class JacobianProducts(Probe):
    name = "jacobian_products"
    variables = {
        "jacobian_log_norm": Variable(
            ("layer", "step", "lag"), "ln of ||ds_T/ds_{T-k}||_2, mean over probe sequences", "nats",
            "ln of the mean over probe sequences of the spectral norm of the product of step Jacobians "
            "J_t = ds_t/ds_{t-1} (diag(f'(a_t)) W_hh for Elman cells; the full (h, c) state for the LSTM) over "
            "the last k steps, computed with the scale carried apart, so exact far outside the float range; "
            "-inf where the product is exactly zero; NaN where k > T"),
        "jacobian_norm": Variable(("layer", "step", "lag"), "||ds_T/ds_{T-k}||_2, mean over probe sequences", "1",
                                  "exp(jacobian_log_norm): 0 below 1e-308, where only the log is meaningful"),
        "jacobian_log_norm_std": Variable(("layer", "step", "lag"),
                                          "std over probe sequences of ln ||ds_T/ds_{T-k}||_2", "nats",
                                          "spread of the norm across the probe batch; NaN when a norm is 0"),
        "jacobian_log_singular_values": Variable(
            ("layer", "step", "sv"), "ln of the singular values of ds_T/ds_0, mean over probe sequences", "nats",
            "ln of the mean over probe sequences, descending; S = N values (2N for the LSTM). The product is "
            "formed in float64 whatever the training dtype (attr product_dtype), so the values within about 31-40 "
            "nats of the largest are resolved (attr resolved_nats: the tested bound); smaller ones are rounding, "
            "but -inf (exact) for the directions that units inactive at step T zero"),
        "jacobian_singular_values": Variable(("layer", "step", "sv"),
                                             "singular values of ds_T/ds_0, mean over probe sequences", "1",
                                             "exp(jacobian_log_singular_values)"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        log_norms, spread, log_svals = [], [], []
        for layer in range(ctx.model.num_layers):
            jac = ctx.model.step_jacobians(ctx.trace, layer, dtype=getattr(torch, PRODUCT_DTYPE))
            norms, svals = product_log_norms(jac, ctx.settings.lags, full_spectrum=True)  # (K, M, B), (M, B, S)
            log_norms.append(log_mean_exp(norms, dim=-1).T)
            spread.append(norms.std(dim=-1).T)
            log_svals.append(log_mean_exp(svals, dim=1))
        log_norm, log_sv = torch.stack(log_norms, dim=1), torch.stack(log_svals, dim=1)
        return {"jacobian_log_norm": log_norm, "jacobian_norm": log_norm.exp(),
                "jacobian_log_norm_std": torch.stack(spread, dim=1),
                "jacobian_log_singular_values": log_sv, "jacobian_singular_values": log_sv.exp()}

    def attrs(self, settings: ProbeSettings) -> dict[str, dict]:
        return {"jacobian_log_singular_values": PRODUCT_ATTRS, "jacobian_singular_values": PRODUCT_ATTRS}
