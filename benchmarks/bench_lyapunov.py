"""Full Lyapunov spectrum: structured Jacobians vs the research-code fallback, in one process.

    python benchmarks/bench_lyapunov.py            # N = 100, T = 784, batch 16, float64
    python benchmarks/bench_lyapunov.py --quick    # T = 200, batch 4

The fallback builds every step Jacobian with torch.autograd.functional.jacobian (one call
per step and sequence) and re-orthonormalises with torch.linalg.qr, as research code
commonly does; ours uses the structure J_t = diag(f'(a_t)) W and keeps Q in Householder
form (geqrf + ormqr).
Target: at least 20x faster, same numbers.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnn_dynamics.models import ElmanStack
from rnn_dynamics.lyapunov import model_lyapunov_spectrum
from rnn_dynamics.seeding import generator_for
from rnn_dynamics.tasks import make_task


def fallback_spectrum(model: ElmanStack, x: torch.Tensor) -> torch.Tensor:
    """What research code commonly does: each step Jacobian by autograd, then Q, R = qr(J Q).

    Same random frame and the same warm-up-free average as ours, so the numbers must agree.
    """
    with torch.no_grad():
        trace = model.trace(x)
        states, drive = trace.stacked_states(0)[:, 0], trace.drives[0][:, 0]  # (T + 1, B, N), (T, B, N)
    step = model.recurrent_step(0, 0)
    steps, batch, n = drive.shape
    frame, _ = torch.linalg.qr(torch.randn(n, n, generator=generator_for("lyapunov"), dtype=torch.float64))
    q = frame.expand(batch, n, n)
    total = torch.zeros(batch, n, dtype=torch.float64)
    for t in range(steps):
        jac = torch.stack([torch.autograd.functional.jacobian(lambda h: step(h, drive[t, b]), states[t, b])
                           for b in range(batch)])
        q, r = torch.linalg.qr(jac @ q)
        total += torch.log(torch.diagonal(r, dim1=-2, dim2=-1).abs())
    return torch.sort(total / steps, dim=-1, descending=True).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="T = 200, batch 4")
    args = parser.parse_args()
    seq_len, batch, hidden = (200, 4, 100) if args.quick else (784, 16, 100)
    task = make_task("adding", seq_len=seq_len, seed=0, batch_size=batch, preset="tiny")
    model = ElmanStack.from_inits(["he"], 2, hidden, 1, "tanh", input_std=0.5).double()
    x = task.test_x[:, :batch].double()
    print(f"N = {hidden}, T = {seq_len}, batch {batch}, float64, tanh He init; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    start = time.perf_counter()
    fast = model_lyapunov_spectrum(model, x).exponents[0]
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = fallback_spectrum(model, x)
    t_slow = time.perf_counter() - start
    diff = (fast - slow).abs().max().item()
    print(f"structured {t_fast:.2f} s vs autograd step Jacobians {t_slow:.1f} s: {t_slow / t_fast:.0f}x faster "
          f"(target >= 20x); max |difference| of the {fast.numel()} exponents {diff:.1e} nats/step; "
          f"largest exponent {fast[:, 0].mean():.4f}")


if __name__ == "__main__":
    main()
