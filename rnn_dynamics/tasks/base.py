"""What every workload provides, and the registry that finds workloads by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterator

import torch

from ..registry import Registry
from ..seeding import generator_for

TASKS: Registry[Callable[..., "Task"]] = Registry("task")


def register_task(name: str) -> Callable:
    """Decorator registering a task factory under ``name``."""
    return TASKS.register(name)


def list_tasks() -> list[str]:
    """Names of every registered task, sorted."""
    return TASKS.names()


def get_task_factory(name: str) -> Callable[..., "Task"]:
    """The factory registered as ``name``; an error listing the valid names otherwise."""
    return TASKS.get(name)


def make_task(name: str, **options) -> "Task":
    """Build the named task with its options (seq_len, seed, batch_size, preset, ...)."""
    return get_task_factory(name)(**options)


class Task(ABC):
    """A supervised sequence workload with fixed-seed train and test sets.

    Inputs are time-major (T, B, input_size). ``readout`` says whether the model is
    read at the last step (``last``) or at every step (``all``). Losses are per cell
    and per sample, (M, B), so that the cells of a stack stay independent.
    """

    name: str
    input_size: int
    output_size: int
    readout: str
    seq_len: int
    metric_name: str
    metric_long_name: str
    metric_units: str
    #: Whether a larger metric is better (accuracy) or worse (error, MSE).
    metric_higher_is_better: bool
    #: What the trivial predictor of :meth:`baseline_outputs` does, for the dataset's attrs.
    baseline: str

    def __init__(self, train_x, train_y, test_x, test_y, seed: int, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.train_x, self.train_y, self.test_x, self.test_y = train_x, train_y, test_x, test_y
        self.seed, self.batch_size = seed, batch_size

    @property
    def train_size(self) -> int:
        return self.train_x.shape[1]

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatch of training ``step``: a pure function of (seed, step).

        Each epoch visits the training set in a permutation seeded by (seed, epoch),
        so every stack with the same seed sees the same batches in the same order.
        """
        per_epoch = max(self.train_size // self.batch_size, 1)
        epoch, offset = divmod(step, per_epoch)
        perm = torch.randperm(self.train_size, generator=generator_for("batches", self.name, self.seed, epoch))
        idx = perm[offset * self.batch_size:(offset + 1) * self.batch_size]
        return self.train_x[:, idx], self.train_y[..., idx]

    def test_batches(self, batch_size: int = 500,
                     limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set (its first ``limit`` sequences if given) in order, in chunks of ``batch_size``."""
        n = self.test_x.shape[1] if limit is None else min(limit, self.test_x.shape[1])
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield self.test_x[:, start:stop], self.test_y[..., start:stop]

    @abstractmethod
    def per_sample_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss of each cell on each sample: (M, B)."""

    @abstractmethod
    def per_sample_metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The reported test metric of each cell on each sample: (M, B); averaged over the test set."""

    @abstractmethod
    def baseline_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the trivial predictor outputs for inputs ``x`` (T, B, I), shaped like one cell's outputs
        (1, B, O) or (T, 1, B, O): the baseline a network must beat, scored like any cell."""

    def baseline_scores(self, sequences: int) -> tuple[float, float]:
        """Mean (loss, metric) of the trivial predictor over the first ``sequences`` test sequences (0: all)."""
        x, y = next(self.test_batches(self.test_x.shape[1], limit=sequences or None))
        outputs = self.baseline_outputs(x)
        return (self.per_sample_loss(outputs, y).double().mean().item(),
                self.per_sample_metric(outputs, y).double().mean().item())
