"""Fixed and slow points of each layer with the input held constant (zero, or the probe sequences' mean input), and
the eigenvalues of the step Jacobian there (off by default): which directions the network holds (|lambda| near 1)
and which it forgets."""

from __future__ import annotations

import torch

from ..fixed_points import held_input, stack_fixed_points, start_states
from ..records import Variable
from .base import Probe, ProbeContext, ProbeSettings, StackShape, register_probe

#: Searches per layer and cell, each from a state the probe sequences visited.
SEARCHES = 8
EIGENVALUES = "of ds_t/ds_{t-1} where the search ended, by descending modulus (S = N values, 2N for the LSTM)"


@register_probe
class FixedPoints(Probe):
    name = "fixed_points"
    default = False
    dims = {"start": (f"fixed-point search k of K = {SEARCHES}, started from the state that probe sequence k mod B "
                      "visited at time round((k + 1) T / K)", "1")}
    variables = {
        "fixed_point_speed": Variable(
            ("layer", "step", "start"), "speed q = 1/2 ||F(s) - s||^2 where the search ended", "1",
            "F is one step of the layer with the input held constant (attr input_held; layer 0: its drive that input "
            "and the bias; above: the point of the layer below); Levenberg-Marquardt in float64 from a visited state: "
            "below 1e-20 at a fixed point "
            "(a search stops at ||F(s) - s|| <= 1e-13 (1 + ||s||)), larger at a slow point (a local minimum of q) "
            "or where 100 iterations did not settle"),
        "fixed_point_iterations": Variable(
            ("layer", "step", "start"), "Levenberg-Marquardt iterations the search took", "1",
            "100 (the most) where the search did not settle; 0 where it started on a fixed point"),
        "fixed_point_norm": Variable(
            ("layer", "step", "start"), "||h|| where the search ended", "1",
            "Euclidean norm of the hidden part of the state (the c part of an LSTM state left out)"),
        "fixed_point_same_as": Variable(
            ("layer", "step", "start"), "the first search that ended on the same point", "1",
            "index of the first search (in start order) whose end state lies within 1e-6 (1 + the larger norm) of "
            "this one's, its own index where none before does: the searches whose value is their own index are the "
            "distinct points found (a continuum of fixed points, as an IRNN's at initialisation, gives many)"),
        "fixed_point_eig_real": Variable(("layer", "step", "eig", "start"),
                                         "real part of the eigenvalues of the step Jacobian at the point", "1",
                                         f"eigenvalues {EIGENVALUES}, conjugate pairs as a + ib, a - ib"),
        "fixed_point_eig_imag": Variable(("layer", "step", "eig", "start"),
                                         "imaginary part of the eigenvalues of the step Jacobian at the point", "1",
                                         f"eigenvalues {EIGENVALUES}"),
    }

    def record(self, ctx: ProbeContext):
        starts = [start_states(ctx.trace, layer, SEARCHES) for layer in range(ctx.model.num_layers)]
        found = stack_fixed_points(ctx.model, starts, held_input(ctx.settings.fixed_point_input, ctx.x.double().cpu()))

        def by_layer(read) -> torch.Tensor:  # (M, L, ...) from each layer's (M, K, ...)
            return torch.stack([read(points) for points in found], dim=1)

        eig = by_layer(lambda points: points.eigenvalues()).transpose(-1, -2)  # (M, L, S, K)
        return {"fixed_point_speed": by_layer(lambda points: points.speed),
                "fixed_point_iterations": by_layer(lambda points: points.iterations),
                "fixed_point_norm": by_layer(lambda points: points.states[..., :ctx.model.hidden_size].norm(dim=-1)),
                "fixed_point_same_as": by_layer(lambda points: points.same_as()),
                "fixed_point_eig_real": eig.real, "fixed_point_eig_imag": eig.imag}

    def attrs(self, settings: ProbeSettings) -> dict[str, dict]:
        held = "zero" if settings.fixed_point_input == "zero" else "the probe sequences' mean input"
        return {name: {"input_held": held} for name in self.variables}

    def bytes_per_probe(self, shape: StackShape) -> int:
        return 2 * 8 * shape.cells * shape.layers * SEARCHES * shape.state
