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


# ---------------------------------------------------------------- your own sequences (.npz)


@pytest.mark.parametrize("targets", ["classes", "classes_per_step", "values"])
def test_an_npz_file_makes_the_task_its_targets_say_with_the_trivial_scores_as_numpy_gives_them(targets, tmp_path):
    import math

    import numpy as np

    from fixtures import make_sequences

    path = make_sequences(tmp_path / "mine.npz", targets=targets)
    arrays = dict(np.load(path))
    task = make_task("npz", file=str(path), batch_size=8)
    train_y, test_y = arrays["train_y"], arrays["test_y"]
    assert task.seq_len == 12 and task.input_size == 3 and task.train_x.shape == (12, 96, 3)
    assert torch.equal(task.test_x, torch.from_numpy(arrays["test_x"]).transpose(0, 1))
    if targets == "values":
        assert (task.readout, task.metric_name, task.output_size) == ("last", "mse", 3)
        expected_loss = expected_metric = ((test_y - train_y.mean(axis=0)) ** 2).mean()
    else:
        readout = "last" if targets == "classes" else "all"
        counts = np.bincount(train_y.ravel(), minlength=3) + 1.0  # prior_logits smooths by one
        log_prior = np.log(counts / counts.sum())
        assert (task.readout, task.output_size) == (readout, 3)
        expected_loss = -log_prior[test_y].mean()
        hits = (test_y == log_prior.argmax()).mean()
        expected_metric = hits if targets == "classes" else 1 - hits
    assert task.attrs() == {"sequences_file": str(path.resolve()), "targets": targets}
    x, y = task.train_batch(1)  # a training batch scores one loss per sequence
    assert x.shape == (12, 8, 3) and task.per_sample_loss(task.baseline_outputs(x), y).shape == (1, 8)
    loss, metric = task.baseline_scores(0)
    assert math.isclose(loss, expected_loss, rel_tol=1e-6) and math.isclose(metric, expected_metric, rel_tol=1e-6)


def test_a_study_of_an_npz_file_learns_it_and_takes_its_length(tmp_path):
    """Which of three channels sums highest over 12 steps: an RNN learns it well above the class prior."""
    from fixtures import make_sequences

    from rnn_dynamics import StudyConfig, TrainConfig, run_study

    path = make_sequences(tmp_path / "mine.npz", train=1000, test=300)
    config = StudyConfig(task="npz", task_options={"file": str(path)}, inits=["orthogonal"], nonlinearities=["tanh"],
                         hidden=16, probe_batch=2, train=TrainConfig(steps=300, probe_every=300, lr=0.01))
    assert config.seq_len == [12]
    ds = run_study(config, progress=False)
    accuracy = ds["test_metric"].isel(step=-1).item()
    assert ds.attrs["targets"] == "classes" and ds.attrs["sequences_file"] == str(path.resolve())
    assert accuracy > ds["test_metric_baseline"].item() + 0.3, accuracy


def test_npz_integer_inputs_are_tokens_and_a_study_remembers_the_first_of_twelve(tmp_path):
    """Tokens 0..2 go in as a column lookup of W_ih (input size: the vocabulary); the class is the first token,
    which an orthogonal tanh network holds over 12 steps within 300 updates."""
    from fixtures import make_sequences

    from rnn_dynamics import StudyConfig, TrainConfig, run_study

    path = make_sequences(tmp_path / "tokens.npz", train=1000, test=300, targets="tokens")
    task = make_task("npz", file=str(path))
    assert task.input_size == 3 and task.train_x.dtype == torch.int64 and task.train_x.shape == (12, 1000)
    config = StudyConfig(task="npz", task_options={"file": str(path)}, inits=["orthogonal"], nonlinearities=["tanh"],
                         hidden=16, probe_batch=2, train=TrainConfig(steps=300, probe_every=300, lr=0.01))
    ds = run_study(config, progress=False)
    assert ds["test_metric"].isel(step=-1).item() > 0.9 > 0.4 > ds["test_metric_baseline"].item()


@pytest.mark.parametrize("change, message", [
    ("no file", "task 'npz': no file at"),
    ("not npz", "is not an .npz file numpy can read"),
    ("one .npy array", "holds one array, not the train_x, train_y, test_x, test_y of an .npz file"),
    ("no test_y", "lacks test_y; it needs train_x, train_y, test_x, test_y"),
    ("integer channels", "train_x must be float (n, T, D), float (n, T) or integer tokens (n, T), with n, T, D >= 1, "
                         "got int64 (96, 12, 3)"),
    ("other T", "test_x (float32 (48, 11, 3)) and train_x (float32 (96, 12, 3)) must be alike but for n"),
    ("negative token", "test_x holds negative tokens"),
    ("labels per other length", "targets of dtype int64 and shape (96, 5) are none of the valid layouts"),
    ("negative label", "class labels must be 0 or more"),
    ("NaN input", "train_x holds NaN or infinite values"),
    ("one label short", "train_y must have one target per sequence of train_x (96), got shape (95,)"),
    ("other seq_len", "the sequences of"),
])
def test_a_bad_npz_file_stops_the_study_in_one_line(change, message, tmp_path, monkeypatch, capsys):
    import numpy as np

    from analyses import spectra
    from fixtures import make_sequences

    path = make_sequences(tmp_path / "mine.npz")
    arrays = dict(np.load(path))
    if change == "no file":
        path.unlink()
    elif change == "not npz":
        path.write_text("train_x,train_y\n")
    elif change == "one .npy array":
        with path.open("wb") as handle:
            np.save(handle, arrays["train_x"])
    elif change != "other seq_len":
        edit = {"no test_y": lambda: arrays.pop("test_y"),
                "integer channels": lambda: arrays.update(train_x=arrays["train_x"].astype(np.int64)),
                "negative token": lambda: arrays.update(train_x=np.ones((96, 12), np.int64),
                                                        test_x=-np.ones((48, 12), np.int64)),
                "other T": lambda: arrays.update(test_x=arrays["test_x"][:, :11]),
                "labels per other length": lambda: arrays.update(train_y=np.zeros((96, 5), np.int64),
                                                                 test_y=np.zeros((48, 5), np.int64)),
                "negative label": lambda: arrays["test_y"].__setitem__(0, -1),
                "NaN input": lambda: arrays["train_x"].__setitem__((0, 0, 0), np.nan),
                "one label short": lambda: arrays.update(train_y=arrays["train_y"][:95])}
        edit[change]()
        np.savez(path, **arrays)
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    extra = ["--seq-len", "13"] if change == "other seq_len" else []
    with pytest.raises(SystemExit) as exit_info:
        spectra.main(["--task", "npz", "--file", str(path), *extra, "--quiet", "--out", str(tmp_path / "s.nc")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert set(tmp_path.rglob("*")) == before
