"""What the scan kernels share: launch geometry (one program per cell and tile of BLOCK_B sequences),
buffer checks, and the product of a state tile with one gate block of a cell's recurrent weight."""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

#: Sequences per program by default: tl.dot needs at least 16 rows; smaller batches are masked.
BLOCK_B = 16
#: The largest hidden size the kernels serve: the one they are built and checked for (compile_report);
#: a program keeps a few BLOCK_B x N state tiles in registers.
MAX_HIDDEN = 128
#: Units per chunk of a product whose matrix is read from cache (the gated cells', a streamed Elman matrix) by
#: default: one tl.dot of (BLOCK_B, BLOCK_K) by (BLOCK_K, BLOCK_N) each (tl.dot's smallest).
BLOCK_K = 16


def block_size(hidden: int) -> int:
    """Units per program: N rounded up to a power of two, at least 16 (tl.dot's smallest)."""
    return max(16, triton.next_power_of_2(hidden))


#: GPUs whose float64 tensor cores run at float32's FMA rate by their datasheets (A100; H100 and H200):
#: there a dot in float64 costs what a TF32x3 one does (H200, T = 784, N = 100, batch 16: Elman forward
#: + backward 4.64 ms in float64 and 4.80 ms in TF32x3, benchmarks/tune_kernels.py).
FAST_FLOAT64 = {(8, 0), (9, 0)}


def capability(tensor: torch.Tensor) -> tuple[int, int] | None:
    """The compute capability of the GPU a tensor lives on; None off CUDA (Triton's CPU interpreter)."""
    return torch.cuda.get_device_capability(tensor.device) if tensor.is_cuda else None


def dot_arithmetic(dtype: torch.dtype, gpu: tuple[int, int] | None) -> str:
    """How the kernels multiply a state tile by a recurrent matrix (the ``DOT`` of :func:`dot`).

    "float64": operands widened, products and sums in float64, the result rounded to the state's dtype:
    at least as exact as the loop's float32 matmul, and used wherever float64 is fast (and in the CPU
    interpreter). Elsewhere float32 states multiply as three TF32 products ("tf32x3", float32-class:
    benchmarks/dot_accuracy.py), or as one ("tf32") where torch's own float32 matmuls may use TF32 as
    well, so kernels and loop stay alike.
    """
    if dtype == torch.float64:
        return "float64"
    if torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "float64" if gpu is None or gpu in FAST_FLOAT64 else "tf32x3"


def geometry(hidden: int, dtype: torch.dtype, gpu: tuple[int, int] | None) -> dict:
    """The launch settings of a scan kernel for hidden size N, the states' dtype and the GPU's compute
    capability: tile sizes, warps, one pipeline stage and the dot's arithmetic.

    A stage is enough: the time loop is one dependent chain, and the loads a deeper software pipeline
    prefetches into registers made the LSTM and GRU kernels spill when compiled for sm_90.
    """
    block_n = block_size(hidden)
    return dict(BLOCK_B=BLOCK_B, BLOCK_N=block_n, BLOCK_K=BLOCK_K,
                num_warps=2 if block_n <= 32 else 4 if block_n <= 64 else 8, num_stages=1,
                DOT=dot_arithmetic(dtype, gpu))


#: Shared memory one program (CUDA block) may use, in bytes, by compute capability (the CUDA C++ Programming
#: Guide's technical specifications, "maximum amount of shared memory per thread block"); a capability not
#: listed takes the entry of the nearest one below it. Triton refuses to launch a kernel that needs more. A GPU
#: that is present is asked instead (:func:`device_shared_memory`): this table serves builds for GPUs that are not.
SHARED_MEMORY_PER_BLOCK = {(7, 0): 96 << 10, (7, 5): 64 << 10, (8, 0): 163 << 10, (8, 6): 99 << 10,
                           (8, 7): 163 << 10, (8, 9): 99 << 10, (9, 0): 227 << 10, (10, 0): 227 << 10,
                           (12, 0): 99 << 10}


