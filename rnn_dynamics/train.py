"""The training loop for a stack of cells: optimiser, per-cell clipping, divergence.

Every cell of a stack sees the same batches; its loss, gradients, clipping and
optimiser state are its own (the optimisers here are elementwise, and the summed loss
has each cell's loss as an independent term). A cell whose loss, gradient or weights
become NaN/Inf is frozen at its last finite weights and marked diverged at that step;
the rest of the stack trains on.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .config import TrainConfig
from .optimizers import make_optimizer
from .tasks.base import Task


@dataclass
class TrainResult:
    """Per-cell outcome: loss of every update (steps, M), divergence step (NaN if none), probe records."""

    train_loss: np.ndarray
    diverged_step: np.ndarray
    probe_steps: list[int] = field(default_factory=list)
    probes: list = field(default_factory=list)


@dataclass
class TrainState:
    """What the loop carries into update ``step``: the tensors (``model.*`` the stack's state dict, ``optimizer.I.*``
    the optimiser's state of parameter I, ``alive`` and ``diverged_at`` the divergence marks, ``stream`` the state
    a stateful task carries), other values (JSON), the losses of updates 0..step-1 and the probe records so far.
    A :class:`~rnn_dynamics.snapshots.StackSnapshot` saves and loads it."""

    step: int
    tensors: dict
    values: dict
    train_loss: np.ndarray
    probe_steps: list[int]
    probes: list


def per_cell_grad_norms(params: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of each cell's whole gradient (every parameter has the cell dim first): (M,)."""
    squares = [p.grad.reshape(p.shape[0], -1).pow(2).sum(dim=1) for p in params]
    return torch.stack(squares).sum(dim=0).sqrt()


def _cell_view(mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (p.dim() - 1)))


def _all_finite_per_cell(params: list[torch.Tensor]) -> torch.Tensor:
    checks = [torch.isfinite(p.detach().reshape(p.shape[0], -1)).all(dim=1) for p in params]
    return torch.stack(checks).all(dim=0)


