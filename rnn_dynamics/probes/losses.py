"""Training-batch loss and test loss / metric at each probe step."""

from __future__ import annotations

import torch

from ..records import Variable
from .base import Probe, ProbeContext, register_probe


@register_probe
class Losses(Probe):
    name = "losses"
    runs_on_cpu = False  # batched forward passes over the test set: where the GPU is fast
    reads_output = True
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
        loss = ctx.task.mean_loss(ctx.model(x.to(device)), y.to(device))
        test_loss, test_metric = ctx.task.evaluate(ctx.model, ctx.settings.test_size)
        return {"loss": loss, "test_loss": test_loss, "test_metric": test_metric}
