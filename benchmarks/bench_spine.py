"""Training speed of a cell type against plain PyTorch, as ratios measured in one process.

    python benchmarks/bench_spine.py                  # Elman, pixel-MNIST shape: N = 100, batch 16, T = 784
    python benchmarks/bench_spine.py --cell lstm      # the LSTM against torch.nn.LSTM
    python benchmarks/bench_spine.py --quick          # T = 200, fewer repeats
    python benchmarks/bench_spine.py --task mnist --data-dir ../shared/data/mnist-10k   # real pixel-MNIST batches

Prints, for the same data, optimiser (Adam) and clipping:
  1. one cell (--probe-every 0) vs a plain torch.nn.RNN / LSTM / GRU training loop
     (targets: Elman <= 1.05x, LSTM <= 1.5x the time)
  2. a stack of M cells vs M sequential torch.nn runs (M = 6 for Elman, 4 for gated cells;
     targets: Elman >= 2x, LSTM >= 1.5x faster)
  3. recording one probe per 100 updates (every default probe), as a fraction of training
     (target <= 10%), the test evaluation and the optional Lyapunov probe reported apart
  4. (Elman) Jacobian norm vs lag: structured product vs autograd lag by lag (target >= 20x, same numbers)
Each timing is the median of alternating repeats: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnn_dynamics.config import StudyConfig, TrainConfig
from rnn_dynamics.jacobians import default_lags, lag_product_autograd, product_log_norms
from rnn_dynamics.models import get_cell
from rnn_dynamics.probes import PROBES, ProbeContext, ProbeSettings
from rnn_dynamics.tasks import make_task
from rnn_dynamics.train import flushed_denormals, train_stack

#: cell type -> (the torch.nn baseline, the stack size compared, its nonlinearity)
BASELINES = {"elman": (torch.nn.RNN, 6, "relu"), "lstm": (torch.nn.LSTM, 4, "tanh"), "gru": (torch.nn.GRU, 4, "tanh")}
INITS = ["identity", "scaled_identity", "orthogonal", "random_walk", "xavier", "he"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_training(module_cls, nonlinearity, task, steps: int, hidden: int, device: str = "cpu") -> None:
    """The baseline: a fused torch.nn recurrent module (cuDNN on a GPU) + nn.Linear readout, Adam, norm
    clipping, same batches and the task's own loss."""
    torch.manual_seed(0)
    extra = {"nonlinearity": nonlinearity} if module_cls is torch.nn.RNN else {}
    rnn = module_cls(task.input_size, hidden, **extra).to(device)
    readout = torch.nn.Linear(hidden, task.output_size).to(device)
    params = [*rnn.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)
    for step in range(steps):
        x, y = (t.to(device) for t in task.train_batch(step))
        outputs, _ = rnn(x)
        loss = task.per_sample_loss(readout(outputs[-1]).unsqueeze(0), y).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


def stack_training(cell, nonlinearity, task, inits, steps: int, hidden: int, device: str = "cpu") -> None:
    model = get_cell(cell).from_inits(inits, task.input_size, hidden, task.output_size, nonlinearity).to(device)
    train_stack(model, task, TrainConfig(steps=steps, lr=1e-4, probe_every=0))


