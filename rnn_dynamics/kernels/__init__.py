"""Fused scan kernels (Triton) for the recurrences, and where they run instead of the per-step loop.

A cell type with a module here (``elman``, ``lstm``, ``gru``) gets ``forward``/``backward`` launchers that
its autograd Function calls in place of its time loop: one launch per layer and direction instead
of a few per time step, which on a GPU is what a step costs (launch overhead, not arithmetic).
:func:`scan_kernel` decides, by the mode (environment variable ``RNN_DYNAMICS_KERNELS`` or
``with scan_kernels(mode):``):

- ``auto`` (default): on CUDA tensors (float32 or float64, N <= 128, a nonlinearity with a kernel
  activation, Triton importable). The first use of each (cell type, device, dtype, N,
  nonlinearity) runs the kernel and the loop on a small random problem, forward and gradients;
  a kernel that fails to build there or disagrees is reported once and the loop runs instead. The
  first launch of each problem then picks the launch geometry by timing (:mod:`.tuning`).
- ``on``: wherever those conditions hold, on any device, unchecked, errors raised, in the default
  launch geometry. On the CPU this needs Triton's interpreter (``TRITON_INTERPRET=1`` before Triton is
  imported): the tests.
- ``off``: never.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import warnings
from contextlib import contextmanager
from types import ModuleType

import torch

MODES = ("auto", "on", "off")
KERNEL_DTYPES = (torch.float32, torch.float64)
#: Agreement the first-use check asks of a kernel against the loop (rtol, atol) per dtype.
CHECK_TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-9, 1e-12)}
_modes_set: list[str] = []


def _checked_mode(mode: str, source: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{source} {mode!r} is not a kernel mode; valid modes: {', '.join(MODES)}")
    return mode


def kernel_mode() -> str:
    """The mode in force: the innermost :func:`scan_kernels`, else ``RNN_DYNAMICS_KERNELS``, else ``auto``."""
    if _modes_set:
        return _modes_set[-1]
    return _checked_mode(os.environ.get("RNN_DYNAMICS_KERNELS", "auto"), "RNN_DYNAMICS_KERNELS=")


@contextmanager
def scan_kernels(mode: str):
    """Run the enclosed code with the kernel mode ``auto``, ``on`` or ``off``."""
    _modes_set.append(_checked_mode(mode, "kernel mode"))
    try:
        yield
    finally:
        _modes_set.pop()


@functools.lru_cache(maxsize=None)
def _has_kernel_module(cell_type: str) -> bool:
    """Whether this package has a module for the cell type (asked in every forward on a GPU: cached)."""
    return importlib.util.find_spec(f"{__name__}.{cell_type}") is not None


def kernel_cells() -> list[str]:
    """The registered cell types that have a kernel module here."""
    from ..models import list_cells

    return [cell for cell in list_cells() if _has_kernel_module(cell)]


def scan_kernel(cell_type: str, like: torch.Tensor, hidden_size: int, nonlinearity: str) -> ModuleType | None:
    """The kernel module of ``cell_type`` if it should run on tensors like ``like``; None: run the loop."""
    mode = kernel_mode()
    if mode == "off" or (mode == "auto" and like.device.type != "cuda") or like.dtype not in KERNEL_DTYPES:
        return None
    if not _has_kernel_module(cell_type):
        return None
    try:
        module = importlib.import_module(f"{__name__}.{cell_type}")
    except ImportError as error:
        if mode == "on":
            raise
        _warn_once(f"the fused scan kernels need Triton ({error}); the recurrences run step by step")
        return None
    from .activations import KERNEL_ACTIVATIONS
    from .launch import MAX_HIDDEN

    if hidden_size > MAX_HIDDEN or nonlinearity not in KERNEL_ACTIVATIONS.names():
        return None
    if mode == "auto" and not _agrees(cell_type, str(like.device), like.dtype, hidden_size, nonlinearity):
        return None
    return module


def describe_recurrence(cell_type: str, like: torch.Tensor, hidden_size: int, nonlinearity: str) -> str:
    """What runs the recurrence of such a stack here, for the dataset: kernel and loop differ in last bits, and
    so do kernels that hold the cell's matrix on chip and kernels that stream it (their sums run in chunks)."""
    module = scan_kernel(cell_type, like, hidden_size, nonlinearity)
    if module is None:
        return "per-step loop"
    import triton

    from . import launch

    default = launch.geometries(hidden_size, like.dtype, options=module.LAUNCH, **launch.device_target(like))[0]
    streamed = ", matrix streamed from cache" if default.get("RESIDENT") is False else ""
    return f"Triton scan kernels (triton {triton.__version__}, {default['DOT']} dots{streamed})"


@functools.lru_cache(maxsize=None)
def _agrees(cell_type: str, device: str, dtype: torch.dtype, hidden_size: int, nonlinearity: str) -> bool:
    """Whether the kernel builds here and gives the loop's outputs and gradients on a small random problem."""
    with torch.inference_mode(False), torch.enable_grad():  # whatever mode the first caller is in
        return _check_agreement(cell_type, device, dtype, hidden_size, nonlinearity)


def _check_agreement(cell_type: str, device: str, dtype: torch.dtype, hidden_size: int, nonlinearity: str) -> bool:
    from ..models import get_cell

    gen = torch.Generator().manual_seed(0)
    # two layers under a last readout: the top layer's backward starts from dL/ds_T and reads no per-step
    # gradient, the lower one's reads every step's: both variants of each backward kernel are checked
    stack = get_cell(cell_type)(2, 3, hidden_size, 2, nonlinearity, num_layers=2, readout="last")
    with torch.no_grad():
        for p in stack.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(hidden_size))
    stack = stack.to(device, dtype)
    x = torch.randn(7, 5, 3, generator=gen).to(device, dtype)  # 5 sequences: a partly masked tile

    def run(mode: str) -> list[torch.Tensor]:
        with scan_kernels(mode):
            out = stack.forward_with_state(x)[0]
            return [out, *torch.autograd.grad(out.square().sum(), list(stack.parameters()))]

    where = f"{cell_type}, {device}, {str(dtype).removeprefix('torch.')}, N = {hidden_size}, {nonlinearity}"
    try:
        fused = run("on")
    except Exception as error:  # noqa: BLE001 - whatever stops a kernel building here, the loop still serves
        _warn_once(f"the fused scan kernel ({where}) failed: {type(error).__name__}: {error}; using the loop")
        return False
    rtol, atol = CHECK_TOLERANCE[dtype]
    worst = max(((a - b).abs() - rtol * b.abs()).max().item() for a, b in zip(fused, run("off")))
    if not worst <= atol:  # NaN (a kernel that made NaN where the loop did not) disagrees too
        _warn_once(f"the fused scan kernel ({where}) disagrees with the loop by {worst:.1e}; using the loop")
        return False
    return True


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
