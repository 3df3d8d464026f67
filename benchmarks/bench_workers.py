"""Where stacks run, and with how many threads: in-process against a local dask cluster.

    python benchmarks/bench_workers.py            # 2 repeats of each, about 4 minutes on 2 cores
    python benchmarks/bench_workers.py --quick    # 1 repeat, shorter studies

Prints, timing whole `python -m analyses.spectra` commands (start-up included), medians of
alternating repeats:
  1. one forward + backward of a 1-cell stack (T = 300, N = 100, batch 16) with 1 and with every
     thread, on a quiet machine and beside a busy process (a spinning loop holding one core), and
     the thread count `--threads auto` (`executors.choose_threads`) picks in each case;
  2. the default study's 12 cells (2 stacks of 6) at --steps 500: in-process with its default threads
     (every core), in-process with 1 thread, and --workers 2 (target: --workers 2 at least 1.6x faster);
  3. the overhead of the dask path on a 1-stack study: --workers 1 against in-process (target < 10 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from rnn_dynamics.config import StudyConfig
from rnn_dynamics.executors import available_cores, choose_threads, torch_threads
from rnn_dynamics.models import get_cell
from rnn_dynamics.sweep import plan_stacks
from rnn_dynamics.tasks import make_task


@contextmanager
def busy_process():
    """Another process spinning on one core while the body runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def step_time(threads: int, repeats: int = 5) -> float:
    """Median seconds of one forward + backward of a 1-cell Elman stack at T = 300."""
    task = make_task("adding", seq_len=300, seed=0, batch_size=16, train_size=16, test_size=1)
    model = get_cell("elman").from_inits(["identity"], 2, 100, 1, "relu")
    x, y = task.train_batch(0)
    times = []
    with torch_threads(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            task.per_sample_loss(model(x), y).sum().backward()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def study_time(*args: str) -> float:
    """Seconds of one `python -m analyses.spectra` command into a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analyses.spectra", "--quiet", "--out", str(Path(folder) / "s.nc"),
                        *args], check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repeat and shorter studies")
    args = parser.parse_args()
    repeats, steps = (1, "200") if args.quick else (2, "500")
    cores = available_cores()
    config = StudyConfig(inits=["identity"], nonlinearities=["relu"], seq_len=[300])
    spec = plan_stacks(config)[0]
    print(f"{cores} cores, torch {torch.__version__}")
    for label, context in (("quiet", None), ("beside a busy process", busy_process)):
        with (context() if context else nullcontext()):
            one, every = step_time(1), step_time(cores)
            picked = choose_threads(config, spec)
        print(f"1. {label}: forward + backward {one * 1e3:.0f} ms with 1 thread, {every * 1e3:.0f} ms with {cores}; "
              f"choose_threads picks {picked}")

    study = ["--steps", steps]
    runs = {"in-process, every core": study, "in-process, 1 thread": [*study, "--threads", "1"],
            "--workers 2": [*study, "--workers", "2"]}
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, flags in runs.items():
            times[name].append(study_time(*flags))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["--workers 2"]
    listed = "; ".join(f"{name} {t:.1f} s" for name, t in medians.items())
    print(f"2. default study's 12 cells, {steps} steps: {listed}"
          f"; --workers 2 is {medians['in-process, every core'] / base:.2f}x faster than in-process with every "
          f"core and {medians['in-process, 1 thread'] / base:.2f}x faster than with 1 (target >= 1.6x)")

    tiny = ["--inits", "identity", "--nonlinearities", "relu", "--steps", "50", "--preset", "tiny"]
    alone = statistics.median(study_time(*tiny) for _ in range(repeats))
    dask = statistics.median(study_time(*tiny, "--workers", "1") for _ in range(repeats))
    print(f"3. a 1-stack study: in-process {alone:.1f} s, --workers 1 {dask:.1f} s: the dask path adds "
          f"{dask - alone:.1f} s (target < 10 s)")


if __name__ == "__main__":
    main()
