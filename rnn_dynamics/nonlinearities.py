"""The Elman-cell nonlinearities f, their derivatives f'(a), and what "active" means for each."""

from __future__ import annotations

import torch

NONLINEARITIES = ("relu", "tanh", "linear")

#: |h| above this counts a tanh unit as saturated.
TANH_SATURATION = 0.95


def check_nonlinearity(name: str) -> str:
    """Return ``name`` if it is a known nonlinearity, else raise listing the valid ones."""
    if name not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {name!r}; valid nonlinearities: {', '.join(NONLINEARITIES)}")
    return name


def activation(name: str, pre: torch.Tensor) -> torch.Tensor:
    """f(a) for the named nonlinearity."""
    if name == "relu":
        return torch.relu(pre)
    if name == "tanh":
        return torch.tanh(pre)
    check_nonlinearity(name)
    return pre


def derivative(name: str, pre: torch.Tensor) -> torch.Tensor:
    """f'(a), the diagonal of the step Jacobian's left factor. ReLU'(0) is taken as 0."""
    if name == "relu":
        return (pre > 0).to(pre.dtype)
    if name == "tanh":
        return 1.0 - torch.tanh(pre) ** 2
    check_nonlinearity(name)
    return torch.ones_like(pre)


def activation_(name: str, x: torch.Tensor) -> torch.Tensor:
    """f applied in place to ``x`` (which holds a): the fused forward writes into its state buffer."""
    if name == "relu":
        return x.clamp_(min=0)
    if name == "tanh":
        return x.tanh_()
    check_nonlinearity(name)
    return x


def derivative_from_state(name: str, h: torch.Tensor) -> torch.Tensor:
    """f'(a) written through h = f(a), for backward passes that keep only states:
    ReLU 1[h > 0] (= 1[a > 0]), tanh 1 - h^2, linear 1."""
    if name == "relu":
        return (h > 0).to(h.dtype)
    if name == "tanh":
        return 1.0 - h * h
    check_nonlinearity(name)
    return torch.ones_like(h)


def active_fraction(name: str, states: torch.Tensor, dim) -> torch.Tensor:
    """Mean over ``dim`` of: ReLU h > 0; tanh saturated |h| > 0.95; linear NaN (no such notion)."""
    if name == "relu":
        return (states > 0).double().mean(dim=dim)
    if name == "tanh":
        return (states.abs() > TANH_SATURATION).double().mean(dim=dim)
    check_nonlinearity(name)
    return torch.full_like(states.double().mean(dim=dim), float("nan"))