@contextmanager
def flushed_denormals():
    """Flush float32 denormals to zero while training.

    Gradients that vanish over hundreds of steps pass through the denormal range,
    where CPU arithmetic is many times slower (measured: the backward pass of a
    784-step stack took 2.5x longer). Values below 1.2e-38 become 0; torch has no
    getter for the flag, so it is switched back off afterwards.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_stack(
    model,
    task: Task,
    config: TrainConfig,
    probe: Callable[[object, int], object] | None = None,
    on_step: Callable[..., None] | None = None,
    snapshot=None,
) -> TrainResult:
    """Train every cell of the stack ``model`` on ``task``; call ``probe(model, step)`` at the
    config's probe steps (0, K, 2K, ... and the end) and keep what it returns; ``on_step()`` after each update
    (``on_step(n)`` once for the n updates a resumed stack had done). With ``snapshot`` (a
    :class:`~rnn_dynamics.snapshots.StackSnapshot`), resume from the state it holds, and hand it the state every
    ``snapshot.every`` seconds."""
    with flushed_denormals():
        return _train(model, task, config, probe, on_step, snapshot)


#: Updates whose losses wait on the device before one copy to the host (a copy is a host sync).
LOSS_FLUSH_EVERY = 256


def _train(model, task, config, probe, on_step, snapshot=None) -> TrainResult:
    """The loop keeps losses, divergence and clipping on the device: nothing in an update waits for the
    host (no ``.item()``, no branch on a device value), so a GPU never idles between updates. Losses are
    copied to the host every :data:`LOSS_FLUSH_EVERY` updates and at each probe."""
    config.validate()
    params = model.cell_parameters()
    optimizer = make_optimizer(config.optimizer, params, lr=config.lr, momentum=config.momentum)
    n_cells = model.n_cells
    device = params[0].device
    alive = torch.ones(n_cells, dtype=torch.bool, device=device)
    diverged_at = torch.full((n_cells,), math.nan, dtype=torch.float64, device=device)
    train_loss = np.full((config.steps, n_cells), math.nan)
    result = TrainResult(train_loss, np.full(n_cells, math.nan))
    probe_steps = set(config.probe_steps()) if probe is not None else set()
    pending: list[torch.Tensor] = []  # losses of the updates since the last copy to the host

    def flush(step: int) -> None:
        if pending:
            train_loss[step - len(pending):step] = torch.stack(pending).cpu().numpy()
            pending.clear()

    def record(step: int) -> None:
        flush(step)
        result.probe_steps.append(step)
        result.probes.append(probe(model, step))

    def kill(newly: torch.Tensor, step: int) -> None:
        newly = newly & alive
        diverged_at.masked_fill_(newly, step)
        alive.logical_and_(~newly)

    state = None  # carried from segment to segment by a stateful task (truncated BPTT)
    start = 0
    resumed = snapshot.load() if snapshot is not None else None
    if resumed is not None:
        start, state = _restore(resumed, model, optimizer, alive, diverged_at, result)
        if on_step is not None and start:
            on_step(start)
    saved_at = time.monotonic()
    for step in range(start, config.steps):
        if step in probe_steps and not (resumed is not None and step == start):  # a snapshot's record is kept
            record(step)
        elif len(pending) >= LOSS_FLUSH_EVERY:
            flush(step)
        if snapshot is not None and step > start and time.monotonic() - saved_at >= snapshot.every:
            flush(step)
            if not snapshot.save(_state_of(step, model, optimizer, alive, diverged_at, state, result)):
                snapshot = None
            saved_at = time.monotonic()
        x, y = task.train_batch(step)
        x, y = x.to(device), y.to(device)
        if task.stateful and task.starts_stream(step):
            state = None
        outputs, state = model.forward_with_state(x, state if task.stateful else None)
        losses = task.mean_loss(outputs, y)
        pending.append(losses.detach())
        kill(~torch.isfinite(losses.detach()), step)
        optimizer.zero_grad(set_to_none=False)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        norms = per_cell_grad_norms(params)
        kill(~torch.isfinite(norms), step)
        scale = torch.where(alive, torch.ones_like(norms), torch.zeros_like(norms))
        if config.clip > 0:
            clip_factor = (config.clip / (norms + 1e-6)).clamp(max=1.0)
            scale = scale * torch.where(torch.isfinite(clip_factor), clip_factor, torch.zeros_like(clip_factor))
        before = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.grad.mul_(_cell_view(scale, p))
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
            optimizer.step()
            kill(~_all_finite_per_cell(params), step)
            frozen = ~alive  # diverged cells keep their last finite weights
            for p, old in zip(params, before):
                p.copy_(torch.where(_cell_view(frozen, p), old, p))
        if on_step is not None:
            on_step()
    flush(config.steps)
    if config.steps in probe_steps:
        record(config.steps)
    result.diverged_step[:] = diverged_at.cpu().numpy()
    return result


def _state_of(step, model, optimizer, alive, diverged_at, stream, result) -> TrainState:
    """The loop's state at the start of update ``step`` (its losses flushed to ``result``)."""
    tensors = {f"model.{name}": value for name, value in model.state_dict().items()}
    others = {}
    for index, entries in optimizer.state_dict()["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                others[f"{index}.{name}"] = value
    tensors.update(alive=alive, diverged_at=diverged_at)
    if stream is not None:
        tensors["stream"] = stream
    return TrainState(step, tensors, {"optimizer": others, "torch_threads": torch.get_num_threads()},
                      result.train_loss[:step], list(result.probe_steps), list(result.probes))


def _restore(saved: TrainState, model, optimizer, alive, diverged_at, result):
    """Put ``saved`` into the loop's objects; (the update to start at, the carried stream state)."""
    tensors = saved.tensors
    device = alive.device
    model.load_state_dict({name[len("model."):]: value for name, value in tensors.items() if name.startswith("model.")})
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in saved.values["optimizer"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    alive.copy_(tensors["alive"].to(device))
    diverged_at.copy_(tensors["diverged_at"].to(device))
    result.train_loss[:saved.step] = saved.train_loss
    result.probe_steps[:], result.probes[:] = saved.probe_steps, saved.probes
    if saved.values["torch_threads"] != torch.get_num_threads():
        warnings.warn(f"resuming a stack at update {saved.step} with {torch.get_num_threads()} torch threads where "
                      f"{saved.values['torch_threads']} trained it: its last bits may differ from an uninterrupted "
                      "run's", stacklevel=3)
    stream = tensors.get("stream")
    return saved.step, None if stream is None else stream.to(device)
