"""Fixed points and slow points of a recurrence with its input held constant, and its linearisation there.

Sussillo & Barak (2013, "Opening the black box") read what a trained RNN computes from the states where it stops
moving: fixed points s* = F(s*) under a constant input, and slow points, where the speed q(s) = 1/2 ||F(s) - s||^2
has a small local minimum. The eigenvalues of the step Jacobian dF/ds there say which directions the network holds
(|lambda| near 1: a line or plane of slow points, an integrator such as the IRNN's memory) and which it forgets
(|lambda| << 1).

Each search is Levenberg-Marquardt on the residual F(s) - s, every search of a batch with its own damping:
Gauss-Newton steps near a root (quadratic convergence), gradient steps on q where the damping grows, so that a
search ends on a root or on a local minimum of q. A stack's searches use its cell type's own step Jacobians
(analytic for the built-in cells, ``torch.func`` for a user's), so every registered cell type is served.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .models.base import Trace
from .spectra import eigenvalues

#: (F(s), dF/ds): a map's values (..., S) and step Jacobians (..., S, S) at states (..., S), row by row.
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: A search stops where ||F(s) - s|| <= this times (1 + ||s||): a fixed point to rounding in float64.
RESIDUAL_TOL = 1e-13
#: A search stops where a step it takes is no longer than this times (1 + ||s||): a stationary point of q that is
#: no root (a slow point), where the steps shrink but never reach the tolerance above.
STEP_TOL = 1e-12
#: A search stops where STALL_ITERATIONS iterations lowered q by less than the fraction STALL_GAIN of it: a slow
#: point that it creeps towards.
STALL_ITERATIONS, STALL_GAIN = 10, 1e-6
#: The least damping: A = dF/ds - I is singular wherever F holds a direction (the IRNN's eigenvalues 1), so
#: A^T A + mu I needs mu well above its rounding to be solved.
MIN_DAMPING = 1e-12
#: A search stops where its damping passes this: no step, however short, lowers q (the minimum of q sits on a kink
#: of a ReLU network's map, say).
MAX_DAMPING = 1e10

#: Two searches ended on the same point where their states lie within this of each other, relative to 1 + the
#: larger norm: far above where a fixed point settles (residual 1e-13, times the conditioning of I - dF/ds), far
#: below the distance between the distinct points of the tests' networks.
SAME_POINT_TOL = 1e-6


@dataclass(frozen=True)
class FixedPoints:
    """Where each search ended: states (..., S), speed q = 1/2 ||F(s) - s||^2 there (...,), the step Jacobians
    dF/ds there (..., S, S) and the iterations each search took (...,): ``max_iterations`` for a search that did not
    settle."""

    states: torch.Tensor
    speed: torch.Tensor
    jacobians: torch.Tensor
    iterations: torch.Tensor

    def eigenvalues(self) -> torch.Tensor:
        """Complex eigenvalues of the Jacobians (..., S), by descending modulus (conjugate pairs a + ib, a - ib)."""
        return eigenvalues(self.jacobians)

    def same_as(self, tolerance: float = SAME_POINT_TOL) -> torch.Tensor:
        """For searches (..., K) along the second-last dim of ``states``: the index of the first search that ended
        within ``tolerance`` (1 + the larger norm) of where each ended (its own index where none before did), so
        that the searches whose index is their own are the distinct points found. Greedy in search order."""
        distance = torch.cdist(self.states, self.states)  # (..., K, K)
        norms = self.states.norm(dim=-1)
        scale = 1 + torch.maximum(norms.unsqueeze(-1), norms.unsqueeze(-2))
        close = distance <= tolerance * scale
        count = close.shape[-1]
        first = torch.arange(count, device=close.device).expand(close.shape[:-1]).clone()
        for k in range(1, count):  # k joins the group of the first earlier search that leads its own group
            leaders = close[..., k, :k] & (first[..., :k] == torch.arange(k, device=close.device))
            found = leaders.any(-1)
            first[..., k] = torch.where(found, leaders.int().argmax(-1), first[..., k])
        return first


def find_fixed_points(evaluate: Evaluate, starts: torch.Tensor, max_iterations: int = 100,
                      damping: float = 1e-3) -> FixedPoints:
    """Levenberg-Marquardt searches for s = F(s) from each row of ``starts`` (..., S), all at once.

    ``evaluate(s)`` gives (F(s), dF/ds) row by row (:func:`stack_fixed_points` passes a stack's recurrence and its
    analytic step Jacobians), in the dtype of ``starts``. Each search takes the step
    -(A^T A + mu I)^-1 A^T r, with r = F(s) - s and A = dF/ds - I, where it lowers q (then mu / 10, down to
    :data:`MIN_DAMPING`); else it stays and multiplies mu by 10. It stops at a fixed point (:data:`RESIDUAL_TOL`),
    at a slow point (:data:`STEP_TOL`, or ten iterations that lowered q by less than :data:`STALL_GAIN` of it),
    where no step lowers q (:data:`MAX_DAMPING`), or after ``max_iterations``. The steps solve the normal
    equations, so a direction along which A's singular value lies below about 1e-8 of its largest is not resolved
    (the search ends short of the slowest point along it).
    """
    if max_iterations < 0 or damping <= 0:
        raise ValueError(f"max_iterations must be >= 0 and damping > 0, got {max_iterations} and {damping}")
    states = starts.detach().clone()
    values, jacobians = evaluate(states)
    residual = values - states
    identity = torch.eye(states.shape[-1], dtype=states.dtype, device=states.device)
    mu = torch.full(states.shape[:-1], damping, dtype=states.dtype, device=states.device)
    settled = torch.zeros_like(mu, dtype=torch.bool)
    speed = speed_before = 0.5 * residual.square().sum(-1)
    taken = torch.zeros_like(mu, dtype=torch.long)  # iterations of each search
    for iteration in range(max_iterations):
        if iteration and iteration % STALL_ITERATIONS == 0:
            settled |= speed > (1 - STALL_GAIN) * speed_before
            speed_before = speed
        scale = 1 + states.norm(dim=-1)
        searching = ~settled & (residual.norm(dim=-1) > RESIDUAL_TOL * scale) & (mu < MAX_DAMPING)
        if not searching.any():
            break
        taken += searching
        rows = searching.nonzero(as_tuple=True)
        a = jacobians[rows] - identity
        factor, failed = torch.linalg.cholesky_ex(a.mT @ a + mu[rows][..., None, None] * identity)
        solved = -torch.cholesky_solve(a.mT @ residual[rows].unsqueeze(-1), factor).squeeze(-1)
        step = torch.zeros_like(states)  # no step where rounding left A^T A + mu I short of positive definite:
        step[rows] = torch.where((failed != 0).unsqueeze(-1), 0.0, solved)  # q stays, and mu grows until it solves
        proposal = states + step
        new_values, new_jacobians = evaluate(proposal)
        new_residual = new_values - proposal
        new_speed = 0.5 * new_residual.square().sum(-1)
        better = searching & (new_speed < speed)
        settled |= better & (step.norm(dim=-1) <= STEP_TOL * scale)
        states = torch.where(better[..., None], proposal, states)
        residual = torch.where(better[..., None], new_residual, residual)
        speed = torch.where(better, new_speed, speed)
        jacobians = torch.where(better[..., None, None], new_jacobians, jacobians)
        mu = torch.where(better, (mu / 10).clamp_min(MIN_DAMPING), torch.where(searching, mu * 10, mu))
    return FixedPoints(states, speed, jacobians, taken)


def start_states(trace, layer: int, count: int) -> torch.Tensor:
    """``count`` states of ``layer`` that the traced sequences visited, (M, count, S): search j starts from sequence
    j mod B at time round((j + 1) T / count), so that the starts spread over the sequences and over time."""
    states = trace.stacked_states(layer)  # (T + 1, M, B, S)
    steps, batch = states.shape[0] - 1, states.shape[2]
    times = [max(1, round((j + 1) * steps / count)) for j in range(count)]
    sequences = [j % batch for j in range(count)]
    return states[times, :, sequences].transpose(0, 1)  # advanced indices first: (count, M, S)


#: What the input is held at during a search: zero (the network left to itself, driven by its bias alone), or the
#: mean input of the sequences it saw, over their steps and the batch.
HELD_INPUTS = ("zero", "mean")


def held_input(kind: str, sequences: torch.Tensor) -> torch.Tensor | None:
    """The constant input (I,) of :data:`HELD_INPUTS` ``kind`` for sequences (T, B, I): None for zero."""
    if kind not in HELD_INPUTS:
        raise ValueError(f"the held input {kind!r} is not one of {', '.join(HELD_INPUTS)}")
    return None if kind == "zero" else sequences.mean(dim=(0, 1))


def stack_fixed_points(model, starts: Sequence[torch.Tensor], constant_input: torch.Tensor | None = None,
                       **search) -> list[FixedPoints]:
    """The fixed points of every layer of a recurrent stack with its input held constant, in float64.

    ``starts[l]`` (M, K, S) are the starts of layer l. Layer 0 is driven by ``constant_input`` (I,) at every step
    (zero where None: the network left to itself, its drive the bias); layer l above by the hidden part of layer
    l - 1's point of the same search, so that search k follows one fixed point of the whole stack. ``search``
    goes to :func:`find_fixed_points`.
    """
    if len(starts) != model.num_layers:
        raise ValueError(f"starts must give one (M, K, S) tensor per layer ({model.num_layers}), got {len(starts)}")
    count = starts[0].shape[1] if starts[0].dim() == 3 else "K"
    expected = (model.n_cells, count, model.state_size(model.hidden_size))
    for layer, layer_starts in enumerate(starts):
        if tuple(layer_starts.shape) != expected:
            raise ValueError(f"starts[{layer}] has shape {tuple(layer_starts.shape)}; every layer's must be (M, K, S) "
                             f"= ({', '.join(map(str, expected))}), the same K in every layer")
    input_size = model.w_ih[0].shape[-1]
    if constant_input is not None and tuple(constant_input.shape) != (input_size,):
        raise ValueError(f"constant_input has shape {tuple(constant_input.shape)}; it must be ({input_size},), one "
                         "value per input (a one-hot vector for a token)")
    model = copy.deepcopy(model).double().requires_grad_(False)
    inputs = model.w_ih[0].new_zeros(1, count, input_size)
    if constant_input is not None:
        inputs += constant_input.to(inputs)
    found = []
    for layer, layer_starts in enumerate(starts):
        drive = model.layer_drive(layer, inputs)[0]  # (M, K, G * N)
        found.append(find_fixed_points(_layer_map(model, layer, drive), layer_starts.to(drive), **search))
        inputs = found[-1].states[..., :model.hidden_size].unsqueeze(0)  # (1, M, K, N): the next layer's input
    return found


def _layer_map(model, layer: int, drive: torch.Tensor) -> Evaluate:
    """(F(s), dF/ds) of ``layer`` of a stack under a constant ``drive`` (M, K, G * N): one step of its recurrence,
    and the cell type's own step Jacobian of that step (analytic for the built-in cells) from a one-step trace."""
    recurrence = model.recurrence(layer)

    def evaluate(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new, preact = recurrence(states, drive)
        earlier = [[] for _ in range(layer)]  # step_jacobians reads the traced layer only
        trace = Trace(earlier + [[states, new]], earlier + [[preact]], [None] * layer + [drive.unsqueeze(0)],
                      None, model.hidden_size)
        return new, model.step_jacobians(trace, layer).dense(0)

    return evaluate
