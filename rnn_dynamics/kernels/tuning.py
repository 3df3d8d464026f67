"""Which launch geometry a scan kernel runs in: on a GPU in ``auto`` mode, the fastest of its candidates
(:func:`~rnn_dynamics.kernels.launch.geometries`) that agree with the default geometry, timed at the first
launch of each problem (as cuDNN's find step and ``triton.autotune`` do); elsewhere the default.

Why time rather than rule: how many sequences a program should own and how many warps share its tile trade
registers per thread against programs per multiprocessor and waves of programs, which the compile report
shows but only the GPU can price (a stack of 32 Elman cells at batch 256 runs 512 programs of 16 sequences,
four waves on an H200's 132 multiprocessors, where the cell's matrix in 144 KB of shared memory lets one
program run on each, or 256 programs of 32 sequences, two waves). Each candidate is checked on the problem it
is timed on: the slab of the output the kernel writes last (its walk's end, which every step feeds) must
equal the default geometry's bit for bit, or the candidate is left out, so that the choice, which timing
noise can change from run to run, changes speed and never a result (the geometries split the state tile's
rows and units among threads, and a streamed matrix's units into chunks whose dots accumulate in one order
whatever the chunks, not the sums of the dots, so equal bits are what they should give); one that
fails to build is left out too. The choice lasts for the process, one per kernel, device, dtype, hidden size,
number of cells, batch size, compile-time arguments and dot arithmetic (the sequence length leaves the
cost of a step as it is). The outputs left behind are those of the geometry chosen, as on every later
launch.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable

import torch

from .launch import BLOCK_K, LaunchOptions, device_target, geometries, grid_for

#: Timed launches per candidate (after one that builds and checks it); the median counts.
TIMED_RUNS = 3
_chosen: dict[tuple, dict] = {}
_forced: list[dict] = []


@contextmanager
def forced_geometry(**settings):
    """Launch every scan kernel in the default geometry with ``settings`` (e.g. ``BLOCK_B=32, num_warps=16``)
    replacing its entries, untimed: for tests in Triton's interpreter and for benchmarks. Nested, the inner
    settings add to the outer ones (an empty inner one keeps them)."""
    _forced.append({**(_forced[-1] if _forced else {}), **settings})
    try:
        yield
    finally:
        _forced.pop()


def tunes(like: torch.Tensor) -> bool:
    """Whether launches on tensors like ``like`` choose their geometry by timing: CUDA tensors in ``auto`` mode
    (``on`` runs the default geometry, unchecked, as it runs the kernels)."""
    from . import kernel_mode

    return like.is_cuda and kernel_mode() == "auto"


def run_scan(kernel, options: LaunchOptions, shape: tuple[int, int, int], weight: torch.Tensor,
             written: torch.Tensor, /, **arguments) -> None:
    """Launch ``kernel`` with ``arguments`` over (cells, tiles of sequences) in the geometry chosen for this
    problem: ``options`` are its module's ``LAUNCH``, ``shape`` is (cells, batch, hidden size), ``weight`` the
    recurrent weights (their dtype and GPU), ``written`` a view of the last slab the kernel writes (the check
    of :func:`choose`)."""
    n_cells, batch, hidden = shape
    candidates = geometries(hidden, weight.dtype, options=options, batch=batch, n_cells=n_cells,
                            **device_target(weight))

    def run(settings: dict) -> None:
        grid = grid_for(n_cells, batch, settings["BLOCK_B"], settings.get("SPLIT", 1))
        if "SPLIT" not in settings:
            return kernel[grid](**arguments, **settings)
        split = settings["SPLIT"] > 1  # unsplit, the kernels read neither buffer: empty ones, and no memset to launch
        meetings = dict(counter_ptr=torch.zeros(grid[0] * grid[1] * split, dtype=torch.int32, device=weight.device))
        if "carry_ptr" in kernel.arg_names:  # a state tile per program, kept between launches
            meetings["carry_ptr"] = weight.new_empty(n_cells * batch * settings["BLOCK_N"] * split)
        for first, count in split_walks(arguments["steps"], settings["SPLIT"], weight.is_cuda):
            kernel[grid](**arguments, **settings, **meetings, first=first, count=count)

    if _forced:
        return run(dict(candidates[0], **_forced[-1]))
    if not tunes(weight):
        return run(candidates[0])
    # the default geometry is part of the problem: it holds the dots' arithmetic, which torch's float32 matmul
    # precision can change within a process
    constants = tuple(sorted((name, value) for name, value in arguments.items() if name.isupper()))
    key = (kernel, str(weight.device), weight.dtype, hidden, n_cells, batch, constants, tuple(candidates[0].items()))
    if key in _chosen:
        return run(_chosen[key])
    _chosen[key] = choose(run, candidates, written, lambda settings: _seconds(run, settings, weight.device))


def split_walks(steps: int, split: int, on_gpu: bool) -> list[tuple[int, int]]:
    """The launches (first step, steps) of a kernel that takes SPLIT: one for the whole walk, but in Triton's
    interpreter, which runs one program after another, a split cell's programs cannot meet at each step within
    a launch: there each launch walks one step (the launch's end is then the meeting, and the kernel reads its
    carries from memory at the next)."""
    if on_gpu or split == 1:
        return [(0, steps)]
    return [(first, 1) for first in range(steps)]


def _seconds(run: Callable[[dict], None], settings: dict, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    run(settings)
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def choose(run: Callable[[dict], None], candidates: list[dict], written: torch.Tensor,
           seconds: Callable[[dict], float]) -> dict:
    """The fastest of ``candidates`` (the default first) by the median of :data:`TIMED_RUNS` timings
    (``seconds(settings)`` runs one launch and returns its time), among those whose ``written`` slab equals
    the default's bit for bit (NaN where it has NaN); runs the chosen one last, so that its outputs are what
    the caller gets."""
    run(candidates[0])
    reference = written.clone()
    agreeing = [candidates[0]]
    for settings in candidates[1:]:
        try:
            run(settings)
        except Exception:  # noqa: BLE001 - a geometry that does not build here (registers, shared memory) is skipped
            continue
        if ((written == reference) | (written.isnan() & reference.isnan())).all():
            agreeing.append(settings)
    times = [statistics.median(seconds(settings) for _ in range(TIMED_RUNS)) for settings in agreeing]
    best = agreeing[times.index(min(times))]
    run(best)
    return best


def describe(settings: dict) -> str:
    """A launch geometry in words, e.g. "32 sequences x 256 threads, matrix on chip", "16 sequences x 512 threads,
    64-unit chunks", "16 sequences x 256 threads, a cell's units split among 8 programs"."""
    matrix = {True: ", matrix on chip", False: ", matrix streamed", None: ""}[settings.get("RESIDENT")]
    chunks = f", {settings['BLOCK_K']}-unit chunks" if settings.get("BLOCK_K", BLOCK_K) != BLOCK_K else ""
    stages = f", loads {settings['num_stages']} stages deep" if settings.get("num_stages", 1) > 1 else ""
    split = f", a cell's units split among {settings['SPLIT']} programs" if settings.get("SPLIT", 1) > 1 else ""
    return f"{settings['BLOCK_B']} sequences x {32 * settings['num_warps']} threads{matrix}{chunks}{stages}{split}"


def choices() -> list[str]:
    """What this process's tuned launches chose, one line per kernel and problem (for benchmarks and logs)."""
    lines = []
    for (kernel, device, dtype, hidden, n_cells, batch, _, default), settings in _chosen.items():
        name = f"{kernel.fn.__module__.rsplit('.', 1)[-1]} {kernel.fn.__name__.strip('_')}"
        lines.append(f"{name} ({device}, {str(dtype).removeprefix('torch.')}, N = {hidden}, {n_cells} cells x "
                     f"batch {batch}, {dict(default)['DOT']} dots): {describe(settings)}"
                     f"{' (the default)' if settings == dict(default) else ''}")
    return lines
