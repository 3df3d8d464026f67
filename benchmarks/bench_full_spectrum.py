"""Full-depth singular values of ds_T/ds_0 (the full_product_spectrum probe) against the dense product the
jacobian_products probe forms (its norms at ~30 lags and the SVD at T), and at every lag (full_lag_spectra) against
the dense products' SVDs at those lags (lag_spectra), on the default study's stacks, in one process.

    PYTHONPATH=. python benchmarks/bench_full_spectrum.py            # N = 100, T = 50, 6 inits x 4 sequences
    PYTHONPATH=. python benchmarks/bench_full_spectrum.py --seq-len 150

Prints the times, their ratios, and how many directions each product keeps (ReLU zeroes some exactly); then the
full-depth times again with every matrix left to the Jacobi engine (no formed matrix handed to LAPACK's dgejsv), the
same values in another engine, and that engine's time against the default's.
"""

from __future__ import annotations

import argparse
import math
import time
from unittest import mock

import torch

from rnn_dynamics import StudyConfig, spectra
from rnn_dynamics.jacobians import (default_lags, lag_log_singular_values, product_log_norms,
                                    product_log_singular_values, product_log_spectra)
from rnn_dynamics.models import get_cell


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=100)
    args = parser.parse_args(argv)
    config = StudyConfig(seq_len=[args.seq_len], hidden=args.hidden)
    task = config.build_task(args.seq_len, 0)
    x, _ = task.probe_sequences(config.probe_batch)
    print(f"N = {args.hidden}, T = {args.seq_len}, {len(config.inits)} inits x {config.probe_batch} sequences, "
          f"{torch.get_num_threads()} threads")
    for nonlinearity in config.nonlinearities:
        model = get_cell("elman").from_inits(config.inits, task.input_size, args.hidden, task.output_size,
                                             nonlinearity, 1, task.readout, seed=0)
        lags = default_lags(args.seq_len)
        with torch.no_grad():
            jacobians = model.step_jacobians(model.trace(x), 0, dtype=torch.float64)
            dense, _ = timed(product_log_norms, jacobians, lags, full_spectrum=True)
            full, values = timed(product_log_singular_values, jacobians)
            dense_lags, _ = timed(product_log_spectra, jacobians, lags)
            full_lags, lag_values = timed(lag_log_singular_values, jacobians, lags)
        alive = torch.isfinite(values).sum(dim=-1)
        print(f"{nonlinearity}: dense product {dense:.3f} s, full depth {full:.3f} s ({full / dense:.1f}x); "
              f"directions kept per product {int(alive.min())}..{int(alive.max())} of {values.shape[-1]}")
        kept = torch.isfinite(lag_values).sum(dim=-1).double().mean(dim=(1, 2))
        print(f"{nonlinearity}, {len(lags)} lags: dense SVDs {dense_lags:.3f} s, full depth {full_lags:.3f} s "
              f"({full_lags / dense_lags:.1f}x); directions kept on average at k = {lags[0]}: {kept[0]:.1f}, "
              f"k = {lags[-1]}: {kept[-1]:.1f}")
        with torch.no_grad(), mock.patch.object(spectra, "FORMED_SPREAD_LIMIT", -math.inf):
            jacobi, jacobi_values = timed(product_log_singular_values, jacobians)
            jacobi_lags, jacobi_lag_values = timed(lag_log_singular_values, jacobians, lags)
        apart = max(_largest_difference(values, jacobi_values), _largest_difference(lag_values, jacobi_lag_values))
        print(f"{nonlinearity}, Jacobi engine only: ds_T/ds_0 {jacobi:.3f} s ({jacobi / full:.1f}x the default's), "
              f"{len(lags)} lags {jacobi_lags:.3f} s ({jacobi_lags / full_lags:.1f}x); values apart by at most "
              f"{apart:.1e} nats")
    return 0


def _largest_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest |a - b| where both are finite; inf where one is finite and the other not."""
    if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return math.inf
    finite = torch.isfinite(a)
    return float((a[finite] - b[finite]).abs().max()) if finite.any() else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
