import pytest
import torch

from rnn_dynamics.tasks import list_tasks, make_task
from rnn_dynamics.tasks.adding import BASELINE_MSE, adding_sequences
from rnn_dynamics.seeding import generator_for


def test_registry_and_unknown_task():
    assert "adding" in list_tasks()
    with pytest.raises(ValueError, match="unknown task 'nope'; valid tasks: adding"):
        make_task("nope")


@pytest.mark.parametrize("seq_len", [2, 7, 150])
def test_adding_sequences_have_one_marker_in_each_half(seq_len):
    x, y = adding_sequences(500, seq_len, generator_for("t", seq_len))
    assert x.shape == (seq_len, 500, 2)
    markers = x[..., 1]
    assert torch.equal(markers.sum(0), torch.full((500,), 2.0))
    half = seq_len // 2
    assert torch.equal(markers[:half].sum(0), torch.ones(500))
    assert torch.allclose((x[..., 0] * markers).sum(0), y)
    assert x[..., 0].min() >= 0 and x[..., 0].max() < 1


def test_predicting_one_scores_one_sixth():
    # Var(U1 + U2) = 1/6; with 200k samples the standard error of the MSE is about 0.0004.
    _, y = adding_sequences(200_000, 4, generator_for("baseline"))
    assert ((y - 1.0) ** 2).mean().item() == pytest.approx(BASELINE_MSE, abs=0.002)


def test_fixed_seed_sets_and_batches():
    a = make_task("adding", seq_len=20, seed=3, batch_size=8, preset="tiny")
    b = make_task("adding", seq_len=20, seed=3, batch_size=8, preset="tiny")
    c = make_task("adding", seq_len=20, seed=4, batch_size=8, preset="tiny")
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert torch.equal(a.train_batch(70)[0], b.train_batch(70)[0])
    assert a.train_size == 512 and a.test_x.shape[1] == 256
    # one epoch (64 batches) visits every training sequence exactly once
    seen = torch.cat([a.train_batch(s)[1] for s in range(64)])
    assert torch.equal(seen.sort().values, a.train_y.sort().values)


def test_bad_task_options():
    with pytest.raises(ValueError, match="seq_len >= 2"):
        make_task("adding", seq_len=1)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        make_task("adding", preset="huge")
    with pytest.raises(ValueError, match="batch size must be positive"):
        make_task("adding", batch_size=0, preset="tiny")
