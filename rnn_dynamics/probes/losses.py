"""Training-batch loss and test loss / metric at each probe step."""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, register_probe

#: Upper bound on elements of one layer's drive tensor during test evaluation.
_TEST_CHUNK_ELEMENTS = 20_000_000


def evaluate(model, task, sequences: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and metric (each (M,), float64) of ``model`` over the first ``sequences`` test sequences (0: all)."""
    device = model.w_out.device
    per_chunk = max(1, _TEST_CHUNK_ELEMENTS // (task.seq_len * model.n_cells * model.hidden_size * len(model.gates)))
    loss = torch.zeros(model.n_cells, dtype=torch.float64)
    metric = torch.zeros(model.n_cells, dtype=torch.float64)
    count = 0
    for x, y in task.test_batches(per_chunk, limit=sequences or None):
        out, y = model(x.to(device)), y.to(device)
        loss += task.per_sample_loss(out, y).double().sum(dim=1).cpu()
        metric += task.per_sample_metric(out, y).double().sum(dim=1).cpu()
        count += x.shape[1]
    return loss / count, metric / count


@register_probe
class Losses(Probe):
    name = "losses"
    variables = {
        "loss": Variable(("step",), "training loss", "1",
                         "loss on the training batch of that step, before that step's update"),
        "test_loss": Variable(("step",), "test loss", "1",
                              "training objective averaged over the test sequences of attr evaluated_on"),
        "test_metric": Variable(("step",), "test metric", "1",
                                "the task's metric averaged over the test sequences of attr evaluated_on; "
                                "attr metric names it"),
    }

    @torch.no_grad()
    def record(self, ctx: ProbeContext):
        device = ctx.model.w_out.device
        x, y = ctx.task.train_batch(ctx.step)
        loss = ctx.task.per_sample_loss(ctx.model(x.to(device)), y.to(device)).mean(dim=1)
        test_loss, test_metric = evaluate(ctx.model, ctx.task, ctx.settings.test_size)
        return {"loss": loss, "test_loss": test_loss, "test_metric": test_metric}
