"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015, section 4.1).

Each sequence has two input channels: values drawn from U(0, 1) and a marker channel
with exactly two ones, one at a uniformly drawn position in the first half and one in
the second half. The target is the sum of the two marked values; the loss is MSE.
Always predicting 1 scores MSE = Var(U1 + U2) = 2/12 = 1/6 = 0.1667 (the paper prints
0.1767), the baseline a network must beat.
"""

from __future__ import annotations

import torch

from ..seeding import generator_for
from .base import Preset, Task, register_task

#: MSE of always predicting 1, the best constant guess.
BASELINE_MSE = 1.0 / 6.0


def adding_sequences(n: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` adding-problem sequences: inputs (T, n, 2) and targets (n,), float32."""
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2, got {seq_len}")
    half = seq_len // 2
    values = torch.rand(n, seq_len, generator=generator)
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, seq_len, (n,), generator=generator)
    markers = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    inputs = torch.stack([values, markers], dim=-1).transpose(0, 1).contiguous()
    return inputs, targets


@register_task("adding")
class AddingTask(Task):
    """The adding problem: the sum of the two marked values, MSE."""

    default_seq_len = 50
    presets = {
        "tiny": Preset((512, 256), description="for tests"),
        "default": Preset((10_000, 1_000), description="the default study"),
        "quick": Preset((10_000, 1_000), {"seq_len": [150], "steps": 10_000, "lr": 1e-3, "optimizer": "adam"},
                        description="CPU-sized: T = 150, 10,000 Adam updates"),
        "paper": Preset((100_000, 10_000), {"seq_len": [150, 200, 300, 400], "hidden": 100, "batch_size": 16,
                                            "optimizer": "sgd", "lr": 0.01, "clip": 1.0, "steps": 1_000_000},
                        sources={"seq_len": "Le et al. 2015, section 4.1 (confirmed: T = 150, 200, 300, 400)",
                                 "hidden": "section 4.1: 100 hidden units (unconfirmed)",
                                 "batch_size": "16 (unconfirmed)", "optimizer": "SGD (unconfirmed)",
                                 "clip": "gradient clipping, its value grid-searched in the paper (unconfirmed)",
                                 "lr": "0.01 (unconfirmed: the paper grid-searched it per model; one value for all)",
                                 "steps": "1,000,000 updates, the scale of the paper's training curves (unconfirmed)"},
                        description="100k/10k sequences and the paper's lengths, SGD at lr 0.01 for 1,000,000 "
                                    "updates (unconfirmed: the paper grid-searched the learning rate per model)"),
    }
    input_size = 2
    output_size = 1
    readout = "last"
    metric_name = "mse"
    metric_long_name = "test mean squared error"
    metric_units = "1"
    metric_higher_is_better = False
    baseline = "always predict 1 (the paper's baseline; MSE 1/6 = 0.1667 in expectation)"

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None):
        train_size, test_size = sizes
        self.seq_len = seq_len
        train = adding_sequences(train_size, seq_len, generator_for("adding", "train", seed, seq_len))
        test = adding_sequences(test_size, seq_len, generator_for("adding", "test", seed, seq_len))
        super().__init__(*train, *test, seed=seed, batch_size=batch_size)

    def per_sample_loss(self, outputs, targets):
        return (outputs[..., 0] - targets) ** 2

    per_sample_metric = per_sample_loss

    def baseline_outputs(self, x):
        return torch.ones(1, x.shape[1], 1, dtype=x.dtype)
