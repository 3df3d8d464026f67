"""Where the stacks of a study run: in this process, or as tasks on a dask.distributed cluster.

An executor takes the stacks still to run and yields ``(spec, stack dataset)`` as each one
finishes; the study runner saves each at once and merges them. A stack's numbers do not
depend on where or in which order it runs (every generator is seeded from coordinates),
but they do depend on the torch thread count: BLAS and LAPACK split their sums differently
with more threads (measured: weights 1e-9 apart after 20 pixel-MNIST updates with 1 and 2
threads, and chaotic training grows that). So the thread count is never left to chance:
workers run one thread each and the in-process run every core, unless ``--threads`` says
otherwise, and the dataset records it (``torch_threads``). Equal thread counts give
bit-identical datasets whatever the executor, worker count or order (tested).

Threads and load: a step of a stack is thousands of small matmuls, and torch's OpenMP threads
wait on each other when another process holds a core (measured on 2 cores beside two busy
processes: 45 ms with 1 thread against 1.5 to 10.8 s with 2). ``--threads auto`` times a few
training steps of the first stack with one thread and with every core and keeps the faster
(:func:`choose_threads`), at the price of a count, and so of bits, that depends on the load.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import xarray as xr
from tqdm.auto import tqdm

from .config import StudyConfig


#: ``--threads auto``: let a timing choose the in-process thread count.
AUTO = "auto"


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def torch_threads(threads: int):
    """Run the body with ``threads`` torch threads, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def choose_threads(config: StudyConfig, spec, repeats: int = 3) -> int:
    """1 or every core, whichever trains ``spec``'s stack faster now (median of ``repeats`` forward and
    backward passes each, alternating); the timed stack is thrown away."""
    from .dtypes import get_dtype
    from .models import get_cell

    cores = available_cores()
    if cores == 1:
        return 1
    dtype = get_dtype(config.dtype)
    task = config.build_task(spec.seq_len, spec.seed, train_size=config.batch_size, test_size=1).to(dtype)
    model = get_cell(spec.cell).from_inits(spec.inits, task.input_size, config.hidden, task.output_size,
                                           spec.nonlinearity, config.layers, task.readout,
                                           **config.options_for(spec.cell)).to(device=config.device, dtype=dtype)
    x, y = (t.to(config.device) for t in task.train_batch(0))

    def step():
        model.zero_grad()
        task.per_sample_loss(model(x), y).sum().backward()

    timings = {1: [], cores: []}
    for _ in range(repeats):
        for threads in timings:  # alternate, so that a change in load hits both alike
            with torch_threads(threads):
                start = time.perf_counter()
                step()
                timings[threads].append(time.perf_counter() - start)
    return min(timings, key=lambda threads: statistics.median(timings[threads]))


class InProcess:
    """Runs the stacks one after another in this process, each with its own step bar."""

    def __init__(self, threads: int | str | None = None):
        self.threads = available_cores() if threads is None else threads  # "auto": timed at the first stack

    def describe(self) -> str:
        return "in-process"

    def available_bytes(self, config: StudyConfig) -> int | None:
        from .sweep import local_available_bytes

        return local_available_bytes(config.device)

    def run(self, config: StudyConfig, specs: list, progress: bool,
            snapshots: dict | None = None) -> Iterator[tuple[object, xr.Dataset]]:
        """Each stack of ``specs`` as it finishes, with its snapshot of ``snapshots`` (by stack key) if any."""
        from .sweep import run_stack

        if not specs:
            return
        if self.threads == AUTO:
            self.threads = choose_threads(config, specs[0])
        with torch_threads(self.threads):
            for spec in specs:
                with tqdm(total=config.train.steps, desc=spec.key(), unit="step", leave=False, position=1,
                          disable=None if progress else True) as bar:
                    yield spec, run_stack(config, spec, on_step=lambda n=1: bar.update(n),
                                          snapshot=(snapshots or {}).get(spec.key()))


def run_stack_task(config: StudyConfig, spec, threads: int, snapshot=None) -> xr.Dataset:
    """One stack on a dask worker, with ``threads`` torch threads (and its snapshot, where the worker can reach
    the study's folder)."""
    from .sweep import run_stack

    with torch_threads(threads):
        return run_stack(config, spec, snapshot=snapshot)


