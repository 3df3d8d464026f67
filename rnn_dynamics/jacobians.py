"""State-to-state Jacobians, their products over time, and gradient norms over time.

For an Elman layer ``h_t = f(a_t)``, ``a_t = W h_{t-1} + drive_t``, the step Jacobian is
``J_t = dh_t/dh_{t-1} = diag(f'(a_t)) W``. :class:`ElmanJacobians` keeps that structure
(one vector per step, one shared matrix) and never builds J_t; :class:`DenseJacobians`
holds explicit matrices and serves every other cell through :func:`step_jacobians_autograd`
(torch.func), which is also the reference the structured path is tested against.

Products are accumulated with a per-step rescaling whose logarithm is carried apart,
so norms far below or above the float range (a 784-step product of contracting maps)
come out as finite logarithms instead of 0 or inf.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .nonlinearities import derivative


class ElmanJacobians:
    """The sequence J_1..J_T with J_t = diag(d_t) W, kept as factors.

    ``weight`` is (..., N, N) and ``dact`` (T, ..., N) holds f'(a_t); leading dims
    broadcast (e.g. weight (M, 1, N, N) against dact (T, M, B, N)). Index ``i`` is J_{i+1}.
    """

    def __init__(self, weight: torch.Tensor, dact: torch.Tensor):
        self.weight, self.dact = weight, dact

    @classmethod
    def from_preacts(cls, weight: torch.Tensor, preacts: torch.Tensor, nonlinearity: str) -> "ElmanJacobians":
        """From pre-activations a_1..a_T (T, ..., N) of a layer with recurrent ``weight``."""
        return cls(weight, derivative(nonlinearity, preacts))

    def __len__(self) -> int:
        return self.dact.shape[0]

    @property
    def size(self) -> int:
        return self.weight.shape[-1]

    def dense(self, i: int) -> torch.Tensor:
        """J_{i+1} as a matrix (..., N, N)."""
        return self.dact[i].unsqueeze(-1) * self.weight

    def left(self, i: int, q: torch.Tensor) -> torch.Tensor:
        """J_{i+1} @ q, costing one matmul with W."""
        return self.dact[i].unsqueeze(-1) * (self.weight @ q)

    def right(self, p: torch.Tensor, i: int) -> torch.Tensor:
        """p @ J_{i+1}, costing one matmul with W.

        When W is shared along the dim before the matrix dims (one W per cell, many
        sequences), the sequences are folded into the rows of one larger matmul,
        which is faster than a broadcast batch of small ones.
        """
        scaled = p * self.dact[i].unsqueeze(-2)
        w = self.weight
        if w.dim() == scaled.dim() and w.dim() >= 3 and w.shape[-3] == 1 and scaled.shape[-3] > 1:
            n = w.shape[-1]
            folded = scaled.reshape(*scaled.shape[:-3], -1, n) @ w.squeeze(-3)
            return folded.reshape(scaled.shape)
        return scaled @ w


class DenseJacobians:
    """An explicit sequence of step Jacobians (T, ..., N, N), for any cell."""

    def __init__(self, jacobians: torch.Tensor):
        if jacobians.dim() < 3 or jacobians.shape[-1] != jacobians.shape[-2]:
            raise ValueError(f"step Jacobians must be (T, ..., N, N), got shape {tuple(jacobians.shape)}")
        self.jacobians = jacobians

    def __len__(self) -> int:
        return self.jacobians.shape[0]

    @property
    def size(self) -> int:
        return self.jacobians.shape[-1]

    def dense(self, i: int) -> torch.Tensor:
        return self.jacobians[i]

    def left(self, i: int, q: torch.Tensor) -> torch.Tensor:
        return self.jacobians[i] @ q

    def right(self, p: torch.Tensor, i: int) -> torch.Tensor:
        return p @ self.jacobians[i]


JacobianSequence = ElmanJacobians | DenseJacobians


def step_jacobians_autograd(step: Callable, h_prev: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """dh_t/dh_{t-1} by ``torch.func.jacrev`` of ``step(h (N,), drive (D,)) -> (N,)``.

    ``h_prev`` is (..., N) (the states h_0..h_{T-1}), ``drive`` (..., D) the matching
    inputs; returns (..., N, N). Works for any cell whose step has that form.
    """
    lead = h_prev.shape[:-1]
    jac = torch.func.vmap(torch.func.jacrev(step, argnums=0))(
        h_prev.reshape(-1, h_prev.shape[-1]), drive.reshape(-1, drive.shape[-1])
    )
    return jac.reshape(*lead, jac.shape[-2], jac.shape[-1])


def default_lags(seq_len: int, count: int = 30) -> list[int]:
    """About ``count`` log-spaced integer lags from 1 to ``seq_len``, both ends included."""
    if seq_len < 1:
        raise ValueError(f"sequence length must be positive, got {seq_len}")
    grid = torch.logspace(0.0, math.log10(seq_len), count, dtype=torch.float64)
    return sorted({int(round(v)) for v in grid.tolist()} | {1, seq_len})


def _check_lags(lags: Sequence[int], seq_len: int) -> list[int]:
    lags = sorted({int(k) for k in lags})
    if not lags or lags[0] < 1 or lags[-1] > seq_len:
        raise ValueError(f"lags must lie in 1..{seq_len} (the sequence length), got {lags[:1]}..{lags[-1:]}")
    return lags


def product_log_norms(jacobians: JacobianSequence, lags: Sequence[int], *, full_spectrum: bool = False):
    """ln ||dh_T/dh_{T-k}||_2 for each lag k (the largest singular value of J_T ... J_{T-k+1}).

    Returns ``(log_norms, log_singular_values)``: log_norms is (len(lags), ...) and
    log_singular_values the (..., N) ln singular values of the full product dh_T/dh_0
    (descending) when ``full_spectrum`` is set, else None. A product that is exactly
    zero (every path cut by inactive ReLUs) gives -inf.
    """
    seq_len = len(jacobians)
    lags = _check_lags(lags, seq_len)
    wanted = set(lags)
    prod = jacobians.dense(seq_len - 1)
    log_scale = torch.zeros(prod.shape[:-2], dtype=torch.float64, device=prod.device)
    kept, kept_scales = [], []
    for k in range(1, lags[-1] + 1):
        if k > 1:
            prod = jacobians.right(prod, seq_len - k)
        scale = prod.abs().amax(dim=(-2, -1))
        dead = scale == 0
        scale = torch.where(dead, torch.ones_like(scale), scale)
        prod = prod / scale[..., None, None]
        log_scale = log_scale + torch.log(scale).double()
        log_scale = torch.where(dead, torch.full_like(log_scale, -math.inf), log_scale)
        if k in wanted:
            kept.append(prod)
            kept_scales.append(log_scale)
    norms = torch.linalg.matrix_norm(torch.stack(kept), ord=2).double()
    log_norms = torch.log(norms) + torch.stack(kept_scales)
    log_svals = None
    if full_spectrum:
        if lags[-1] != seq_len:
            raise ValueError("full_spectrum needs the lag equal to the sequence length among the lags")
        log_svals = torch.log(torch.linalg.svdvals(kept[-1]).double()) + kept_scales[-1].unsqueeze(-1)
    return log_norms, log_svals


def lag_product_autograd(step: Callable, h_start: torch.Tensor, drives: torch.Tensor) -> torch.Tensor:
    """dh_T/dh_{T-k} by ``torch.autograd.functional.jacobian`` of k steps from ``h_start``.

    The research-code way: rerun the recurrence from h_{T-k} over ``drives`` (k, D)
    for one sequence and differentiate. The reference for :func:`product_log_norms`.
    """

    def unroll(h):
        for drive in drives:
            h = step(h, drive)
        return h

    return torch.autograd.functional.jacobian(unroll, h_start)


def state_gradient_norms(loss: torch.Tensor, states: Sequence[torch.Tensor]) -> torch.Tensor:
    """||dL/dh_t|| for every state in ``states`` (total derivative, through the recurrence).

    ``loss`` must be a sum of independent per-sample losses so that the gradient
    with respect to sample b's state is that sample's own; returns (len(states), ...)
    norms over the last dim. States that do not influence the loss get 0.
    """
    grads = torch.autograd.grad(loss, list(states), allow_unused=True, retain_graph=False)
    norms = [
        torch.zeros(s.shape[:-1], dtype=s.dtype, device=s.device) if g is None else g.norm(dim=-1)
        for s, g in zip(states, grads)
    ]
    return torch.stack(norms)