def median_of(fn, repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", default="elman", choices=sorted(BASELINES), help="cell type (default elman)")
    parser.add_argument("--quick", action="store_true", help="T = 200 and fewer repeats")
    parser.add_argument("--task", default="adding", choices=["adding", "mnist"],
                        help="adding (random data, T = 784) or mnist (pixel-by-pixel digits); default adding")
    parser.add_argument("--data-dir", default=None, help="data root holding MNIST (for --task mnist)")
    args = parser.parse_args()
    seq_len, repeats, steps = (200, 3, 10) if args.quick else (784, 5, 10)
    hidden, batch = 100, 16
    module_cls, size, nonlinearity = BASELINES[args.cell]
    inits = INITS[:size]
    if args.task == "mnist":
        seq_len = 784
        task = make_task("mnist", batch_size=batch, data_dir=args.data_dir, test_size=256)
    else:
        task = make_task("adding", seq_len=seq_len, seed=0, batch_size=batch, preset="default")
    print(f"{args.task}: {args.cell} ({nonlinearity}) vs torch.nn.{module_cls.__name__}; N = {hidden}, batch {batch}, "
          f"T = {seq_len}; {steps} training steps per timing; median of {repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    def plain():
        plain_training(module_cls, nonlinearity, task, steps, hidden)

    # train_stack flushes float32 denormals (vanishing gradients pass through them); the
    # baseline gets the same setting so that the comparison is of the code, not of the flag.
    with flushed_denormals():
        t_plain_flushed = median_of(plain, repeats)
    t_plain_default = median_of(plain, repeats)
    print(f"0. torch.nn.{module_cls.__name__} baseline {t_plain_default / steps * 1e3:.1f} ms/step with default "
          f"float flags, {t_plain_flushed / steps * 1e3:.1f} ms/step with denormals flushed")
    stack_training(args.cell, nonlinearity, task, inits[:1], 2, hidden)  # warm-up
    plain_times, one, many = [], [], []
    for _ in range(repeats):  # alternate so that drifts in machine load hit both sides alike
        with flushed_denormals():
            plain_times.append(timed(plain))
        one.append(timed(lambda: stack_training(args.cell, nonlinearity, task, inits[:1], steps, hidden)))
        many.append(timed(lambda: stack_training(args.cell, nonlinearity, task, inits, steps, hidden)))
    t_plain, t_one, t_many = map(statistics.median, (plain_times, one, many))
    print(f"1. one cell {t_one / steps * 1e3:.1f} ms/step vs torch.nn.{module_cls.__name__} "
          f"{t_plain / steps * 1e3:.1f} ms/step: {t_one / t_plain:.2f}x the time")
    print(f"2. stack of {size} {t_many / steps * 1e3:.1f} ms/step vs {size} sequential torch.nn.{module_cls.__name__} "
          f"{size * t_plain / steps * 1e3:.1f} ms/step: {size * t_plain / t_many:.2f}x faster")

    config = StudyConfig()
    for cells, t_train in ((inits[:1], t_one), (inits, t_many)):
        model = get_cell(args.cell).from_inits(cells, task.input_size, hidden, task.output_size, nonlinearity)
        settings = ProbeSettings(tuple(default_lags(seq_len)), config.probe_batch, test_size=256)
        recording = [PROBES.get(name) for name in config.probes if name != "losses"]

        def record():
            ctx = ProbeContext(model, task, 0, settings, cells)
            for probe in recording:
                probe(ctx)

        def probe_once(name):
            return lambda: PROBES.get(name)(ProbeContext(model, task, 0, settings, cells))

        with flushed_denormals():  # as inside train_stack
            t_record = median_of(record, repeats)
            t_test = median_of(probe_once("losses"), repeats)
            t_lyapunov = median_of(probe_once("lyapunov"), 1 if len(cells) > 1 else repeats)
        per_100 = 100 * t_train / steps
        names = ", ".join(p.name for p in recording)
        print(f"3. stack of {len(cells)}, one probe per 100 updates: recording ({names}) "
              f"{t_record:.2f} s = {100 * t_record / per_100:.1f}% (target <= 10%); test evaluation on "
              f"{settings.test_size} sequences {t_test:.2f} s = {100 * t_test / per_100:.1f}% more; "
              f"the optional Lyapunov probe {t_lyapunov:.2f} s = {100 * t_lyapunov / per_100:.1f}% more")

    if args.cell == "elman":
        model = get_cell("elman").from_inits(["orthogonal"], task.input_size, hidden, task.output_size, "tanh",
                                             input_std=0.5)
        x = task.test_x[:, :1]
        with torch.no_grad():
            trace = model.trace(x)
        lags = default_lags(seq_len)
        start = time.perf_counter()
        fast, _ = product_log_norms(model.step_jacobians(trace, 0), lags)
        t_fast = time.perf_counter() - start
        states, drive = trace.stacked_states(0)[:, 0, 0], trace.drives[0][:, 0, 0]
        step = model.recurrent_step(0, 0)
        start = time.perf_counter()
        slow = torch.stack([torch.linalg.matrix_norm(lag_product_autograd(step, states[-1 - k], drive[-k:]), ord=2)
                            for k in lags])
        t_slow = time.perf_counter() - start
        normal = slow > torch.finfo(slow.dtype).tiny  # autograd's float32 products underflow, ours carry the scale
        rel = ((fast[:, 0, 0].exp() - slow) / slow)[normal].abs().max().item()
        print(f"4. ||dh_T/dh_(T-k)|| at {len(lags)} lags: structured {t_fast * 1e3:.0f} ms vs autograd lag by lag "
              f"{t_slow * 1e3:.0f} ms: {t_slow / t_fast:.0f}x faster (target >= 20x), max relative difference "
              f"{rel:.1e} (float32) at the {int(normal.sum())} lags whose autograd product stays above float32's "
              f"smallest normal number (ours: down to e^{fast.min().item():.0f})")


if __name__ == "__main__":
    main()
