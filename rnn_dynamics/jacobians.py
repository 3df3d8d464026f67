"""State-to-state Jacobians, their products over time, and gradient norms over time.

For an Elman layer ``h_t = f(a_t)``, ``a_t = W h_{t-1} + drive_t``, the step Jacobian is
``J_t = dh_t/dh_{t-1} = diag(f'(a_t)) W``. :class:`ElmanJacobians` keeps that structure
(one vector per step, one shared matrix) and never builds J_t; :class:`GatedJacobians`
does the same for gated cells, whose Jacobians are sums of diag(.) W_gate blocks plus
diagonal blocks; :class:`DenseJacobians` holds explicit matrices and serves any other cell
through :func:`step_jacobians_autograd` (torch.func), which is also the reference the
structured paths are tested against.

Products are accumulated with a per-step rescaling whose logarithm is carried apart,
so norms far below or above the float range (a 784-step product of contracting maps)
come out as finite logarithms instead of 0 or inf; :func:`state_gradient_log_norms`
walks dL/ds_t back through time the same way.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch


class ElmanJacobians:
    """The sequence J_1..J_T with J_t = diag(d_t) W, kept as factors.

    ``weight`` is (..., N, N) and ``dact`` (T, ..., N) holds f'(a_t); leading dims
    broadcast (e.g. weight (M, 1, N, N) against dact (T, M, B, N)). Index ``i`` is J_{i+1}.
    """

    def __init__(self, weight: torch.Tensor, dact: torch.Tensor):
        self.weight, self.dact = weight, dact

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
        """p @ J_{i+1}, costing one matmul with W."""
        return _rows_times_shared(p * self.dact[i].unsqueeze(-2), self.weight)


def _rows_times_shared(rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """rows @ weight, where weight may be shared along the dim before its matrix dims.

    When W is shared there (one W per cell, many sequences), the sequences are folded
    into the rows of one larger matmul, which is faster than a broadcast batch of small ones.
    """
    if weight.dim() == rows.dim() and weight.dim() >= 3 and weight.shape[-3] == 1 and rows.shape[-3] > 1:
        folded = rows.reshape(*rows.shape[:-3], -1, rows.shape[-1]) @ weight.squeeze(-3)
        return folded.reshape(*rows.shape[:-1], weight.shape[-1])
    return rows @ weight


class GatedJacobians:
    """Step Jacobians of a gated cell, kept as factors and never built unless asked for.

    The state has P parts of N units (the LSTM's (h, c): P = 2); only part 0 (h) feeds
    the G stacked recurrent blocks ``weight`` (..., G * N, N). Block (r, p) of J_t is
    ``[p == 0] * sum_g diag(eta[t, r, g]) W_g + diag(diagonal[t, r, p])``, with ``eta``
    (T, ..., P, G, N) and ``diagonal`` (T, ..., P, P, N). An Elman layer is P = G = 1 with a
    zero diagonal; the GRU is P = 1, G = 3; the LSTM P = 2, G = 4.
    """

    def __init__(self, weight: torch.Tensor, eta: torch.Tensor, diagonal: torch.Tensor):
        self.weight, self.eta, self.diagonal = weight, eta, diagonal
        self.parts, self.n_gates, self.units = eta.shape[-3], eta.shape[-2], eta.shape[-1]

    def __len__(self) -> int:
        return self.eta.shape[0]

    @property
    def size(self) -> int:
        return self.parts * self.units

    def _lead_shape(self) -> torch.Size:
        """The leading dims of one step's blocks (e.g. (M, B)): the weight's and the factors' broadcast."""
        return torch.broadcast_shapes(self.weight.shape[:-2], self.eta.shape[1:-3], self.diagonal.shape[1:-3])

    def _add_gated_blocks(self, i: int, out: torch.Tensor) -> torch.Tensor:
        """out (..., P, N, N) += the gated part of J_{i+1}'s blocks in the columns of part 0 (h): for row part r,
        sum_g diag(eta[i, r, g]) W_g, by elementwise products in place."""
        eta = self.eta[i].unsqueeze(-1)  # (..., P, G, N, 1)
        gated = self.weight.unflatten(-2, (self.n_gates, self.units)).unsqueeze(-4)  # (..., 1, G, N, N)
        for g in range(self.n_gates):
            out.addcmul_(eta[..., g, :, :], gated[..., g, :, :])
        return out

    def dense(self, i: int) -> torch.Tensor:
        """J_{i+1} as a matrix (..., P N, P N), written block by block into one buffer with elementwise products,
        as in :meth:`right` (einsum, pad and copies took 2-4x the time: N = 100, 4 sequences, 2 CPU cores)."""
        shape = self._lead_shape()
        # row part, rows, column part, columns
        blocks = self.eta.new_zeros(*shape, self.parts, self.units, self.parts, self.units)
        self._add_gated_blocks(i, blocks[..., 0, :])  # (..., P, N, N): the columns of part 0, h
        blocks.diagonal(dim1=-3, dim2=-1).add_(self.diagonal[i])  # (..., P, P, N) view: each block's diagonal
        return blocks.reshape(*shape, self.size, self.size)

    def left(self, i: int, q: torch.Tensor) -> torch.Tensor:
        """J_{i+1} @ q for q (..., P N, k), costing one matmul with the stacked blocks."""
        parts = q.unflatten(-2, (self.parts, self.units))  # (..., P, N, k)
        wq = (self.weight @ parts[..., 0, :, :]).unflatten(-2, (self.n_gates, self.units))  # (..., G, N, k)
        out = torch.einsum("...rgn,...gnk->...rnk", self.eta[i], wq)
        out = out + torch.einsum("...rpn,...pnk->...rnk", self.diagonal[i], parts)
        return out.flatten(-3, -2)

    def right(self, p: torch.Tensor, i: int) -> torch.Tensor:
        """p @ J_{i+1} for p (..., k, P N): the diagonal terms elementwise, the gated ones by one matmul.

        For a few rows (a gradient walk: k = 1) the rows meet the diagonal factors and then the stacked blocks
        shared by every sequence, (k, G N) @ (G N, N); for many (a Jacobian product: k = P N) the step's gated
        blocks are summed first, (k, P N) @ (P N, N), G / P times fewer products (LSTM 2, GRU 3). The diagonal
        factors multiply elementwise, one state part at a time, in place where they add up: einsum ran them
        as batches of tiny matmuls (N = 100, 4 sequences, k = P N: LSTM 0.55x the time per step, GRU 0.75x,
        2 CPU cores)."""
        rows = p.unflatten(-1, (self.parts, self.units)).unsqueeze(-2)  # (..., k, P, 1, N)
        out = _sum_over_parts(rows, self.diagonal[i].unsqueeze(-4))  # (..., k, P, N)
        if p.shape[-2] * (self.n_gates - self.parts) > self.parts * self.n_gates:
            blocks = self.eta.new_zeros(*self._lead_shape(), self.parts, self.units, self.units)
            out[..., 0, :] += p @ self._add_gated_blocks(i, blocks).flatten(-3, -2)
        else:
            through_w = _sum_over_parts(rows, self.eta[i].unsqueeze(-4))  # (..., k, G, N)
            out[..., 0, :] += _rows_times_shared(through_w.flatten(-2), self.weight)
        return out.flatten(-2)


def _sum_over_parts(rows: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """sum_r rows[..., r, :, :] * factors[..., r, :, :]: rows (..., k, P, 1, N) of a cotangent by state part,
    factors (..., 1, P, X, N) per part; (..., k, X, N), accumulated in place one part at a time (P <= 2)."""
    out = rows[..., 0, :, :] * factors[..., 0, :, :]
    for r in range(1, rows.shape[-3]):
        out.addcmul_(rows[..., r, :, :], factors[..., r, :, :])
    return out


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


JacobianSequence = ElmanJacobians | GatedJacobians | DenseJacobians


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


def spectral_norm(matrices: torch.Tensor) -> torch.Tensor:
    """Largest singular value of each (..., N, N) matrix, in float64: sqrt of the top eigenvalue of M M^T.

    The symmetric eigensolver is faster than an SVD (1.5x on 600 matrices of 100 x 100) and the top
    eigenvalue of M M^T has relative error of order machine epsilon. Both are formed and solved in float64:
    in float32, LAPACK's solver failed to converge (LinAlgError) on the nearly rank-deficient products of a
    ReLU stack at initialisation unless denormals were flushed.
    """
    wide = matrices.double()
    return torch.linalg.eigvalsh(wide @ wide.mT)[..., -1].clamp(min=0).sqrt()


def _where_finite(fn: Callable, matrices: torch.Tensor) -> torch.Tensor:
    """``fn`` of a batch of matrices, NaN for those holding NaN/Inf (a diverged cell), which LAPACK refuses."""
    finite = torch.isfinite(matrices).all(dim=-1).all(dim=-1)
    result = fn(torch.where(finite[..., None, None], matrices, torch.zeros_like(matrices)))
    mask = finite.reshape((*finite.shape, *([1] * (result.dim() - finite.dim()))))
    return torch.where(mask, result, torch.full_like(result, math.nan))


def _scaled_products(jacobians: JacobianSequence, lags: list[int]):
    """For each lag k of ``lags`` (checked, ascending), the product J_T ... J_{T-k+1} divided by a scale and the ln of
    that scale (float64; -inf once the product is 0): the scale carried apart keeps the product inside the float
    range over any number of steps. The products are (..., R, S), the rows of J_T that can be nonzero
    (:func:`_rows_that_can_be_nonzero`). A yielded product is not changed afterwards."""
    seq_len = len(jacobians)
    wanted = set(lags)
    prod = _rows_that_can_be_nonzero(jacobians.dense(seq_len - 1))
    scales = []
    log_scale = torch.zeros(prod.shape[:-2], dtype=torch.float64, device=prod.device)
    for k in range(1, lags[-1] + 1):
        if k > 1:
            prod = jacobians.right(prod, seq_len - k)
        # max |entry|, without the copy that abs() makes; 0 where every path is cut: the product stays 0 from then on
        scale = torch.maximum(prod.amax(dim=(-2, -1)), -prod.amin(dim=(-2, -1)))
        prod.div_(torch.where(scale == 0, torch.ones_like(scale), scale)[..., None, None])
        scales.append(scale)
        if k in wanted:  # the scales summed in float64 once per lag, not per step
            log_scale = log_scale + torch.log(torch.stack(scales).double()).sum(dim=0)
            scales = []
            yield prod, log_scale


def _rows_that_can_be_nonzero(last_step: torch.Tensor) -> torch.Tensor:
    """A copy of J_T (..., S, S) keeping only as many rows as the sequence with the most nonzero rows has, each
    sequence's nonzero rows first: a zero row of J_T (a ReLU unit inactive at step T) stays zero in every product
    J_T ... J_{T-k+1}, so the products are carried as (..., R, S) without it. At the default study's ReLU stacks
    R is about half of S, which halves each step's matmul and shrinks each lag's Gram matrix to R x R."""
    nonzero = (last_step != 0).any(dim=-1)  # NaN counts as nonzero
    kept = max(1, int(nonzero.sum(dim=-1).max()))
    if kept == last_step.shape[-1]:
        return last_step.clone()  # rescaled in place by the caller; a dense step may be a view of the factors
    rows = torch.argsort((~nonzero).to(torch.uint8), dim=-1, stable=True)[..., :kept]
    return last_step.gather(-2, rows.unsqueeze(-1).expand(*rows.shape, last_step.shape[-1]))


def _log_singular_values(prod: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """ln of the singular values (descending, S of them) of a scaled product (..., R, S): solved in float64, as the
    norms (LAPACK's float32 solvers are the ones that failed to converge); -inf for the S - R left out with the zero
    rows of J_T (exact zeros); NaN for a product holding NaN / Inf."""
    values = torch.log(_where_finite(torch.linalg.svdvals, prod.double())) + log_scale.unsqueeze(-1)
    missing = prod.shape[-1] - values.shape[-1]
    if missing == 0:
        return values
    zeros = torch.where(values[..., :1].isnan(), math.nan, -math.inf).expand(*values.shape[:-1], missing)
    return torch.cat([values, zeros], dim=-1)


def product_log_norms(jacobians: JacobianSequence, lags: Sequence[int], *, full_spectrum: bool = False):
    """ln ||dh_T/dh_{T-k}||_2 for each lag k (the largest singular value of J_T ... J_{T-k+1}).

    Returns ``(log_norms, log_singular_values)``: log_norms is (len(lags), ...) and
    log_singular_values the (..., N) ln singular values of the full product dh_T/dh_0
    (descending) when ``full_spectrum`` is set, else None. A product that is exactly
    zero (every path cut by inactive ReLUs) gives -inf. Each lag's norm is taken as the product passes, so
    no more than one product is held whatever the number of lags.
    """
    lags = _check_lags(lags, len(jacobians))
    if full_spectrum and lags[-1] != len(jacobians):
        raise ValueError("full_spectrum needs the lag equal to the sequence length among the lags")
    norms = []
    for prod, log_scale in _scaled_products(jacobians, lags):
        norms.append(torch.log(_where_finite(spectral_norm, prod).double()) + log_scale)
    return torch.stack(norms), _log_singular_values(prod, log_scale) if full_spectrum else None


def product_log_spectra(jacobians: JacobianSequence, lags: Sequence[int]) -> torch.Tensor:
    """ln of every singular value (descending) of J_T ... J_{T-k+1} for each lag k: (len(lags), ..., N), the
    first of each equal to :func:`product_log_norms`'s norm. The directions J_T kills (its zero rows: ReLU units
    inactive at step T) come out as -inf, exactly; one the earlier steps killed comes out at the rounding floor
    below the largest (beyond ``RESOLVED_PRODUCT_NATS``), a product that is exactly 0 as -inf."""
    lags = _check_lags(lags, len(jacobians))
    return torch.stack([_log_singular_values(prod, log_scale) for prod, log_scale in _scaled_products(jacobians, lags)])


def product_log_singular_values(jacobians: JacobianSequence) -> torch.Tensor:
    """ln of every singular value of ds_T/ds_0 = J_T ... J_1, descending (..., S), each to its own relative
    accuracy, where :func:`product_log_spectra` resolves only those within ``RESOLVED_PRODUCT_NATS`` of the largest.

    The product is never formed. The QR method carries it as Q_t (diag(e^s) U), Q_t's columns orthonormal (one per
    direction some sequence keeps: :class:`_QRProduct`) and the rows of U of unit length with their log lengths s
    apart: J_t Q_{t-1} = Q_t R_t, then the rows become R_t diag(e^s) U
    (:meth:`_QRProduct.multiply`). The singular values of diag(e^s) U are then those of the product
    (:func:`~rnn_dynamics.spectra.graded_log_singular_values`). A step Jacobian's rows of exact zeros (inactive ReLU
    units) become exact zero rows of R: the directions they kill come out as -inf, not as rounding. So do those of
    its zero columns (a unit no other unit reads: J_t = J_t Π, Π the projection onto the other columns), by
    multiplying Π in first. In float64 whatever the Jacobians' dtype (their factors are exact in it); NaN for a
    sequence holding NaN / Inf.
    """
    carried = _QRProduct(jacobians)
    for t in range(len(jacobians)):
        step = jacobians.dense(t)
        carried.zero_rows((step == 0).all(dim=-2))  # J_t's unread columns
        carried.multiply(jacobians.left(t, carried.q) if carried.exact else step.double() @ carried.q)
    return carried.log_singular_values()


def lag_log_singular_values(jacobians: JacobianSequence, lags: Sequence[int]) -> torch.Tensor:
    """ln of every singular value of ds_T/ds_{T-k} = J_T ... J_{T-k+1} for each lag k, descending
    (len(lags), ..., S), each to its own relative accuracy, where :func:`product_log_spectra` resolves only those
    within ``RESOLVED_PRODUCT_NATS`` of the largest at its lag.

    One walk back from step T carries the transposed product P_k^T = J_{T-k+1}^T ... J_T^T in the QR form of
    :func:`product_log_singular_values` (the way a gradient travels), its values taken at each lag. J_t's rows of
    exact zeros (J_t = Π J_t, Π the projection onto the rows that are not all 0) are zeroed in the carried Q first,
    J_t^T Q = J_t^T (Π Q): its QR then keeps them exact, so the directions inactive ReLU units kill come out as
    -inf here too. Zero columns of J_t (of W) are zero rows of J_t^T and count the same way.

    The carried rows of every lag are kept, and Jacobi runs on several lags at once, as many as
    ``LAG_SPECTRA_CHUNK_BYTES`` of rows that are not 0 hold: a round of row pairs is a dozen small operations whose
    launch, not arithmetic, costs most where the rows are few, while larger chunks fall out of the cache."""
    lags = _check_lags(lags, len(jacobians))
    wanted, kept = set(lags), []
    carried = _QRProduct(jacobians)
    for k in range(1, lags[-1] + 1):
        t = len(jacobians) - k
        step = jacobians.dense(t)
        carried.zero_rows((step == 0).all(dim=-1))  # J_t's zero rows
        carried.multiply(jacobians.right(carried.q.mT, t).mT if carried.exact else step.double().mT @ carried.q)
        if k in wanted:
            kept.append(carried.full_rows())  # new tensors, never changed in place after
    chunks, size = [[]], 0
    for rows, log_lengths, finite in kept:
        nonzero_bytes = rows[..., 0, :].numel() * _most_rows_kept(log_lengths) * 8
        if chunks[-1] and size + nonzero_bytes > LAG_SPECTRA_CHUNK_BYTES:
            chunks, size = [*chunks, []], 0
        chunks[-1].append((rows, log_lengths, finite))
        size += nonzero_bytes
    return torch.cat([_graded_values(*(torch.stack(part) for part in zip(*chunk))) for chunk in chunks])


#: The most bytes of nonzero carried rows :func:`lag_log_singular_values` hands Jacobi at once. Measured on 22 lags,
#: N = 100, 24 sequences (2 cores, AMD EPYC, two A/B runs in one process): 4 MiB took 0.62-0.65x the time of one
#: lag at a time under ReLU (about 47 rows not 0 per lag) and 0.82-0.91x under tanh (100 rows); 8 MiB 0.61x and
#: 0.9-1.3x.
LAG_SPECTRA_CHUNK_BYTES = 4 << 20


class _QRProduct:
    """A product of matrices carried as Q (diag(e^s) U) in float64: Q's columns orthonormal, U's rows of unit length,
    s their log lengths, descending (-inf: a row that is exactly 0); starts as the identity of the sequence's size.
    Only as many directions are carried as some member of the batch keeps: rows of U that are 0 in every member
    stay 0 under any factor, so they and Q's columns for them are dropped (Q (S, a), U (a, S)), and each QR after
    is of S x a instead of S x S (under ReLU a is about half of S)."""

    def __init__(self, jacobians: JacobianSequence):
        first = jacobians.dense(0)
        size, lead = first.shape[-1], first.shape[:-2]
        self.exact = first.dtype == torch.float64
        eye = torch.eye(size, dtype=torch.float64, device=first.device).expand(*lead, size, size)
        self.q, self.rows = eye.clone(), eye.clone()
        self.log_lengths = torch.zeros(*lead, size, dtype=torch.float64, device=first.device)
        self.finite = torch.ones(lead, dtype=torch.bool, device=first.device)

    def multiply(self, y: torch.Tensor) -> None:
        """The product times a matrix A on the left, given y = A Q. Rows of exact zeros go last before the QR of y,
        which leaves those rows of R exactly 0. Kept in order of s, R diag(e^s) = diag(e^s) M
        (:func:`~rnn_dynamics.spectra.graded_triangle`), so every row keeps its own digits however far below the
        first it falls."""
        from .spectra import graded_triangle, unit_length_rows

        self.finite = self.finite & torch.isfinite(y).all(dim=-1).all(dim=-1)  # new: earlier lags keep theirs
        y = torch.where(self.finite[..., None, None], y, 0.0)
        zero_last = torch.argsort((y == 0).all(dim=-1).to(torch.int8), dim=-1, stable=True).unsqueeze(-1)
        q_sorted, r = torch.linalg.qr(torch.gather(y, -2, zero_last.expand_as(y)))
        q = torch.empty_like(q_sorted).scatter_(-2, zero_last.expand_as(q_sorted), q_sorted)
        rows, log_lengths = unit_length_rows(graded_triangle(r, self.log_lengths) @ self.rows, self.log_lengths)
        order = torch.argsort(log_lengths, dim=-1, descending=True)
        kept = max(_most_rows_kept(log_lengths), 1)
        order = order[..., :kept]  # the rows that are 0 in every member go last: dropped
        self.log_lengths = torch.gather(log_lengths, -1, order)
        self.rows = torch.gather(rows, -2, order.unsqueeze(-1).expand(*order.shape, rows.shape[-1]))
        self.q = torch.gather(q, -1, order.unsqueeze(-2).expand(*q.shape[:-1], kept))

    def zero_rows(self, rows: torch.Tensor) -> None:
        """The product times Π on the left, Π zeroing the ``rows`` (..., S) marked True (nothing where none is): a
        factor of its own, so that its QR keeps those rows of R exactly 0."""
        if rows.any():
            self.multiply(torch.where(rows.unsqueeze(-1), 0.0, self.q))

    def log_singular_values(self) -> torch.Tensor:
        """ln of the product's singular values, descending (..., S): -inf for the rows that are 0, NaN where a
        factor held NaN / Inf."""
        return _graded_values(*self.full_rows())

    def full_rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """U's rows (..., S, S) and their log lengths (..., S), the dropped ones back as zero rows of log length
        -inf, and whether each member is finite: the same shapes at every step, for values taken at several."""
        dropped = self.rows.shape[-1] - self.rows.shape[-2]
        rows = torch.nn.functional.pad(self.rows, (0, 0, 0, dropped))
        return rows, torch.nn.functional.pad(self.log_lengths, (0, dropped), value=-math.inf), self.finite


def _most_rows_kept(log_lengths: torch.Tensor) -> int:
    """The most rows that are not 0 (finite log length) in any member of a batch of log lengths (..., S)."""
    return int(torch.isfinite(log_lengths).sum(dim=-1).max()) if log_lengths.numel() else 0


def _graded_values(rows: torch.Tensor, log_lengths: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """ln of the singular values of diag(e^s) U, descending (..., S), for U's ``rows`` with ``log_lengths`` s
    sorted descending (-inf: a zero row, given -inf without Jacobi touching it); NaN where not ``finite``."""
    from .spectra import graded_log_singular_values

    alive = _most_rows_kept(log_lengths)
    values = torch.full_like(log_lengths, -math.inf)
    values[..., :alive] = graded_log_singular_values(rows[..., :alive, :], log_lengths[..., :alive])
    return torch.where(finite.unsqueeze(-1), values, math.nan)


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


def _log_scaled(vector: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(vector / s, log_scale + ln s) with s the max |entry| over the last dim; a zero vector gets -inf."""
    size = vector.abs().amax(dim=-1)
    zero = size == 0
    size = torch.where(zero, torch.ones_like(size), size)
    log_scale = torch.where(zero, torch.full_like(log_scale, -math.inf), log_scale + torch.log(size).double())
    return vector / size.unsqueeze(-1), log_scale


def _steps_scaled(vectors: torch.Tensor, log_scales: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`_log_scaled` of every step of (T, ..., S) vectors with (T, ...) (or broadcast) log scales, in one
    batched call (per step it was most of the gradient-norm probe's time), as a list of per-step pairs."""
    vectors, log_scales = _log_scaled(vectors, log_scales.expand(vectors.shape[:-1]))
    return list(zip(vectors.unbind(0), log_scales.unbind(0)))


def _log_add(a: torch.Tensor, alpha: torch.Tensor, b: torch.Tensor, beta: torch.Tensor):
    """a e^alpha + b e^beta, as (vector, log scale), without leaving the float range."""
    top = torch.maximum(alpha, beta)
    top = torch.where(torch.isinf(top) & (top < 0), torch.zeros_like(top), top)
    total = (a * torch.exp(alpha - top).to(a.dtype).unsqueeze(-1)
             + b * torch.exp(beta - top).to(b.dtype).unsqueeze(-1))
    return _log_scaled(total, top)


def state_gradient_log_norms(model, trace, readout_grad: torch.Tensor) -> torch.Tensor:
    """ln ||dL/ds_t|| for every layer and t = 0..T: (L, T + 1, M, B), far outside the float range too.

    ``readout_grad`` (T, M, B, N) is dL/dh_t through the readout alone (the loss must be a
    sum of independent per-sample losses). dL/ds_t is then walked back through time,
    dL/ds_{t-1} = dL/ds_t J_t + (direct terms), with the model's own step Jacobians J_t,
    and down the layers through each layer's input (by the vector-Jacobian product of one
    step with respect to that input). Every vector is renormalised after each step with
    its logarithmic scale carried apart (as the Jacobian products are), so a gradient of
    1e-2000 is still exact; a gradient that is exactly zero gives -inf. ``model`` is a
    :class:`~rnn_dynamics.models.RecurrentStack`.
    """
    n, top = model.hidden_size, model.num_layers - 1
    steps, m, b = readout_grad.shape[:3]
    zero_scale = torch.zeros(m, b, dtype=torch.float64, device=readout_grad.device)
    size = trace.states[0][0].shape[-1]
    # direct[t]: (vector (M, B, S), log scale (M, B)) of dL/ds_t not through s_{t+1} of the same layer,
    # t = 0..T (none at t = 0), each scaled in one batched call
    nothing = (readout_grad.new_zeros((m, b, size)), torch.full_like(zero_scale, -math.inf))
    direct = [nothing, *_steps_scaled(torch.nn.functional.pad(readout_grad, (0, size - n)), zero_scale)]
    result = [None] * model.num_layers
    for layer in range(top, -1, -1):
        # steps with no direct term (all of them but the last under a ``last`` readout) skip the log-sum: one
        # host read for all of them, and the same numbers (adding exactly zero)
        no_direct = torch.stack([log_scale for _, log_scale in direct]).isneginf().flatten(1).all(dim=1).tolist()
        jacobians = model.step_jacobians(trace, layer)
        below = _input_gradient(model, trace, layer) if layer > 0 else None
        walked = [None] * (steps + 1)  # (dL/ds_t scaled, its log scale), normed together afterwards
        lower = [None] * (steps + 1)
        delta, scale = direct[steps]
        for t in range(steps, 0, -1):
            walked[t] = delta, scale
            if below is not None:
                lower[t] = (torch.nn.functional.pad(below(t - 1, delta), (0, size - n)), scale)
            through = jacobians.right(delta.unsqueeze(-2), t - 1).squeeze(-2)
            delta, scale = _log_scaled(through, scale) if no_direct[t - 1] else _log_add(through, scale,
                                                                                            *direct[t - 1])
        walked[0] = delta, scale
        result[layer] = (torch.log(torch.stack([vector for vector, _ in walked]).norm(dim=-1)).double()
                         + torch.stack([log_scale for _, log_scale in walked]))
        if layer > 0:
            direct = [nothing, *_steps_scaled(torch.stack([vector for vector, _ in lower[1:]]),
                                              torch.stack([log_scale for _, log_scale in lower[1:]]))]
    return torch.stack(result)


def _input_gradient(model, trace, layer: int) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """``vjp(i, v)``: v ds_{i+1}/dx_{i+1}, the part of a cotangent of layer ``layer``'s state that reaches
    its input (the hidden state of the layer below), by autograd through one step."""
    step = model.recurrence(layer)
    states = trace.stacked_states(layer).detach()
    inputs = trace.hidden(layer - 1)[1:].detach()

    def vjp(i: int, cotangent: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = inputs[i].requires_grad_()
            new_state, _ = step(states[i], model.layer_drive(layer, x.unsqueeze(0))[0])
            return torch.autograd.grad(new_state, x, cotangent)[0]

    return vjp
