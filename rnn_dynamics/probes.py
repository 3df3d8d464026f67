"""What is recorded about a stack while it trains.

A :class:`Prober` is called at each probe step and returns one numpy array per record
variable, each with the cell dim first (see ``records.SCHEMA`` for names, dims and
meaning). The Jacobian and gradient quantities use a fixed probe batch: the first
``probe_batch`` sequences of the test set, identical at every step and for every cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .cells import ElmanStack
from .jacobians import ElmanJacobians, product_log_norms, state_gradient_norms
from .lyapunov import model_largest_exponent, model_lyapunov_spectrum
from .nonlinearities import active_fraction
from .spectra import eigenvalues, singular_values
from .tasks.base import Task


@dataclass(frozen=True)
class LyapunovProbe:
    """How the Lyapunov probe runs: warm-up steps discarded (None: T // 10) and QR interval."""

    warmup: int | None = None
    reortho_every: int = 1

    def warmup_steps(self, seq_len: int) -> int:
        return seq_len // 10 if self.warmup is None else self.warmup

    def describe(self) -> dict:
        """Attrs for the recorded variables."""
        return {"warmup_steps": "T // 10" if self.warmup is None else self.warmup,
                "reortho_every": self.reortho_every}


#: Upper bound on elements of one layer's drive tensor during test evaluation.
_TEST_CHUNK_ELEMENTS = 20_000_000


def log_mean_exp(log_values: torch.Tensor, dim: int) -> torch.Tensor:
    """ln(mean(exp(x))) along ``dim``, exact for values far outside the float range."""
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])


class Prober:
    """Records spectra, Jacobian-product norms, gradient norms over time and losses."""

    def __init__(self, task: Task, lags: Sequence[int], probe_batch: int = 4, test_size: int = 256,
                 lyapunov: LyapunovProbe | None = None):
        if probe_batch < 1:
            raise ValueError(f"probe batch must be positive, got {probe_batch}")
        if test_size < 0:
            raise ValueError(f"probe test size must be >= 0 (0 = the whole test set), got {test_size}")
        self.task, self.lags, self.lyapunov_probe = task, list(lags), lyapunov
        total = task.test_x.shape[1]
        self.test_size = total if test_size == 0 else min(test_size, total)
        self.probe_x = task.test_x[:, :probe_batch]
        self.probe_y = task.test_y[..., :probe_batch]

    def __call__(self, model: ElmanStack, step: int) -> dict[str, np.ndarray]:
        record = self.weight_spectra(model)
        record.update(self.losses(model, step))
        record.update(self.dynamics(model))
        if self.lyapunov_probe is not None:
            record.update(self.lyapunov(model))
        return record

    def lyapunov(self, model: ElmanStack) -> dict[str, np.ndarray]:
        """Full Lyapunov spectrum (QR) and Benettin largest exponent per layer, mean over probe sequences."""
        settings = self.lyapunov_probe
        x = self.probe_x.to(model.w_out.device)
        warmup = settings.warmup_steps(x.shape[0])
        spectra, largest = [], []
        for layer in range(model.num_layers):
            result = model_lyapunov_spectrum(model, x, layer=layer, warmup=warmup,
                                             reortho_every=settings.reortho_every)
            spectra.append(result.exponents.mean(dim=1))  # (M, N); -inf stays -inf
            largest.append(model_largest_exponent(model, x, layer=layer, warmup=warmup).mean(dim=1))
        return {
            "lyapunov": torch.stack(spectra, dim=1).cpu().numpy(),
            "lyapunov_benettin": torch.stack(largest, dim=1).cpu().numpy(),
        }

    @staticmethod
    def weight_spectra(model: ElmanStack) -> dict[str, np.ndarray]:
        """Eigenvalues, singular values and spectral radius of every W_hh: (M, L, ...)."""
        weights = torch.stack([w.detach() for w in model.w_hh], dim=1)
        eig = eigenvalues(weights)
        return {
            "eig_real": eig.real.numpy(),
            "eig_imag": eig.imag.numpy(),
            "spectral_radius": eig.abs().amax(dim=-1).numpy(),
            "singular_values": singular_values(weights).numpy(),
        }

    @torch.no_grad()
    def losses(self, model: ElmanStack, step: int) -> dict[str, np.ndarray]:
        """Training-batch loss at ``step`` (before its update); test loss and metric on the
        first ``test_size`` test sequences."""
        device = model.w_out.device
        x, y = self.task.train_batch(step)
        loss = self.task.per_sample_loss(model(x.to(device)), y.to(device)).mean(dim=1)
        per_seq = max(1, _TEST_CHUNK_ELEMENTS // (self.task.seq_len * model.n_cells * model.hidden_size))
        test_loss = torch.zeros(model.n_cells, dtype=torch.float64)
        test_metric = torch.zeros(model.n_cells, dtype=torch.float64)
        count = 0
        for x, y in self.task.test_batches(per_seq, limit=self.test_size):
            out = model(x.to(device))
            y = y.to(device)
            test_loss += self.task.per_sample_loss(out, y).double().sum(dim=1).cpu()
            test_metric += self.task.per_sample_metric(out, y).double().sum(dim=1).cpu()
            count += x.shape[1]
        return {
            "loss": loss.double().cpu().numpy(),
            "test_loss": (test_loss / count).numpy(),
            "test_metric": (test_metric / count).numpy(),
        }

    def dynamics(self, model: ElmanStack) -> dict[str, np.ndarray]:
        """Jacobian-product norms vs lag, singular values of dh_T/dh_0, ||dL/dh_t|| and activity per layer."""
        device = model.w_out.device
        trace = model.trace(self.probe_x.to(device), grad_wrt_states=True)
        loss = self.task.per_sample_loss(trace.outputs, self.probe_y.to(device)).sum()
        flat_states = [h for layer_states in trace.states for h in layer_states]
        grads = state_gradient_norms(loss, flat_states)  # (L * (T + 1), M, B)
        grads = grads.reshape(model.num_layers, -1, *grads.shape[1:]).mean(dim=-1)  # (L, T + 1, M)
        norms, norm_spread, svals, activity = [], [], [], []
        with torch.no_grad():
            for layer in range(model.num_layers):
                preacts = trace.stacked_preacts(layer).detach()
                jac = ElmanJacobians.from_preacts(model.w_hh[layer].detach().unsqueeze(1), preacts,
                                                  model.nonlinearity)
                log_norms, log_svals = product_log_norms(jac, self.lags, full_spectrum=True)  # (K, M, B)
                norms.append(log_mean_exp(log_norms, dim=-1).exp())
                norm_spread.append(log_norms.std(dim=-1))
                svals.append(log_mean_exp(log_svals, dim=1).exp())
                states = trace.stacked_states(layer)[1:].detach()
                activity.append(active_fraction(model.nonlinearity, states, dim=(0, 2, 3)))
        return {
            "jacobian_norm": torch.stack(norms, dim=1).permute(2, 1, 0).double().cpu().numpy(),
            "jacobian_log_norm_std": torch.stack(norm_spread, dim=1).permute(2, 1, 0).double().cpu().numpy(),
            "jacobian_singular_values": torch.stack(svals, dim=1).double().cpu().numpy(),
            "grad_norm": grads.permute(2, 0, 1).double().detach().cpu().numpy(),
            "active_fraction": torch.stack(activity, dim=1).cpu().numpy(),
        }
