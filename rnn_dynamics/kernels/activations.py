"""Nonlinearities as Triton device functions, for the fused scan kernels: name -> (f, f' through f's output).

A nonlinearity registered in :mod:`rnn_dynamics.nonlinearities` runs in the kernels when a pair
of ``triton.jit`` functions is registered here under the same name; one without a pair keeps
the per-step loop. Importing this module imports Triton.
"""

from __future__ import annotations

from typing import NamedTuple

import triton
import triton.language as tl
from triton.language.extra import libdevice

from ..registry import Registry


class KernelActivation(NamedTuple):
    """``forward(a) -> f(a)`` and ``derivative(out) -> f'(a)`` written through out = f(a), as in
    :meth:`Nonlinearity.derivative_from_output`."""

    forward: triton.JITFunction
    derivative: triton.JITFunction


KERNEL_ACTIVATIONS: Registry[KernelActivation] = Registry("kernel activation")


def register_kernel_activation(name: str, forward, derivative, *, overwrite: bool = False) -> KernelActivation:
    """Let the kernels run the nonlinearity ``name`` (the name it has in the nonlinearity registry)."""
    return KERNEL_ACTIVATIONS.add(name, KernelActivation(forward, derivative), overwrite=overwrite)


@triton.jit
def relu(a):
    return tl.maximum(a, 0.0)


@triton.jit
def relu_derivative(out):
    return tl.where(out > 0.0, 1.0, 0.0)


if triton.knobs.runtime.interpret:
    @triton.jit
    def exp(x):
        """e^x; in Triton's interpreter tl.exp is numpy's, and libdevice does not exist."""
        return tl.exp(x)
else:
    @triton.jit
    def exp(x):
        """e^x within 2 ulps (libdevice): compiled, tl.exp in float32 is ex2.approx of a rounded x log2(e),
        whose error grows with |x| (a sigmoid 5 eps off at a = -11.4 on an H200)."""
        return libdevice.exp(x)


@triton.jit
def expm1(x):
    """e^x - 1 without the cancellation of exp(x) - 1 near 0: there Kahan's (u - 1) x / log(u), u = e^x;
    for |x| >= 1/2 plain u - 1 (at most 2.5 ulps lost, and no log of a subnormal u)."""
    u = exp(x)
    kahan = tl.abs(x) < 0.5
    v = tl.where(kahan & (u != 1.0), u, 2.0)  # 2: a stand-in where the quotient is not used (no log 0, 0 / 0)
    return tl.where(kahan, tl.where(u == 1.0, x, (v - 1.0) * x / tl.log(v)), u - 1.0)


@triton.jit
def tanh(a):
    # m = e^{-2|a|} - 1 in (-1, 0] never overflows, and tanh|a| = -m / (2 + m) keeps float precision for
    # small |a|, where (1 - e^{-2|a|}) / (1 + e^{-2|a|}) cancels (3e-5 relative error at |a| = 1e-3).
    m = expm1(-2.0 * tl.abs(a))
    return tl.where(a < 0.0, 1.0, -1.0) * m / (2.0 + m)


@triton.jit
def tanh_derivative(out):
    # As Tanh.derivative_from_output: (1 - y)(1 + y) has no cancellation at |y| near 1 and no product a
    # compiler may fuse into an FMA, so it equals the loop's bit for bit on a GPU too (1 - y y did not, H200).
    return (1.0 - out) * (1.0 + out)


@triton.jit
def sigmoid(a):
    # e^{-|a|} never overflows; a < 0 gives e / (1 + e) = 1 / (1 + e^{-a}).
    e = exp(-tl.abs(a))
    return tl.where(a < 0.0, e, 1.0) / (1.0 + e)


@triton.jit
def linear(a):
    return a


@triton.jit
def linear_derivative(out):
    return tl.full(out.shape, 1.0, out.dtype)


register_kernel_activation("relu", relu, relu_derivative)
register_kernel_activation("tanh", tanh, tanh_derivative)
register_kernel_activation("linear", linear, linear_derivative)