def shared_memory_per_block(gpu: tuple[int, int]) -> int:
    """:data:`SHARED_MEMORY_PER_BLOCK` of a compute capability (the nearest listed one at or below it)."""
    listed = [capability for capability in SHARED_MEMORY_PER_BLOCK if capability <= gpu]
    return SHARED_MEMORY_PER_BLOCK[max(listed)] if listed else min(SHARED_MEMORY_PER_BLOCK.values())


def device_shared_memory(device: torch.device) -> int:
    """Shared memory one program may use on a CUDA device: the device's own opt-in limit, the one Triton checks a
    launch against, where torch reports it (``shared_memory_per_block_optin``), else by its compute capability."""
    properties = torch.cuda.get_device_properties(device)
    reported = getattr(properties, "shared_memory_per_block_optin", 0)
    return reported or shared_memory_per_block((properties.major, properties.minor))


def device_target(tensor: torch.Tensor) -> dict:
    """The GPU a tensor lives on as :func:`geometries` takes it: ``gpu`` (its compute capability),
    ``shared_memory`` (what one program may use there) and ``multiprocessors``; all None off CUDA (Triton's CPU
    interpreter)."""
    on_gpu = tensor.is_cuda
    return dict(gpu=capability(tensor), shared_memory=device_shared_memory(tensor.device) if on_gpu else None,
                multiprocessors=torch.cuda.get_device_properties(tensor.device).multi_processor_count if on_gpu
                else None)


def resident_weight_bytes(settings: dict) -> int:
    """Shared memory a program takes to hold an N x N matrix on chip for its dots, as Triton lays them out: the
    (BLOCK_N, BLOCK_N) operand and a (BLOCK_B, BLOCK_N) one, each in float64, or twice in float32 for TF32x3,
    or once in float32 for TF32. Equal to the compiled Elman kernels' size, or above it (N = 16), for N = 16,
    33 and 100, each arithmetic and 16- and 32-sequence tiles (triton 3.9, sm_90)."""
    element = 4 if settings["DOT"] == "tf32" else 8
    return (settings["BLOCK_N"] + settings["BLOCK_B"]) * settings["BLOCK_N"] * element


class LaunchOptions(NamedTuple):
    """What a kernel module's launches may vary (each module declares its own as ``LAUNCH``): the sequences
    per program they allow, whether its kernels take RESIDENT (the cell's matrix held on chip, or
    streamed from cache each step), and how the loop over a matrix read from cache loads it: pairs of
    units per chunk (``BLOCK_K``) and how many stages deep Triton may pipeline those loads (``num_stages``);
    the first pair, 16-unit chunks in one stage, is the default geometry's; and into how many programs
    (``SPLIT``) a cell's units may be split, programs that meet at every step (:func:`wait_for`)."""

    tile_rows: tuple[int, ...] = (BLOCK_B,)
    resident: bool = False
    loads: tuple[tuple[int, int], ...] = ((BLOCK_K, 1),)
    splits: tuple[int, ...] = ()


#: What the gated cells' kernels (LSTM, GRU) may vary: 16-sequence tiles only, as 32-sequence ones spill
#: (sm_90, N = 100, compile_report --geometries all). Their time is a chain of small loads and dots through
#: the recurrent blocks, re-read from cache every step, 32 chunks of 16 units a step for the LSTM at N = 100:
#: on an H200 one LSTM cell at batch 16 took 34.2 ms with float64 dots and 28.9 with one TF32 product, about
#: an eighth of the arithmetic (tune_kernels.py, 2026-11-30), so the chain's latency, not the dots, sets the
#: pace. Offered: those loads pipelined two stages deep, which may hide the latency (1.5-4% faster at 256
#: threads on the H200; they spill 104-224 bytes per thread), and chunks of 32 or 64 units in one stage, a
#: half or a quarter as many links (sm_90, N = 100, float32: the forwards spill 192-1064 bytes per thread, the
#: backwards 0-88); only the GPU's timing can weigh either against its spills. And at small batches, where a
#: few programs leave most multiprocessors idle (one LSTM cell at batch 16: one program on an H200's 132), a
#: cell's units split among 2, 4 or 8 programs that meet at every step, as cuDNN's persistent kernels spread a
#: cell over many: each multiplies the state by its own slice of the blocks, a slice small enough to take in
#: one dot per gate (chunks as wide as the state) where the whole blocks took 32 chained ones.
GATED_LAUNCH = LaunchOptions(loads=((BLOCK_K, 1), (BLOCK_K, 2), (2 * BLOCK_K, 1), (4 * BLOCK_K, 1)),
                             splits=(2, 4, 8))


