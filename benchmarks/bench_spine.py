"""Speed of the spine against plain PyTorch, as ratios measured in one process.

    python benchmarks/bench_spine.py            # pixel-MNIST shape: N = 100, batch 16, T = 784
    python benchmarks/bench_spine.py --quick    # T = 200, fewer repeats

Prints, for the same model, data and optimiser:
  1. one cell (--probe-every 0) vs a plain torch.nn.RNN training loop    (target <= 1.05x)
  2. a stack of 6 cells vs 6 sequential torch.nn.RNN runs               (target >= 2x faster)
  3. recording one probe per 100 updates, as a fraction of training     (target <= 10%),
     and the test-set evaluation each probe also runs, reported apart
  4. Jacobian norm vs lag: structured product vs autograd lag by lag    (target >= 20x, same numbers)
Each timing is the median of several alternating repeats: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnn_dynamics.cells import ElmanStack
from rnn_dynamics.jacobians import ElmanJacobians, default_lags, lag_product_autograd, product_log_norms
from rnn_dynamics.probes import LyapunovProbe, Prober
from rnn_dynamics.tasks import make_task
from rnn_dynamics.train import TrainConfig, flushed_denormals, train_stack

INITS6 = ["identity", "scaled_identity", "orthogonal", "random_walk", "xavier", "he"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_rnn_training(task, steps: int, hidden: int) -> None:
    """The baseline: torch.nn.RNN + nn.Linear readout, Adam, norm clipping, same batches."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(task.input_size, hidden, nonlinearity="relu")
    readout = torch.nn.Linear(hidden, task.output_size)
    params = [*rnn.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)
    for step in range(steps):
        x, y = task.train_batch(step)
        _, h_last = rnn(x)
        loss = ((readout(h_last[0])[:, 0] - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


def stack_training(task, inits, steps: int, hidden: int, probe_every: int = 0, prober=None) -> None:
    model = ElmanStack.from_inits(inits, task.input_size, hidden, task.output_size, "relu")
    train_stack(model, task, TrainConfig(steps=steps, lr=1e-4, probe_every=probe_every), prober)


def median_of(fn, repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="T = 200 and fewer repeats")
    args = parser.parse_args()
    seq_len, repeats, steps = (200, 3, 10) if args.quick else (784, 5, 10)
    hidden, batch = 100, 16
    torch.set_num_threads(torch.get_num_threads())
    task = make_task("adding", seq_len=seq_len, seed=0, batch_size=batch, preset="default")
    print(f"shape: N = {hidden}, batch {batch}, T = {seq_len}; {steps} training steps per timing; "
          f"median of {repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    # train_stack flushes float32 denormals (vanishing gradients pass through them); the
    # baseline gets the same setting so that the comparison is of the code, not of the flag.
    with flushed_denormals():
        t_plain_flushed = median_of(lambda: plain_rnn_training(task, steps, hidden), repeats)
    t_plain_default = median_of(lambda: plain_rnn_training(task, steps, hidden), repeats)
    print(f"0. torch.nn.RNN baseline {t_plain_default / steps * 1e3:.1f} ms/step with default float flags, "
          f"{t_plain_flushed / steps * 1e3:.1f} ms/step with denormals flushed")
    plain_rnn_training(task, 2, hidden)  # warm-up
    stack_training(task, ["identity"], 2, hidden)
    plain, one, six = [], [], []
    for _ in range(repeats):  # alternate so that drifts in machine load hit both sides alike
        with flushed_denormals():
            plain.append(timed(lambda: plain_rnn_training(task, steps, hidden)))
        one.append(timed(lambda: stack_training(task, ["identity"], steps, hidden)))
        six.append(timed(lambda: stack_training(task, INITS6, steps, hidden)))
    t_plain, t_one, t_six = map(statistics.median, (plain, one, six))
    print(f"1. one cell {t_one / steps * 1e3:.1f} ms/step vs torch.nn.RNN {t_plain / steps * 1e3:.1f} ms/step: "
          f"{t_one / t_plain:.2f}x the time (target <= 1.05x)")
    print(f"2. stack of 6 {t_six / steps * 1e3:.1f} ms/step vs 6 sequential torch.nn.RNN "
          f"{6 * t_plain / steps * 1e3:.1f} ms/step: {6 * t_plain / t_six:.2f}x faster (target >= 2x)")

    for inits, t_train in ((["identity"], t_one), (INITS6, t_six)):
        model = ElmanStack.from_inits(inits, task.input_size, hidden, task.output_size, "relu")
        prober = Prober(task, default_lags(seq_len), lyapunov=LyapunovProbe())
        with flushed_denormals():  # as inside train_stack
            t_record = median_of(lambda: (prober.weight_spectra(model), prober.dynamics(model)), repeats)
            t_test = median_of(lambda: prober.losses(model, 0), repeats)
            t_lyapunov = median_of(lambda: prober.lyapunov(model), 1 if len(inits) > 1 else repeats)
        per_100 = 100 * t_train / steps
        print(f"3. stack of {len(inits)}, one probe per 100 updates: recording (spectra, Jacobians, grad norms) "
              f"{t_record:.2f} s = {100 * t_record / per_100:.1f}% (target <= 10%); test evaluation on "
              f"{prober.test_size} sequences {t_test:.2f} s = {100 * t_test / per_100:.1f}% more; "
              f"the optional Lyapunov probe {t_lyapunov:.2f} s = {100 * t_lyapunov / per_100:.1f}% more")

    model = ElmanStack.from_inits(["he"], task.input_size, hidden, task.output_size, "relu", input_std=0.1)
    x = task.test_x[:, :1]
    with torch.no_grad():
        trace = model.trace(x)
    lags = default_lags(seq_len)
    jac = ElmanJacobians.from_preacts(model.w_hh[0][0].detach(), trace.stacked_preacts(0)[:, 0, 0], "relu")
    t_fast = median_of(lambda: product_log_norms(jac, lags), repeats)
    fast, _ = product_log_norms(jac, lags)
    states = trace.stacked_states(0)[:, 0, 0]
    drive = model.layer_drive(0, x).detach()[:, 0, 0]
    step = model.recurrent_step(0, 0)

    def autograd_all_lags():
        return torch.stack([torch.linalg.matrix_norm(
            lag_product_autograd(step, states[-1 - k], drive[-k:]), ord=2) for k in lags])

    t_slow = timed(autograd_all_lags)
    slow = autograd_all_lags()
    finite = slow > 0
    worst = ((fast.exp()[finite] - slow[finite]).abs() / slow[finite]).max().item()
    print(f"4. ||dh_T/dh_(T-k)|| at {len(lags)} lags, one {seq_len}-step sequence: structured {t_fast * 1e3:.0f} ms "
          f"vs autograd lag by lag {t_slow * 1e3:.0f} ms: {t_slow / t_fast:.0f}x faster (target >= 20x); "
          f"max relative difference {worst:.1e} (float32)")


if __name__ == "__main__":
    main()
