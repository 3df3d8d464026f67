import math

import numpy as np
import pytest
import torch

from conftest import make_stack
from rnn_dynamics.tasks import make_task
from rnn_dynamics.config import ConfigError, TrainConfig
from rnn_dynamics.train import train_stack


@pytest.fixture
def task():
    t = make_task("adding", seq_len=10, seed=0, batch_size=8, preset="tiny")
    t.train_x, t.test_x = t.train_x.double(), t.test_x.double()
    t.train_y, t.test_y = t.train_y.double(), t.test_y.double()
    return t


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_each_cell_trains_as_if_alone(optimizer, task):
    inits = ["identity", "orthogonal", "he"]
    config = TrainConfig(steps=15, lr=0.01, optimizer=optimizer, clip=0.5, probe_every=0)
    stack = make_stack(inits, "relu")
    result = train_stack(stack, task, config)
    for cell, init in enumerate(inits):
        alone = make_stack([init], "relu")
        alone_result = train_stack(alone, task, config)
        np.testing.assert_allclose(result.train_loss[:, cell], alone_result.train_loss[:, 0], rtol=1e-9)
        for p_stack, p_alone in zip(stack.parameters(), alone.parameters()):
            assert torch.allclose(p_stack[cell], p_alone[0], rtol=1e-8, atol=1e-12)


def test_clipping_is_per_cell(task):
    # One cell with huge gradients must not shrink the other cell's update.
    config = TrainConfig(steps=1, lr=0.1, optimizer="sgd", momentum=0.0, clip=1.0, probe_every=0)
    stack = make_stack(["identity", "random_walk:gain=3"], "relu")
    before = stack.w_hh[0].detach().clone()
    train_stack(stack, task, config)
    alone = make_stack(["identity"], "relu")
    train_stack(alone, task, config)
    assert torch.allclose(stack.w_hh[0][0], alone.w_hh[0][0], atol=1e-14)
    assert (stack.w_hh[0][1] - before[1]).norm() <= 0.1 * 1.0 + 1e-9


def test_diverged_cell_is_frozen_and_the_rest_train_on(task):
    config = TrainConfig(steps=6, lr=0.01, optimizer="adam", clip=0.0, probe_every=0)
    stack = make_stack(["identity", "gaussian:std=1e30"], "relu").float()
    task.train_x, task.train_y = task.train_x.float(), task.train_y.float()
    frozen_before = stack.w_hh[0][1].detach().clone()
    result = train_stack(stack, task, config)
    assert result.diverged_step[1] == 0 and math.isnan(result.diverged_step[0])
    assert torch.equal(stack.w_hh[0][1], frozen_before)
    alone = make_stack(["identity"], "relu").float()
    alone_result = train_stack(alone, task, config)
    np.testing.assert_allclose(result.train_loss[:, 0], alone_result.train_loss[:, 0], rtol=1e-6)


def test_probes_run_at_zero_every_k_and_the_end(task):
    seen = []
    config = TrainConfig(steps=7, lr=0.01, probe_every=3)
    train_stack(make_stack(["identity"], "relu"), task, config, probe=lambda model, step: seen.append(step) or {})
    assert seen == [0, 3, 6, 7]


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=0), "steps must be a positive integer"),
    (dict(steps=5, probe_every=6), r"probe_every must lie in 0..5"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'; valid optimizers: adam, rmsprop, sgd"),
    (dict(clip=-1), "clip must be >= 0"),
    (dict(lr=0), "lr must be positive"),
])
def test_bad_train_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs).validate()


@pytest.mark.parametrize("steps, expected", [(1, [0, 1]), (5, [0, 1, 2, 3, 4, 5]), (50, list(range(0, 51, 5))),
                                             (2000, list(range(0, 2001, 100)))])
def test_default_probe_interval_fits_the_run(steps, expected):
    config = TrainConfig(steps=steps).validate()
    assert config.probe_steps() == expected


def test_config_errors_carry_the_field():
    with pytest.raises(ConfigError) as info:
        TrainConfig(steps=-3).validate()
    assert info.value.field == "steps" and str(info.value) == "steps must be a positive integer, got -3"


HOST_READS = ("cpu", "item", "tolist", "numpy", "__bool__", "__float__", "__int__")


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_an_update_never_waits_for_the_host(cell, task, monkeypatch):
    """What keeps a GPU busy: every value read back to the host inside the loop is counted, by the line
    that reads it. The only reads are the batched loss copies (every LOSS_FLUSH_EVERY updates and at
    the end) and the divergence steps once at the end, even with a cell that diverges on the way."""
    from rnn_dynamics import train

    monkeypatch.setattr(train, "LOSS_FLUSH_EVERY", 4)
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            caller = __import__("sys")._getframe(1).f_code
            if caller.co_filename.endswith("rnn_dynamics/train.py") or "rnn_dynamics/models" in caller.co_filename:
                reads.append((_name, caller.co_name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    stack = make_stack(["identity", "orthogonal"], "relu", cell=cell)
    with torch.no_grad():
        stack.cell_parameters()[0][1].fill_(math.nan)  # the second cell diverges at update 0
    result = train_stack(stack, task, TrainConfig(steps=10, lr=0.01, optimizer="adam", clip=1.0, probe_every=0))
    monkeypatch.undo()
    copies = [("cpu", "flush"), ("numpy", "flush")]
    assert reads == copies * 3 + [("cpu", "_train"), ("numpy", "_train")], reads  # losses at 4, 8, 10; divergence
    assert np.isfinite(result.train_loss[:, 0]).all() and math.isnan(result.diverged_step[0])
    assert result.diverged_step[1] == 0