def geometries(hidden: int, dtype: torch.dtype, gpu: tuple[int, int] | None, options: LaunchOptions,
               batch: int | None = None, shared_memory: int | None = None, n_cells: int | None = None,
               multiprocessors: int | None = None) -> list[dict]:
    """The launch geometries a scan kernel may run in, :func:`geometry` first: each of the module's tile sizes
    at the default warps and at twice as many (half the registers per thread; the compile report shows which
    spill), each with each of the module's ways to load a matrix read from cache (chunks no wider than the
    padded hidden size). :mod:`~rnn_dynamics.kernels.tuning` picks among them. Given a ``batch``, tiles of which
    half or more would be masked rows (beyond the default's) are left out.

    Kernels that take RESIDENT hold the matrix on chip in each geometry where that fits the shared memory a
    program may use (``shared_memory``: the GPU's own, :func:`device_shared_memory`; by default by compute
    capability; :func:`resident_weight_bytes`; always in the interpreter), and stream it elsewhere; a geometry
    that would stream where the default holds it is left out.

    Kernels whose module declares ``splits`` take SPLIT (1 in the default): each split of S programs a cell's
    units into S slices of at least 16 (tl.dot's smallest), at the default warps, with 16-unit chunks (the
    default's), and where a slice is 16 units, also with one chunk as wide as the state (wider slices spilled
    there: sm_90, N = 100, float32, 32-unit slices 8-328 bytes per thread, 64-unit ones 592-1128). The S
    programs of a cell wait for each other at every step, so all must be resident at once: a split is offered
    only where every program of the launch gets a multiprocessor of its own (``n_cells`` x tiles x S <=
    ``multiprocessors``), or where those are not given (the interpreter, builds for a GPU that is not here)."""
    default = geometry(hidden, dtype, gpu)
    if options.splits:
        default["SPLIT"] = 1
    tile_rows = [rows for rows in options.tile_rows if batch is None or rows == BLOCK_B or rows < 2 * batch]
    loads = [(chunk, stages) for chunk, stages in options.loads if chunk <= default["BLOCK_N"]]
    candidates = [dict(default, BLOCK_B=rows, num_warps=warps, BLOCK_K=chunk, num_stages=stages)
                  for rows in tile_rows for warps in (default["num_warps"], 2 * default["num_warps"])
                  for chunk, stages in loads]
    if options.resident:
        limit = shared_memory or (gpu and shared_memory_per_block(gpu))
        for settings in candidates:
            settings["RESIDENT"] = gpu is None or resident_weight_bytes(settings) <= limit
        candidates = [settings for settings in candidates if settings["RESIDENT"] or not candidates[0]["RESIDENT"]]
    tiles = None if batch is None or n_cells is None else n_cells * triton.cdiv(batch, BLOCK_B)
    for split in options.splits:
        fits = tiles is None or multiprocessors is None or tiles * split <= multiprocessors
        if default["BLOCK_N"] // split >= 16 and fits:
            chunks = (BLOCK_K, default["BLOCK_N"]) if default["BLOCK_N"] // split == 16 else (BLOCK_K,)
            candidates += [dict(default, BLOCK_K=chunk, SPLIT=split) for chunk in dict.fromkeys(chunks)]
    return candidates


def check_buffers(**buffers) -> None:
    """The kernels index the buffers they write as contiguous; anything else is a caller's bug."""
    for name, tensor in buffers.items():
        if not tensor.is_contiguous():
            raise ValueError(f"scan kernel buffer {name!r} must be contiguous, got strides {tensor.stride()}")


