"""Registered optimizers: name -> a builder of ``torch.optim`` optimizers.

Every built-in optimizer is elementwise, so the cells of a stack (whose parameters
share tensors along a leading cell dim) are updated exactly as if each trained alone.
A user adds one with ``OPTIMIZERS.add(name, builder)``; a builder is called as
``builder(params, lr=..., momentum=...)``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .registry import Registry

OptimizerBuilder = Callable[..., torch.optim.Optimizer]

OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
def sgd(params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """Stochastic gradient descent with (heavy-ball) momentum; the paper's optimizer."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


@OPTIMIZERS.register("adam")
def adam(params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """Adam with torch's default betas (0.9, 0.999); momentum is not used."""
    return torch.optim.Adam(params, lr=lr)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """RMSprop with momentum (the Keras IRNN example's optimizer)."""
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum)


def make_optimizer(name: str, params, *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name``."""
    return OPTIMIZERS.get(name)(params, lr=lr, momentum=momentum)