class Dask:
    """Runs each stack as one task on a dask.distributed cluster (a ``distributed.Client``).

    Results come back as they finish; a worker lost mid-stack has its task rescheduled by
    dask on another worker.
    """

    def __init__(self, client, threads: int | None = None, gpus: list[str] | None = None):
        self.client, self.threads, self.gpus = client, threads or 1, gpus

    def describe(self) -> str:
        workers = len(self.client.scheduler_info(n_workers=-1)["workers"])
        pinned = f", one GPU each (CUDA_VISIBLE_DEVICES {', '.join(self.gpus)})" if self.gpus else ""
        return f"dask.distributed ({workers} workers at {self.client.scheduler.address}{pinned})"

    def available_bytes(self, config: StudyConfig) -> int | None:
        """What one stack may take on any worker: for a study on a GPU, the free memory of each worker's GPU
        shared among the workers on it (:func:`per_worker_gpu_bytes`); else the workers' memory limits."""
        if config.device.startswith("cuda"):
            try:
                reports = self.client.run(gpu_free_bytes, config.device)
            except Exception as err:  # noqa: BLE001 - whatever a worker raised, said in one line before any stack runs
                said = (str(err).splitlines() or [""])[0]
                raise ValueError(f"--device {config.device!r}: a dask worker cannot use it "
                                 f"({type(err).__name__}: {said})") from None
            return per_worker_gpu_bytes(reports.values())
        limits = [w.get("memory_limit") for w in self.client.scheduler_info(n_workers=-1)["workers"].values()]
        limits = [limit for limit in limits if limit]
        return min(limits) if limits else None

    def run(self, config: StudyConfig, specs: list, progress: bool,
            snapshots: dict | None = None) -> Iterator[tuple[object, xr.Dataset]]:
        """Each stack of ``specs`` as it finishes; a worker writes its stack's snapshot of ``snapshots`` (by
        stack key) where it shares the study's file system, and trains on without one where it does not."""
        from distributed import as_completed

        from .checkpoints import fingerprint

        study = fingerprint(config.to_dict())
        futures = {self.client.submit(run_stack_task, config, spec, self.threads, (snapshots or {}).get(spec.key()),
                                      key=f"{spec.key()}-{study}"): spec
                   for spec in specs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def gpu_free_bytes(device: str) -> tuple[str, int]:
    """On a worker: which GPU ``device`` is there (its UUID, the same whatever CUDA_VISIBLE_DEVICES numbers it)
    and the bytes free on it."""
    import torch

    return str(torch.cuda.get_device_properties(torch.device(device)).uuid), torch.cuda.mem_get_info(device)[0]


def per_worker_gpu_bytes(reports) -> int | None:
    """The least GPU memory a worker can count on, from each worker's (GPU UUID, free bytes): the free memory of
    each GPU divided among the workers that share it."""
    sharing: dict[str, list[int]] = {}
    for gpu, free in reports:
        sharing.setdefault(gpu, []).append(free)
    return min(min(free) // len(free) for free in sharing.values()) if sharing else None


def worker_gpus(device: str, workers: int) -> list[str] | None:
    """The GPU each local worker process of a study on ``device`` sees alone (its CUDA_VISIBLE_DEVICES), round
    robin over the GPUs this process sees, as dask-cuda pins its workers: for ``cuda``, worker i gets the i-th
    GPU (an entry of this process's own CUDA_VISIBLE_DEVICES where that is set), so that N workers on a node of
    N GPUs use all of them rather than queueing on the first. None (nothing pinned) for the CPU, for a named
    ``cuda:N`` (every worker on that GPU, as asked) and where torch sees no GPU."""
    if device != "cuda":
        return None
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = [entry.strip() for entry in listed.split(",")][:count] if listed is not None else \
        [str(index) for index in range(count)]
    return [gpus[worker % len(gpus)] for worker in range(workers)] if gpus else None


def _one_gpu_nanny():
    """A dask Nanny whose worker process sees one GPU: the entry of ``gpus`` at the worker's name (0, 1, ...:
    LocalCluster's names), round robin."""
    from distributed import Nanny

    class OneGPUNanny(Nanny):
        def __init__(self, *args, name, gpus: list[str], env: dict | None = None, **kwargs):
            super().__init__(*args, name=name, env={**(env or {}), "CUDA_VISIBLE_DEVICES": gpus[name % len(gpus)]},
                             **kwargs)

    return OneGPUNanny


@contextmanager
def local_cluster(workers: int, threads: int | None = None, gpus: list[str] | None = None):
    """A dask.distributed cluster of ``workers`` processes on this machine, and a client to it; given ``gpus``
    (:func:`worker_gpus`), worker i sees only GPU ``gpus[i]``."""
    import logging

    from distributed import Client, LocalCluster

    pinning = dict(worker_class=_one_gpu_nanny(), gpus=gpus) if gpus else {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR, **pinning) as cluster, Client(cluster) as client:
        yield Dask(client, threads, gpus)


@contextmanager
def remote_cluster(address: str, threads: int | None = None):
    """A client to an existing dask.distributed scheduler (e.g. tcp://host:8786); ValueError if unreachable
    within dask's connect timeout (``distributed.comm.timeouts.connect``, 30 s unless configured)."""
    from distributed import Client

    try:
        client = Client(address)
    except (OSError, TimeoutError, ValueError) as err:
        raise ValueError(f"--scheduler {address!r} could not be reached: {err}") from None
    with client:
        yield Dask(client, threads)
