"""Spectra: eigenvalues, singular values and spectral radius of recurrent matrices, and
Lyapunov spectra of the dynamics (QR method, with a direct-simulation check)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from .seeding import generator_for

if TYPE_CHECKING:
    from .jacobians import JacobianSequence


def eigenvalues(weight: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues of (..., N, N) matrices in float64, sorted by descending modulus.

    Moduli equal to 12 significant digits (conjugate pairs) are ordered by descending
    angle, so a pair always appears as (a + ib, a - ib).
    """
    eig = torch.linalg.eigvals(weight.detach().to(torch.float64).cpu()).numpy()
    modulus = np.round(np.abs(eig), 12)
    order = np.lexsort((-np.angle(eig), -modulus), axis=-1)
    return torch.from_numpy(np.take_along_axis(eig, order, axis=-1))


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values of (..., N, N) matrices in float64, descending."""
    return torch.linalg.svdvals(weight.detach().to(torch.float64).cpu())


def spectral_radius(weight: torch.Tensor) -> torch.Tensor:
    """max |eigenvalue| of (..., N, N) matrices."""
    return eigenvalues(weight).abs().amax(dim=-1)


# ---------------------------------------------------------------- graded matrices


def unit_length_rows(rows: torch.Tensor, log_scales: torch.Tensor, in_place: bool = False):
    """(rows / |row|, log_scales + ln |row|); a zero row stays 0 with log scale -inf. ``in_place`` divides
    ``rows`` itself."""
    norms = rows.norm(dim=-1)
    alive = norms > 0
    divisors = torch.where(alive, norms, 1.0).unsqueeze(-1)  # a zero row divided by 1 stays 0
    rows = rows.div_(divisors) if in_place else rows / divisors
    return rows, torch.where(alive, log_scales + torch.log(divisors.squeeze(-1)), -math.inf)


def graded_triangle(r: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """M with R diag(e^s) = diag(e^s) M for an upper-triangular R and s descending: M_jk = R_jk e^(s_k - s_j), no
    larger than R above the diagonal, so that no row of diag(e^s) M loses digits to a larger one (rows and columns
    of scale -inf give 0)."""
    ratio = torch.nan_to_num(torch.exp(log_scales.unsqueeze(-2) - log_scales.unsqueeze(-1)), nan=0.0)
    return torch.triu(r * ratio)


#: The widest spread of a matrix's row scales (nats, the non-zero rows') at which
#: :func:`graded_log_singular_values` forms the matrix, diag(e^(s - s_1)) U, for LAPACK: its rows then lie within
#: e^-600 = 1e-261 of the first, every one a normal float64 (down to 2.2e-308) with the digits of its own scale.
FORMED_SPREAD_LIMIT = 600.0


def graded_log_singular_values(rows: torch.Tensor, log_scales: torch.Tensor, max_sweeps: int = 60) -> torch.Tensor:
    """ln of the singular values, descending, of diag(exp(log_scales)) @ rows for rows (..., n, m), however far
    apart the scales lie (thousands of nats), each to its own relative accuracy, where an SVD of the formed matrix
    resolves only values within eps of the largest. In float64; (..., n).

    Both engines are one-sided Jacobi, whose relative accuracy is about eps times the condition number of the rows
    scaled to unit length, whatever the spread of the scales (Demmel & Veselic 1992). A matrix whose non-zero rows'
    scales lie within ``FORMED_SPREAD_LIMIT`` nats is formed, shifted by its largest scale, and goes to LAPACK's
    dgejsv (Drmac & Veselic 2008, column-scaled accuracy, no small value flushed: :func:`_lapack_log_values`);
    the others, whose formed rows would fall out of float64's range, to :func:`_jacobi_log_values`, which keeps
    each row as a unit vector and the log of its length and never forms the matrix. A row of scale -inf, or of
    zeros, adds a value of -inf. Each matrix is computed on its own, so its values do not depend on which matrices
    share the batch.
    """
    unit, scale = unit_length_rows(rows.double(), log_scales.double())
    lead, (n, m) = unit.shape[:-2], unit.shape[-2:]
    batch = math.prod(lead)  # one batch dim (not -1: there may be no rows at all)
    unit, scale = unit.reshape(batch, n, m), scale.reshape(batch, n)
    if not n:
        return scale.reshape(*lead, n)
    alive = torch.isfinite(scale)
    # -inf where no row is alive: a matrix of zero rows is formed too, and gives -inf at once
    spread = torch.where(alive, scale, -math.inf).amax(dim=-1) - torch.where(alive, scale, math.inf).amin(dim=-1)
    formed = (alive.sum(dim=-1) <= m) & (spread <= FORMED_SPREAD_LIMIT)
    values = torch.empty_like(scale)
    if formed.any():
        values[formed] = _lapack_log_values(unit[formed], scale[formed])
    if not formed.all():
        values[~formed] = _jacobi_log_values(unit[~formed], scale[~formed], max_sweeps)
    return values.reshape(*lead, n)


def _lapack_log_values(unit: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """:func:`graded_log_singular_values` of matrices (B, n, m) of unit rows (or zero rows of scale -inf) whose
    non-zero rows' scales lie within ``FORMED_SPREAD_LIMIT``, no more of them than columns: each formed and handed
    to dgejsv. A = U^T diag(e^(s - s_1)) is column-scaled, for which JOBA 'C' gives each value to its own relative
    accuracy; JOBR 'N' flushes none of the small ones to 0, JOBT 'N' keeps A (not A^T) and JOBP 'N' perturbs no
    entry (scipy's codes: joba=0, jobr=0, jobt=0, jobp=0; jobu=jobv=3, no vectors). The values are
    WORK(1) / WORK(2) times SVA, LAPACK's factored form should it have scaled A."""
    from scipy.linalg.lapack import dgejsv

    unit_np, scale_np = unit.cpu().numpy(), scale.cpu().numpy()
    values = np.full(scale_np.shape, -np.inf)
    for i, (rows, scales) in enumerate(zip(unit_np, scale_np)):
        alive = np.isfinite(scales)
        if not alive.any():
            continue
        top = scales[alive].max()
        formed = np.exp(scales[alive] - top)[:, None] * rows[alive]
        sva, _, _, work, _, info = dgejsv(np.asfortranarray(formed.T), joba=0, jobu=3, jobv=3, jobr=0, jobt=0, jobp=0)
        if info != 0:
            raise RuntimeError(f"LAPACK dgejsv failed (info {info}) on a matrix of {len(formed)} rows")
        with np.errstate(divide="ignore"):  # a value of exactly 0: -inf
            values[i, :len(formed)] = np.sort(np.log(sva) + math.log(work[0] / work[1]))[::-1] + top
    return torch.from_numpy(values).to(scale.device)


def _jacobi_log_values(unit: torch.Tensor, scale: torch.Tensor, max_sweeps: int) -> torch.Tensor:
    """:func:`graded_log_singular_values` of matrices (B, n, m) of unit rows (or zero rows of scale -inf), the
    matrix never formed: one-sided Jacobi (Hestenes) rotates pairs of rows, each kept as a unit vector and the log
    of its length, until all are orthogonal, whose lengths are then the singular values. Rows otherwise linearly
    dependent (more rows than columns, say) add values at the rounding of their lengths.

    Where there are no more rows than columns, the rows (in order of scale) are first replaced by those of
    R diag(e^s), from rows^T = Q R: the same singular values, Householder's QR perturbs each row by rounding
    relative to itself (which this accuracy allows), and Jacobi then needs fewer sweeps (QR preconditioning,
    Drmac & Veselic 2008; 1.2-1.4x fewer rotations on lag products, the values equal to 1e-13 nats).
    A matrix leaves the batch after the first sweep that finds its rows orthogonal, so a batch's values do not
    depend on which other matrices share it, and the matrices that converge early stop costing rotations."""
    n = unit.shape[-2]
    if n <= unit.shape[-1]:
        unit, scale = _triangular_rows(unit, scale)
    if n % 2:  # a zero row of scale -inf pairs with each row in turn and changes nothing
        unit = torch.cat([unit, torch.zeros_like(unit[..., :1, :])], dim=-2)
        scale = torch.cat([scale, torch.full_like(scale[..., :1], -math.inf)], dim=-1)
    half = unit.shape[-2] // 2
    # the circle method: seat i of the top half plays seat half + i of the bottom half
    seats = torch.cat([unit[:, :half], unit[:, half:].flip(-2)], dim=-2)
    scale = torch.cat([scale[:, :half], scale[:, half:].flip(-1)], dim=-1)
    moves, came_from = _circle_moves(half), _circle_order(half).to(unit.device)
    tolerance = unit.shape[-1] * torch.finfo(torch.float64).eps
    values = scale.clone()  # each matrix's row scales as it converges
    running = torch.arange(len(unit), device=unit.device)  # the matrices still rotating, by their index in values
    spare = torch.empty_like(seats)  # each round writes the next round's seats here
    for _ in range(max_sweeps if half and len(running) else 0):
        largest = torch.zeros(len(running), dtype=torch.float64, device=unit.device)
        for _ in range(2 * half - 1):
            seats, spare, scale, cosine = _rotate_pairs(seats, scale, spare, moves, came_from)
            largest = torch.maximum(largest, cosine)
        rotating = largest > tolerance  # a matrix whose rows are orthogonal leaves the batch: no sweep more for it
        values[running] = scale
        if not rotating.all():
            running, seats, scale = running[rotating], seats[rotating], scale[rotating]
            spare = spare[:len(running)]  # free between rounds: its first rows serve the smaller batch
        if not len(running):
            break
    return torch.sort(values, dim=-1, descending=True).values[..., :n]


def _circle_moves(half: int) -> list[tuple[int, int, int]]:
    """The circle method's move from one round to the next, as (first, stop, to): seats first..stop-1 go to seats
    to.. (top seats 0..half-1, bottom half..2 half-1). The first seat stays, every other row moves one seat on."""
    if half <= 1:  # one pair (or none): the rows stay
        return [(seat, seat + 1, seat) for seat in range(2 * half)]
    return [(0, 1, 0), (1, half - 1, 2), (half - 1, half, 2 * half - 1),  # the top seats
            (half, half + 1, 1), (half + 1, 2 * half, half)]  # the bottom seats


def _circle_order(half: int) -> torch.Tensor:
    """For each seat of the next round, the seat its row sits in now (:func:`_circle_moves` as an index)."""
    came_from = torch.empty(2 * half, dtype=torch.long)
    for first, stop, to in _circle_moves(half):
        came_from[to:to + stop - first] = torch.arange(first, stop)
    return came_from


def _triangular_rows(unit: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of R diag(e^s), whose singular values are those of diag(e^s) unit, as unit rows and log lengths:
    unit^T = Q R after sorting by s (descending, so that R diag(e^s) = diag(e^s) M with M_jk = R_jk e^(s_k - s_j)
    bounded above the diagonal)."""
    order = torch.argsort(scale, dim=-1, descending=True)
    scale = torch.gather(scale, -1, order)
    unit = torch.gather(unit, -2, order.unsqueeze(-1).expand_as(unit))
    return unit_length_rows(graded_triangle(torch.linalg.qr(unit.mT, mode="r")[1], scale), scale)


def _rotate_pairs(seats: torch.Tensor, scale: torch.Tensor, spare: torch.Tensor, moves, came_from: torch.Tensor):
    """One Jacobi rotation of each pair of rows of (B, 2 half, m) ``seats`` (seat i with seat half + i), written to
    ``spare`` in the seats of the next round (``moves``, ``came_from``: :func:`_circle_moves`) with no other
    row-sized copy: the next round's seats, these seats (free to be the next spare), the next round's scales and
    each matrix's largest |cosine| before (B,).

    With x = e^a u the longer row and y = e^b v the shorter (r = e^(b-a) <= 1, c = u.v), the rotation that makes
    them orthogonal is x' = cs (x - t y), y' = cs (t x + y) with t = tau r; written through tau =
    -2c / (1 - r^2 + sqrt((1 - r^2)^2 + 4 r^2 c^2)) it stays finite where r underflows to 0, where it is
    Gram-Schmidt of v against u. Each row keeps its own scale plus ln cs, whichever is the longer."""
    half = seats.shape[-2] // 2
    top_scale, bottom_scale = scale[:, :half], scale[:, half:]
    swap = bottom_scale > top_scale  # the bottom row is the longer
    a, b = torch.maximum(top_scale, bottom_scale), torch.minimum(top_scale, bottom_scale)
    cosine = torch.linalg.vecdot(seats[:, :half], seats[:, half:])
    r = torch.nan_to_num(torch.exp(b - a), nan=0.0)  # both -inf: two zero rows, nothing to do
    spread = 1 - r * r
    denominator = spread + torch.sqrt(spread * spread + 4 * r * r * cosine * cosine)
    tau = torch.where(denominator > 0, -2 * cosine / torch.where(denominator > 0, denominator, 1.0), 0.0)
    log_cs = torch.log(torch.rsqrt(1 + tau * tau * r * r))
    shrink = -(tau * r * r)  # the longer row takes this much of the shorter, the shorter tau of the longer
    share = torch.cat([torch.where(swap, tau, shrink), torch.where(swap, shrink, tau)], dim=-1).unsqueeze(-1)
    for first, stop, to in moves:  # each row plus its share of its partner, written where it sits next round
        partner = first + half if first < half else first - half
        torch.addcmul(seats[:, first:stop], share[:, first:stop], seats[:, partner:partner + stop - first],
                      out=spare[:, to:to + stop - first])
    next_scale = (scale + torch.cat([log_cs, log_cs], dim=-1)).index_select(-1, came_from)
    spare, next_scale = unit_length_rows(spare, next_scale, in_place=True)
    return spare, seats, next_scale, torch.nan_to_num(cosine.abs(), nan=0.0).amax(dim=-1)


# ---------------------------------------------------------------- Lyapunov spectra

#: A QR diagonal entry below this fraction of its column's norm before orthogonalisation
#: is a direction the steps killed (a rank-deficient Jacobian, e.g. inactive ReLU units):
#: in float64 such a column is rounding noise, and its exponent is reported as -inf.
KILLED_DIRECTION_TOL = 1e-12

#: Most nats by which the smallest tracked direction may fall behind the largest between two
#: QRs: e^-18.4 = 1e-8 keeps 8 significant digits of it, well above KILLED_DIRECTION_TOL.
QR_SPREAD_LIMIT = math.log(1e8)


@dataclass
class LyapunovResult:
    """Exponents (..., k) in nats per step, descending; ``local`` (..., blocks, k) are the
    finite-time exponents of each re-orthonormalisation block after warm-up (same column
    order), ending at the steps ``block_ends`` (1-based step counts)."""

    exponents: torch.Tensor
    local: torch.Tensor
    block_ends: list[int]


def _check_lyapunov_args(n: int, steps: int, k: int | None, warmup: int, reortho_every: int) -> int:
    k = n if k is None else k
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in 1..{n} (the state size), got {k}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must lie in 0..{steps - 1} (fewer than the {steps} steps), got {warmup}")
    if reortho_every < 1:
        raise ValueError(f"reortho_every must be >= 1, got {reortho_every}")
    return k


def _next_interval(rates: torch.Tensor, reortho_every: int, length: int) -> int:
    """Steps until the next QR: ``reortho_every``, or fewer where the finite local rates of the
    last block (``length`` steps) spread so far that the smallest direction would lose precision
    (QR_SPREAD_LIMIT), and at most twice ``length``: until the frame has turned towards the growth
    directions (a few blocks), the spread of its rates understates theirs (after a first block of one
    step, a 30-step block flagged full-rank directions of a product spreading 1.25 nats per step as
    killed, -inf)."""
    most = min(reortho_every, 2 * length)
    finite = torch.isfinite(rates)
    if most == 1 or not finite.any():
        return most
    high = torch.where(finite, rates, torch.full_like(rates, -math.inf)).amax(dim=-1)
    low = torch.where(finite, rates, torch.full_like(rates, math.inf)).amin(dim=-1)
    spread = (high - low)[torch.isfinite(high)].max().item()
    return most if spread <= 0 else max(1, min(most, int(QR_SPREAD_LIMIT / spread)))


def qr_lyapunov(
    jacobians: "JacobianSequence",
    k: int | None = None,
    warmup: int = 0,
    reortho_every: int = 1,
    generator: torch.Generator | None = None,
) -> LyapunovResult:
    """The QR (Benettin/Shimada-Nagashima) method on any Jacobian sequence, in float64.

    Q_0 is a Haar-random N x k orthonormal frame (from ``generator``, or a fixed seeded one);
    Q <- J_t Q every step, and at the end of every block (and of warm-up and of the
    sequence) Q = QR. The logs of |diag(R)| of the blocks after ``warmup`` are summed and
    divided by T - warmup. Blocks are ``reortho_every`` steps long at most: the first is
    one step, and each next one is at most twice the last and shortened where the local exponents
    of the last block spread so far that the smallest direction would keep fewer than 8 significant
    digits (QR_SPREAD_LIMIT), so that only directions a step killed exactly come out as -inf. Q is
    kept in LAPACK's Householder form (``geqrf``) and applied to the next J_t with
    ``ormqr``, which skips forming Q explicitly (the costliest part of a QR); |R_ii| does
    not depend on the sign convention of Q's columns, so the exponents need no sign fix.
    """
    steps, n = len(jacobians), jacobians.size
    k = _check_lyapunov_args(n, steps, k, warmup, reortho_every)
    first = jacobians.dense(0)
    lead = first.shape[:-2]
    gen = generator if generator is not None else generator_for("lyapunov")
    frame, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    q = frame.to(first.device).expand(*lead, n, k).contiguous()
    factored = None  # (reflectors, tau) of the last QR, or None while q is explicit
    sums = torch.zeros(*lead, k, dtype=torch.float64, device=first.device)
    local, block_ends = [], []
    block_start, interval = 0, 1
    for t in range(steps):
        if factored is None:
            q = jacobians.left(t, q)
        else:
            dense = jacobians.dense(t).expand(*lead, n, n).contiguous()
            q = torch.ormqr(*factored, dense, left=False)[..., :k]
        length = t + 1 - block_start
        if not (length >= interval or t + 1 in (warmup, steps)):
            factored = None
            continue
        column_norms = q.norm(dim=-2)
        factored = torch.geqrf(q)
        growth = torch.diagonal(factored[0], dim1=-2, dim2=-1).abs()
        killed = growth <= KILLED_DIRECTION_TOL * column_norms
        logs = torch.where(killed, torch.full_like(growth, -math.inf), torch.log(growth))
        if block_start >= warmup:
            sums = sums + logs
            local.append(logs / length)
            block_ends.append(t + 1)
        interval = _next_interval(logs / length, reortho_every, length)
        block_start = t + 1
    exponents = sums / (steps - warmup)
    exponents, order = torch.sort(exponents, dim=-1, descending=True)
    local = torch.stack(local, dim=-2)
    local = torch.gather(local, -1, order.unsqueeze(-2).expand_as(local))
    return LyapunovResult(exponents, local, block_ends)


def lyapunov_spectrum(
    jacobians: torch.Tensor,
    k: int | None = None,
    warmup: int = 0,
    reortho_every: int = 1,
    *,
    local: bool = False,
    generator: torch.Generator | None = None,
):
    """Top-k Lyapunov exponents (nats per step, descending) of step Jacobians (T, N, N) or (B, T, N, N).

    Returns (k,) or (B, k); with ``local=True`` a :class:`LyapunovResult` holding the
    finite-time exponents of every re-orthonormalisation block too. A direction killed by
    a rank-deficient step (inactive ReLU units) has exponent -inf, never NaN.
    """
    from .jacobians import DenseJacobians

    if jacobians.dim() not in (3, 4) or jacobians.shape[-1] != jacobians.shape[-2]:
        raise ValueError(f"jacobians must be (T, N, N) or (B, T, N, N), got shape {tuple(jacobians.shape)}")
    time_major = jacobians.to(torch.float64)
    if time_major.dim() == 4:
        time_major = time_major.transpose(0, 1)
    result = qr_lyapunov(DenseJacobians(time_major), k, warmup, reortho_every, generator)
    return result if local else result.exponents


def benettin_largest_exponent(
    step: Callable[[torch.Tensor, int], torch.Tensor],
    h0: torch.Tensor,
    steps: int,
    warmup: int = 0,
    eps: float = 1e-7,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Largest Lyapunov exponent by direct simulation (Benettin et al. 1976), in float64.

    Evolves ``h`` and a copy displaced by ``eps`` along a random unit vector with
    ``step(h, t) -> h_next`` (h is (..., N)), renormalises the separation to ``eps``
    after every step, and averages log(|separation| / eps) over the steps after
    ``warmup``. Independent of any Jacobian: the check on the QR method.
    """
    _check_lyapunov_args(h0.shape[-1], steps, 1, warmup, 1)
    gen = generator if generator is not None else generator_for("lyapunov")
    h = h0.to(torch.float64)
    direction = torch.randn(h.shape, generator=gen, dtype=torch.float64).to(h.device)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    other = h + eps * direction
    total = torch.zeros(h.shape[:-1], dtype=torch.float64, device=h.device)
    for t in range(steps):
        h, other = step(h, t), step(other, t)
        separation = other - h
        distance = separation.norm(dim=-1, keepdim=True)
        if t >= warmup:
            total = total + torch.log(distance.squeeze(-1) / eps)  # -inf once a separation is killed
        alive = distance > 0
        unit = torch.where(alive, separation / torch.where(alive, distance, 1.0), direction)
        other = h + eps * unit
    return total / (steps - warmup)
