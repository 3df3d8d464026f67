"""What every workload provides, and the registry that finds workloads by name.

A task is a :class:`Task` subclass registered with :func:`register_task`; it declares its
default sequence length, its options (each becomes a flag, e.g. PTB's ``--level``), its
presets (dataset sizes and the study settings they imply) and, once built, its metric
and trivial baseline.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterator

import torch

from ..registry import Option, Registry, parse_options
from ..seeding import generator_for

TASKS: Registry[type["Task"]] = Registry("task")


@dataclass(frozen=True)
class Preset:
    """A named size of a task.

    ``sizes``: (train, test) sequences, None for all the data holds. ``settings``: study and
    training fields (``steps``, ``lr``, ``hidden``, ...) the preset sets where the user gives no
    value. ``sources``: field -> where its value comes from (the paper, or marked unconfirmed).
    """

    sizes: tuple[int | None, int | None] = (None, None)
    settings: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    description: str = ""


#: The training budget of the paper presets whose learning rate and length the paper's text here did not
#: give (PTB, speech): this toolkit's choice, with the sources that say so.
TOOLKIT_BUDGET = {"lr": 0.01, "steps": 100_000}
TOOLKIT_BUDGET_SOURCES = {"lr": "0.01, not from the paper (it grid-searched the learning rate per model)",
                          "steps": "100,000 updates, not from the paper"}


def register_task(name: str) -> Callable[[type["Task"]], type["Task"]]:
    """Class decorator registering a :class:`Task` subclass under ``name``."""

    def decorate(cls: type[Task]) -> type[Task]:
        cls.name = name
        return TASKS.add(name, cls)

    return decorate


def list_tasks() -> list[str]:
    """Names of every registered task, sorted."""
    return TASKS.names()


def get_task(name: str) -> type["Task"]:
    """The task class registered as ``name``; an error listing the valid names otherwise."""
    return TASKS.get(name)


def make_task(name: str, **options) -> "Task":
    """Build the named task: seq_len, seed, batch_size, preset, data_dir, train_size, test_size, its options."""
    return get_task(name).build(**options)


#: Upper bound on elements of one layer's drive tensor during test evaluation.
_TEST_CHUNK_ELEMENTS = 20_000_000


class Task(ABC):
    """A supervised sequence workload with fixed-seed train and test sets.

    Inputs are time-major: (T, B, input_size) values, or (T, B) token indices when
    ``tokens`` is set (then input_size is the vocabulary size). ``readout`` says whether the
    model is read at the last step (``last``) or at every step (``all``). Losses are per cell
    and per sample, (M, B), so that the cells of a stack stay independent.
    """

    name: ClassVar[str] = ""
    default_seq_len: ClassVar[int | None]
    options: ClassVar[dict[str, Option]] = {}
    presets: ClassVar[dict[str, Preset]] = {}
    #: Whether training carries the state from one segment to the next (language modelling).
    stateful: ClassVar[bool] = False
    tokens: ClassVar[bool] = False

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

    @classmethod
    def build(cls, *, seq_len: int | None = None, seed: int = 0, batch_size: int = 16, preset: str = "default",
              data_dir=None, train_size: int | None = None, test_size: int | None = None, **options) -> "Task":
        """The task at ``preset``'s sizes (``train_size`` / ``test_size`` override them), with its options."""
        if preset not in cls.presets:
            raise ValueError(f"unknown preset {preset!r} for task {cls.name!r}; valid presets: "
                             f"{', '.join(cls.presets)}")
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        parsed = parse_options(f"task {cls.name!r}", cls.options, options)
        default_train, default_test = cls.presets[preset].sizes
        sizes = (train_size or default_train, test_size or default_test)
        for label, value in zip(("train size", "test size"), sizes):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be positive, got {value}")
        return cls(seq_len=seq_len or cls.default_length(data_dir, **parsed), seed=seed, batch_size=batch_size,
                   sizes=sizes, data_dir=data_dir, **parsed)

    @classmethod
    def default_length(cls, data_dir=None, **options) -> int:
        """The sequence length a study takes where it is given none: ``default_seq_len``, or for a task whose
        data fixes it (its ``default_seq_len`` None), the data's."""
        return cls.default_seq_len

    def __init__(self, train_x, train_y, test_x, test_y, seed: int, batch_size: int):
        self.train_x, self.train_y, self.test_x, self.test_y = train_x, train_y, test_x, test_y
        self.seed, self.batch_size = seed, batch_size

    @property
    def train_size(self) -> int:
        return self.train_x.shape[1]

    def attrs(self) -> dict:
        """Task-specific dataset attrs (a permutation, a vocabulary size, ...)."""
        return {}

    # ------------------------------------------------------------ data

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

    def starts_stream(self, step: int) -> bool:
        """For a stateful task: whether ``step``'s segment starts the streams again (the state resets)."""
        return True

    def test_batches(self, batch_size: int = 500,
                     limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set (its first ``limit`` sequences if given) in order, in chunks of ``batch_size``."""
        n = self.test_x.shape[1] if limit is None else min(limit, self.test_x.shape[1])
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield self.test_x[:, start:stop], self.test_y[..., start:stop]

    def probe_sequences(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequences the Jacobian, gradient and state probes use: the first ``count`` test sequences."""
        return self.test_x[:, :count], self.test_y[..., :count]

    def to(self, dtype: torch.dtype) -> "Task":
        """The input values in ``dtype`` (tokens and labels stay as they are)."""
        if self.train_x.is_floating_point():
            self.train_x, self.test_x = self.train_x.to(dtype), self.test_x.to(dtype)
        return self

    # ------------------------------------------------------------ scores

    @abstractmethod
    def per_sample_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss of each cell on each sample: (M, B)."""

    @abstractmethod
    def per_sample_metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The reported test metric of each cell on each sample: (M, B); averaged over the test set."""

    @abstractmethod
    def baseline_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the trivial predictor outputs for inputs ``x``, shaped like one cell's outputs
        (1, B, O) or (T, 1, B, O): the baseline a network must beat, scored like any cell."""

    def sample_weights(self, targets: torch.Tensor) -> torch.Tensor | None:
        """How much each sample of a batch counts in a mean over samples, (B,); None: all alike. A task whose
        samples score unequal numbers of steps weights each by its number, so that its means pool the steps."""
        return None

    def mean_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batch's loss per cell, (M,): the samples' losses averaged with :meth:`sample_weights`."""
        return weighted_mean(self.per_sample_loss(outputs, targets), self.sample_weights(targets))

    @torch.no_grad()
    def evaluate(self, model, sequences: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss and metric (each (M,), float64; weighted by :meth:`sample_weights`) of ``model`` over the
        first ``sequences`` test sequences (0: all), in chunks that bound the memory."""
        device = model.w_out.device
        per_chunk = max(1, _TEST_CHUNK_ELEMENTS // (self.seq_len * model.n_cells * model.hidden_size
                                                    * len(model.gates)))
        loss = torch.zeros(model.n_cells, dtype=torch.float64)
        metric = torch.zeros(model.n_cells, dtype=torch.float64)
        count = 0.0
        for x, y in self.test_batches(per_chunk, limit=sequences or None):
            out, y = model(x.to(device)), y.to(device)
            weights = self.sample_weights(y)
            weights = torch.ones(x.shape[1], dtype=torch.float64, device=device) if weights is None else \
                weights.double()
            loss += (self.per_sample_loss(out, y).double() * weights).sum(dim=1).cpu()
            metric += (self.per_sample_metric(out, y).double() * weights).sum(dim=1).cpu()
            count += weights.sum().item()
        return loss / count, metric / count

    def baseline_scores(self, sequences: int) -> tuple[float, float]:
        """Mean (loss, metric) of the trivial predictor over the first ``sequences`` test sequences (0: all),
        weighted by :meth:`sample_weights`."""
        x, y = next(self.test_batches(self.test_x.shape[1], limit=sequences or None))
        outputs, weights = self.baseline_outputs(x), self.sample_weights(y)
        return (weighted_mean(self.per_sample_loss(outputs, y).double(), weights).item(),
                weighted_mean(self.per_sample_metric(outputs, y).double(), weights).item())


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (nats) per cell and sample: logits (M, B, C) and labels (B,), or logits (T, M, B, C)
    and labels (T, B), averaged over time (over the ``steps`` that count, where given: see :func:`mean_over_steps`)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    if logits.dim() == 3:
        index = labels.long().view(1, -1, 1).expand(logits.shape[0], -1, 1)
        return -log_probs.gather(-1, index).squeeze(-1)
    index = labels.long().unsqueeze(1).unsqueeze(-1).expand(-1, logits.shape[1], -1, 1)
    return mean_over_steps(-log_probs.gather(-1, index).squeeze(-1), steps)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of per-sample ``values`` (M, B) over the samples, each counting ``weights`` (B,) times
    (None: once)."""
    if weights is None:
        return values.mean(dim=-1)
    weights = weights.to(values.dtype)
    return (values * weights).sum(dim=-1) / weights.sum()


def mean_over_steps(values: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """The mean over time of per-step ``values`` (T, M, B): over every step, or over those where ``steps``
    (T, B, bool) is set, each sample's own (padded sequences: what lies beyond a sequence's end counts for
    nothing, whatever it holds)."""
    if steps is None:
        return values.mean(dim=0)
    return torch.where(steps.unsqueeze(1), values, 0).sum(dim=0) / steps.sum(dim=0)


def prior_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Log class frequencies of ``labels`` (add-one smoothed): the trivial predictor's logits."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=classes).double() + 1.0
    return torch.log(counts / counts.sum())


LN2 = math.log(2.0)