def blocks(tensor: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """A (T, M, B, X) tensor the kernels read, with its step and cell strides: any layout whose (B, X) blocks
    are contiguous is read as it is (time-major, or the cell-major drive of ``layer_drive``); others are copied."""
    if tensor.stride(-1) != 1 or tensor.stride(-2) != tensor.shape[-1]:
        tensor = tensor.contiguous()
    return tensor, tensor.stride(0), tensor.stride(1)


def incoming_gradients(grad: torch.Tensor | None, grad_final: torch.Tensor | None, final_shape: tuple,
                       like: torch.Tensor) -> dict:
    """A backward kernel's arguments for what reaches it: dL/dh_t of every step (T, M, B, N), read where it
    lies (:func:`blocks`), or None where no step's output was used (a ``last`` readout), and dL/ds_T of the
    final state (M, B, S), the carry its walk starts from (zeros where None)."""
    final_grad = like.new_zeros(final_shape) if grad_final is None else grad_final.contiguous()
    if grad is None:
        return dict(grad_ptr=final_grad, final_grad_ptr=final_grad, grad_step=0, grad_cell=0, HAS_GRAD=False)
    grad, grad_step, grad_cell = blocks(grad)
    return dict(grad_ptr=grad[-1], final_grad_ptr=final_grad, grad_step=grad_step, grad_cell=grad_cell,
                HAS_GRAD=True)


def grid_for(n_cells: int, batch: int, block_b: int, split: int = 1) -> tuple[int, int, int]:
    """One program per cell, tile of ``block_b`` sequences and slice of the cell's units (``split`` slices)."""
    return n_cells, triton.cdiv(batch, block_b), split


@triton.jit
def program_tile(batch, n, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT: tl.constexpr = 1):
    """This program's cell (int64, so that offsets past 2^31 stay exact), its BLOCK_B sequences as a column
    twice: their rows in the cell's own (B, .) block (cell-major buffers) and their index cell * batch + row
    (time-major buffers, whose steps hold every cell's block), its units (all BLOCK_N, or its slice of
    BLOCK_N / SPLIT: :func:`program_units`), and the masks of real rows and of real entries of its state tile."""
    cell = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    units = program_units(BLOCK_N, SPLIT)
    row_ok = (rows < batch)[:, None]
    return (cell, rows[:, None], (cell * batch + rows)[:, None], units[None, :], row_ok,
            row_ok & (units < n)[None, :])


@triton.jit
def program_units(BLOCK_N: tl.constexpr, SPLIT: tl.constexpr):
    """The units this program computes: slice program_id(2) of BLOCK_N / SPLIT units (all of them unsplit)."""
    if SPLIT > 1:
        units = tl.program_id(2) * (BLOCK_N // SPLIT) + tl.arange(0, BLOCK_N // SPLIT)
    else:
        units = tl.arange(0, BLOCK_N)
    return units


#: Polls of a meeting's counter before a program gives up waiting (about a second at a microsecond's L2 round trip
#: a poll; an estimate, not measured): the S programs of a split cell must all be resident, which the launch sees
#: to (:func:`geometries`); should one never come, the waiting programs write NaN from then on, without waiting
#: again, instead of hanging the GPU.
MAX_POLLS = tl.constexpr(1 << 20)


@triton.jit
def meeting(counter_ptr):
    """The counter at which this program meets the other programs of its split cell (one per cell and tile of
    sequences: :func:`wait_for`, :func:`arrive`), and the factor 1.0 its waits keep while none has given up."""
    return counter_ptr + tl.program_id(0) * tl.num_programs(1) + tl.program_id(1), tl.full((), 1.0, tl.float32)


@triton.jit
def wait_for(counter_at, arrivals, ready, SPLIT: tl.constexpr):
    """Wait until the counter of this program's meeting holds ``arrivals``, the arrivals of every program of a
    split cell at every step before this one (:func:`arrive`): the states or gradients they wrote are then there
    to read, from L2 (loads with ``cache_modifier=".cg"``: another multiprocessor wrote them). ``ready`` is 1.0,
    or NaN once a wait has given up (:data:`MAX_POLLS`); returned as it then stands, a factor for what the program
    writes. Unsplit (SPLIT = 1) there is nothing to wait for."""
    if SPLIT > 1:
        polls = 0
        while (tl.atomic_add(counter_at, 0, sem="acquire") < arrivals) & (polls < MAX_POLLS) & (ready == 1.0):
            polls += 1
        ready = tl.where(polls < MAX_POLLS, ready, float("nan"))
    return ready


@triton.jit
def arrive(counter_at, SPLIT: tl.constexpr):
    """This program has written its step: every thread's stores done (the tile is whole for its own threads'
    next reads), then, for a split cell, one arrival at the meeting's counter, released to the whole GPU."""
    tl.debug_barrier()
    if SPLIT > 1:
        tl.atomic_add(counter_at, 1, sem="release")


@triton.jit
def dot_operand(x, DOT: tl.constexpr):
    """x in the dtype the arithmetic DOT multiplies in (see :func:`dot_arithmetic`)."""
    if DOT == "float64":
        x = x.to(tl.float64)
    return x


@triton.jit
def dot(a, b, DOT: tl.constexpr, acc=None):
    """acc + a @ b (acc None: zero) in the arithmetic DOT names (:func:`dot_arithmetic`), in its dtype: callers
    round once. The products accumulate into acc in the order of their k, so that a sum over chunks of k gives
    the same bits whatever the chunks' size (on a GPU's tensor cores)."""
    if DOT == "float64":
        product = tl.dot(dot_operand(a, DOT), dot_operand(b, DOT), acc)
    else:
        product = tl.dot(a, b, acc, input_precision=DOT)
    return product


@triton.jit
def rows_times_block(x_rows, row_ok, weight_at, gate: tl.constexpr, n, BLOCK_B: tl.constexpr,
                     BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, TRANSPOSED: tl.constexpr, DOT: tl.constexpr,
                     SPLIT: tl.constexpr = 1):
    """x @ W_gate^T (TRANSPOSED) or x @ W_gate, in this program's columns (:func:`program_units`): x the
    (BLOCK_B, N) tile in memory whose rows start at ``x_rows`` (BLOCK_B, 1), W_gate the N x N rows gate * N.. of
    a cell's (G * N, N) weight at ``weight_at``.

    Both are read from memory (cache) BLOCK_K units at a time, one dot per chunk accumulating into the
    product: holding a whole block in registers spilled when compiled for sm_90. The caller stores x and then
    calls ``tl.debug_barrier()`` so that every thread of the program sees the whole tile; where the cell is split
    (SPLIT > 1) other programs wrote it, :func:`wait_for` waited for them, and x is read past this
    multiprocessor's L1.
    """
    cols = program_units(BLOCK_N, SPLIT)
    col_ok = (cols < n)[None, :]
    product = dot_operand(tl.zeros((BLOCK_B, BLOCK_N // SPLIT), dtype=x_rows.dtype.element_ty), DOT)
    for start in range(0, BLOCK_N, BLOCK_K):
        ks = start + tl.arange(0, BLOCK_K)
        k_ok = ks < n
        x = tl.load(x_rows + ks[None, :], mask=row_ok & k_ok[None, :], other=0.0,
                    cache_modifier=".cg" if SPLIT > 1 else "")
        if TRANSPOSED:  # [k, j] = W[gate * n + j, k]
            w = tl.load(weight_at + (gate * n + cols[None, :]) * n + ks[:, None], mask=k_ok[:, None] & col_ok,
                        other=0.0)
        else:  # [k, j] = W[gate * n + k, j]
            w = tl.load(weight_at + (gate * n + ks[:, None]) * n + cols[None, :], mask=k_ok[:, None] & col_ok,
                        other=0.0)
        product = dot(x, w, DOT, product)
    return product.to(x_rows.dtype.element_ty)


@triton.jit
def rows_times_weight(x_rows, row_ok, weight_at, n, GATES: tl.constexpr, BLOCK_B: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT: tl.constexpr, SPLIT: tl.constexpr = 1):
    """x @ W for x the (BLOCK_B, GATES * N) tile whose rows start at ``x_rows`` and W a cell's whole
    (GATES * N, N) weight: the sum over gates of :func:`rows_times_block` (the backward's carry)."""
    product = rows_times_block(x_rows, row_ok, weight_at, 0, n, BLOCK_B, BLOCK_N, BLOCK_K, False, DOT, SPLIT)
    for gate in tl.static_range(1, GATES):
        product += rows_times_block(x_rows + gate * n, row_ok, weight_at, gate, n, BLOCK_B, BLOCK_N, BLOCK_K,
                                    False, DOT, SPLIT)
    return product
