"""The gradient norm ||dL/ds_t|| reaching every time step, as a logarithm and plainly."""

from __future__ import annotations

import torch

from ..jacobians import state_gradient_log_norms
from ..records import Variable
from .base import Probe, ProbeContext, log_mean_exp, register_probe


@register_probe
class GradNorm(Probe):
    name = "grad_norm"
    reads_output = True
    variables = {
        "grad_log_norm": Variable(
            ("layer", "step", "time"), "ln ||dL/ds_t||, mean over probe sequences", "nats",
            "ln of the mean over probe sequences of the norm of the total derivative of the per-sequence loss "
            "with respect to the full state s_t (through the recurrence and the layers above), walked back "
            "through time with the scale carried apart, so exact far outside the float range; -inf where the "
            "gradient is exactly zero; NaN where t > T"),
        "grad_norm": Variable(("layer", "step", "time"), "||dL/ds_t||, mean over probe sequences", "1",
                              "exp(grad_log_norm): 0 below the float range, where only the log is meaningful"),
    }

    def record(self, ctx: ProbeContext):
        model, trace = ctx.model, ctx.trace
        hidden = trace.hidden(model.num_layers - 1)[1:].detach().requires_grad_()
        with torch.enable_grad():
            loss = ctx.task.per_sample_loss(model.read_out(hidden), ctx.y).sum()
            readout_grad = torch.autograd.grad(loss, hidden)[0]
        with torch.no_grad():
            log_norms = state_gradient_log_norms(model, trace, readout_grad)  # (L, T + 1, M, B)
        log_norm = log_mean_exp(log_norms, dim=-1).permute(2, 0, 1)
        return {"grad_log_norm": log_norm, "grad_norm": log_norm.exp()}
