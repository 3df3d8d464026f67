"""Compile every scan kernel for an NVIDIA architecture without a GPU, and report registers and spills.

    python -m rnn_dynamics.kernels.compile_report               # sm_90 (H100, H200) and sm_80 (A100)
    python -m rnn_dynamics.kernels.compile_report --arch 90 --dtype float32 --hidden 100
    python -m rnn_dynamics.kernels.compile_report --arch 90 --dtype float32 --hidden 100 --geometries all

Triton lowers each kernel to PTX and ptxas (shipped with Triton) to a cubin, exactly as a first launch
on such a GPU would; ``cuobjdump --dump-resource-usage`` (also shipped) reads the registers per thread
and the stack, which holds the spills. A kernel that does not build fails here, before any GPU time.
Each line also gives the program's shared memory and how many programs fit on one multiprocessor by
registers and shared memory. By default each kernel is built in its default launch geometry;
``--geometries all`` builds every geometry a launch may be tuned into (:mod:`~rnn_dynamics.kernels.tuning`).
Must run without ``TRITON_INTERPRET`` (the interpreter replaces the compiler).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import NamedTuple

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from ..commandline import OneLineParser

from . import kernel_cells
from .activations import KERNEL_ACTIVATIONS
from .launch import MAX_HIDDEN, geometries, shared_memory_per_block
from .tuning import describe

TRITON_TYPES = {"float32": "fp32", "float64": "fp64"}


class Usage(NamedTuple):
    registers: int
    stack_bytes: int
    shared_bytes: int


#: Registers of one multiprocessor (every capability from 7.0 to 12.0).
REGISTERS_PER_SM = 65536
#: Shared memory CUDA reserves for each resident program (block), on top of what the program uses.
RESERVED_SHARED_PER_BLOCK = 1 << 10


def programs_per_sm(arch: int, usage: Usage, threads: int) -> int:
    """How many programs of a kernel fit on one multiprocessor by its registers and its shared memory (the
    multiprocessor has the most one block may use plus the reserve); 0: it does not launch there."""
    shared = shared_memory_per_block(divmod(arch, 10)) + RESERVED_SHARED_PER_BLOCK
    by_shared = shared // (usage.shared_bytes + RESERVED_SHARED_PER_BLOCK)
    return min(REGISTERS_PER_SM // (usage.registers * threads), by_shared)


def compile_kernel(kernel, arch: int, dtype: str, settings: dict, nonlinearity: str = "tanh"):
    """``kernel`` built for sm_<arch> in the launch ``settings`` (one of :func:`geometries`) with the arguments
    its launcher passes (by the kernels' naming: ``*_ptr`` pointers, UPPER-CASE compile-time constants, the
    rest 32-bit integers; ``counter_ptr``, the split cells' meeting counters, to int32)."""
    activation = KERNEL_ACTIVATIONS.get(nonlinearity)
    per_call = {"ACTIVATION": activation.forward, "PHI": activation.forward, "DERIVATIVE": activation.derivative,
                "HAS_GRAD": True}  # the backward as below the top layer: reading every step's gradient
    signature, constants = {}, {}
    for name in kernel.arg_names:
        if name == "counter_ptr":
            signature[name] = "*i32"
        elif name.endswith("_ptr"):
            signature[name] = "*" + TRITON_TYPES[dtype]
        elif name.isupper():
            signature[name] = "constexpr"
            constants[name] = per_call[name] if name in per_call else settings[name]
        else:
            signature[name] = "i32"
    options = {"num_warps": settings["num_warps"], "num_stages": settings["num_stages"]}
    return triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constants),
                          target=GPUTarget("cuda", arch, 32), options=options)


def _tool(name: str) -> str:
    """A CUDA tool shipped with Triton's NVIDIA backend (ptxas, cuobjdump)."""
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)


def ptxas_architectures() -> set[int]:
    """The compute capabilities Triton's ptxas builds for, read from its help; empty if it lists none."""
    text = subprocess.run([_tool("ptxas"), "--help"], capture_output=True, text=True).stdout
    return {int(number) for number in re.findall(r"'sm_(\d+)'", text)}


def resource_usage(compiled) -> Usage:
    """Registers per thread and stack bytes per thread of a compiled kernel's cubin, and its shared memory."""
    tool = _tool("cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        text = subprocess.run([tool, "--dump-resource-usage", cubin.name], capture_output=True, text=True,
                              check=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", text)
    return Usage(int(found.group(1)), int(found.group(2)), compiled.metadata.shared)


def report(archs, dtypes, hiddens, every_geometry: bool = False) -> list[tuple]:
    """(arch, cell, direction, dtype, hidden, launch settings, Usage) for every kernel of every cell type that
    has them, in the default geometry or (``every_geometry``) in each that a launch may be tuned into."""
    import importlib

    rows = []
    for cell in kernel_cells():
        module = importlib.import_module(f"{__package__}.{cell}")
        for direction, kernel in (("forward", module._forward), ("backward", module._backward)):
            for arch in archs:
                for dtype in dtypes:
                    for hidden in hiddens:
                        candidates = geometries(hidden, getattr(torch, dtype), divmod(arch, 10), module.LAUNCH)
                        for settings in candidates if every_geometry else candidates[:1]:
                            usage = resource_usage(compile_kernel(kernel, arch, dtype, settings))
                            rows.append((arch, cell, direction, dtype, hidden, settings, usage))
    return rows


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m rnn_dynamics.kernels.compile_report", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, nargs="+", default=[90, 80], help="compute capabilities (default 90 80)")
    parser.add_argument("--dtype", nargs="+", default=list(TRITON_TYPES), choices=list(TRITON_TYPES))
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 100], help="hidden sizes (default 16 100)")
    parser.add_argument("--geometries", choices=["default", "all"], default="default",
                        help="each kernel in its default launch geometry (default) or in all it may be tuned into")
    args = parser.parse_args(argv)
    if not all(1 <= hidden <= MAX_HIDDEN for hidden in args.hidden):
        parser.error(f"--hidden must lie in 1..{MAX_HIDDEN} (the sizes the kernels serve), got {args.hidden}")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        parser.error("TRITON_INTERPRET is set: the interpreter replaces the compiler; unset it")
    known = ptxas_architectures()
    unknown = [arch for arch in args.arch if known and arch not in known]
    if unknown:
        parser.error(f"--arch {' '.join(map(str, unknown))}: not a compute capability this ptxas builds for; "
                     f"valid: {' '.join(map(str, sorted(known)))}")
    print(f"triton {triton.__version__}: registers and stack (spills) bytes per thread, shared memory per program, "
          "programs per multiprocessor (by registers and shared memory)")
    rows = report(args.arch, args.dtype, args.hidden, every_geometry=args.geometries == "all")
    for arch, cell, direction, dtype, hidden, settings, usage in rows:
        threads = 32 * settings["num_warps"]
        print(f"  sm_{arch} {cell:6s} {direction:8s} {dtype} N = {hidden:3d} ({settings['DOT']:7s} dots, "
              f"{describe(settings)}): {usage.registers:3d} registers, "
              f"{usage.stack_bytes:4d} bytes stack, {usage.shared_bytes >> 10:3d} KB shared, "
              f"{programs_per_sm(arch, usage, threads)} programs per SM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
