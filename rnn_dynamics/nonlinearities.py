"""Registered nonlinearities: f, f', f' written through f's output, what "active" means, gains.

Each nonlinearity is one :class:`Nonlinearity` object in the :data:`NONLINEARITIES`
registry, looked up by name everywhere (cells, inits, probes): an unknown name fails
with the list of valid ones, it never falls through to a default. A user adds one by
subclassing :class:`Nonlinearity` and passing an instance to :func:`register_nonlinearity`.
"""

from __future__ import annotations

import math

import torch

from . import theory
from .registry import Registry


class Nonlinearity:
    """f and what the toolkit needs to know about it. Subclasses set ``name`` and override the maths."""

    name: str = ""
    #: What :meth:`active` counts, for the schema and the figures.
    active_meaning: str = ""

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        """f(a)."""
        raise NotImplementedError

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """f applied in place to ``x`` (which holds a): the fused forward writes into its state buffer."""
        return x.copy_(self(x))

    def derivative(self, pre: torch.Tensor) -> torch.Tensor:
        """f'(a), the diagonal of the step Jacobian's left factor."""
        raise NotImplementedError

    def derivative_from_output(self, out: torch.Tensor) -> torch.Tensor:
        """f'(a) written through out = f(a), for backward passes that keep only outputs."""
        raise NotImplementedError

    def active(self, out: torch.Tensor) -> torch.Tensor | None:
        """Boolean mask of units counted as active (or saturated) given out = f(a); None: no such notion."""
        return None

    def random_walk_gain(self, n: int) -> float:
        """Gain g of W_ij ~ N(0, g^2 / N) that makes log ||backpropagated vector|| an unbiased walk."""
        raise NotImplementedError

    def variance_preserving_gain(self) -> float:
        """Gain g of W_ij ~ N(0, g^2 / N) that preserves the state variance near the origin."""
        return 1.0

    def __repr__(self) -> str:
        return f"<nonlinearity {self.name}>"


class ReLU(Nonlinearity):
    """max(a, 0); f'(0) is taken as 0."""

    name = "relu"
    active_meaning = "fraction of units with h > 0"

    def __call__(self, pre):
        return torch.relu(pre)

    def apply_(self, x):
        return x.clamp_(min=0)

    def derivative(self, pre):
        return (pre > 0).to(pre.dtype)

    def derivative_from_output(self, out):
        return (out > 0).to(out.dtype)

    def active(self, out):
        return out > 0

    def random_walk_gain(self, n):
        return theory.relu_random_walk_gain(n)

    def variance_preserving_gain(self):
        return math.sqrt(2.0)


#: |f(a)| above this counts a tanh unit as saturated.
TANH_SATURATION = 0.95


class Tanh(Nonlinearity):
    """tanh(a); a unit with |tanh(a)| > 0.95 counts as saturated."""

    name = "tanh"
    active_meaning = f"fraction of saturated units, |h| > {TANH_SATURATION}"

    def __call__(self, pre):
        return torch.tanh(pre.contiguous() if pre.device.type == "cpu" else pre)  # see apply_

    def apply_(self, x):
        if x.is_contiguous() or x.device.type != "cpu":
            return x.tanh_()
        # On strided memory (a gated cell's candidate slice of its gates) torch's CPU tanh wakes its threads for
        # a few thousand values: with 2 threads 19 us for 16 x 100 float32 values, against 6.4 us for a
        # contiguous copy, tanh and copy back (1 thread: 2 us either way; 64 x 100: 69 against 29 us)
        contiguous = x.contiguous()
        return x.copy_(contiguous.tanh_())

    def derivative(self, pre):
        return self.derivative_from_output(torch.tanh(pre))

    def derivative_from_output(self, out):
        # (1 - y)(1 + y), not 1 - y y: no cancellation where |y| is near 1 (saturated units' small slopes keep
        # their relative precision), and the kernels' formula, which a GPU compiler cannot fuse into an FMA.
        # In place into 1 - y: 1.08x the time of 1 - y y on (6, 784, 16, 100) float32, against 1.52x with a
        # third temporary (2 CPU threads, one process)
        return (1.0 - out).mul_(1.0 + out)

    def active(self, out):
        return out.abs() > TANH_SATURATION

    def random_walk_gain(self, n):
        return theory.tanh_random_walk_gain(n)


class Linear(Nonlinearity):
    """The identity map: a linear RNN."""

    name = "linear"

    def __call__(self, pre):
        return pre

    def apply_(self, x):
        return x

    def derivative(self, pre):
        return torch.ones_like(pre)

    def derivative_from_output(self, out):
        return torch.ones_like(out)

    def random_walk_gain(self, n):
        return theory.linear_random_walk_gain(n)


NONLINEARITIES: Registry[Nonlinearity] = Registry("nonlinearity", "nonlinearities")


def register_nonlinearity(nonlinearity: Nonlinearity, *, overwrite: bool = False) -> Nonlinearity:
    """Add a :class:`Nonlinearity` instance under its ``name``."""
    if not nonlinearity.name:
        raise ValueError("a nonlinearity needs a non-empty name")
    return NONLINEARITIES.add(nonlinearity.name, nonlinearity, overwrite=overwrite)


def get_nonlinearity(name: str) -> Nonlinearity:
    """The nonlinearity registered as ``name``; an error listing the valid names otherwise."""
    return NONLINEARITIES.get(name)


for _builtin in (ReLU(), Tanh(), Linear()):
    register_nonlinearity(_builtin)
