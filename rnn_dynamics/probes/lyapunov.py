"""Lyapunov spectra of each layer's full state along the probe trajectories (off by default: costly)."""

from __future__ import annotations

import torch

from ..lyapunov import trace_largest_exponent, trace_lyapunov_spectrum
from ..records import Variable
from .base import Probe, ProbeContext, ProbeSettings, register_probe


@register_probe
class Lyapunov(Probe):
    name = "lyapunov"
    default = False
    variables = {
        "lyapunov": Variable(
            ("layer", "step", "exponent"), "Lyapunov spectrum of the recurrence, mean over probe sequences",
            "nats per time step",
            "QR method (float64) on the step Jacobians of the layer's full state (S = N exponents, 2N for the "
            "LSTM) along the input-driven probe trajectories; -inf for directions a step killed exactly "
            "(inactive ReLU units), and then the mean is -inf too; attrs give warm-up and QR interval"),
        "lyapunov_benettin": Variable(
            ("layer", "step"), "largest Lyapunov exponent by direct simulation, mean over probe sequences",
            "nats per time step",
            "Benettin: two trajectories 1e-7 apart, renormalised every step, same warm-up; the check on "
            "lyapunov at exponent 1"),
    }

    def record(self, ctx: ProbeContext):
        warmup = ctx.settings.lyapunov_warmup_steps(ctx.task.seq_len)
        spectra, largest = [], []
        for layer in range(ctx.model.num_layers):
            result = trace_lyapunov_spectrum(ctx.model, ctx.trace, layer=layer, warmup=warmup,
                                             reortho_every=ctx.settings.lyapunov_reortho_every)
            spectra.append(result.exponents.mean(dim=1))  # (M, S); -inf stays -inf
            largest.append(trace_largest_exponent(ctx.model, ctx.trace, layer=layer, warmup=warmup).mean(dim=1))
        return {"lyapunov": torch.stack(spectra, dim=1), "lyapunov_benettin": torch.stack(largest, dim=1)}

    def attrs(self, settings: ProbeSettings) -> dict[str, dict]:
        warmup = "T // 10" if settings.lyapunov_warmup is None else settings.lyapunov_warmup
        return {
            "lyapunov": {"warmup_steps": warmup, "reortho_every": settings.lyapunov_reortho_every,
                         "method": "QR in float64 (Householder, geqrf + ormqr), interval shortened where the "
                                   "local exponents spread by more than ln(1e8) within it"},
            "lyapunov_benettin": {"warmup_steps": warmup, "eps": 1e-7},
        }
