import pytest
import torch

from rnn_dynamics.models import get_cell, list_cells
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


@pytest.mark.parametrize("targets", ["classes", "classes_per_step", "values", "values_per_step"])
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
    if targets.startswith("values"):
        readout = "last" if targets == "values" else "all"
        assert (task.readout, task.metric_name, task.output_size) == (readout, "mse", 3)
        mean = train_y.reshape(-1, 3).mean(axis=0)  # over sequences (and steps)
        expected_loss = expected_metric = ((test_y - mean) ** 2).mean()
    else:
        readout = "last" if targets == "classes" else "all"
        counts = np.bincount(train_y.ravel(), minlength=3) + 1.0  # prior_logits smooths by one
        log_prior = np.log(counts / counts.sum())
        assert (task.readout, task.output_size) == (readout, 3)
        expected_loss = -log_prior[test_y].mean()
        hits = (test_y == log_prior.argmax()).mean()
        expected_metric = hits if targets == "classes" else 1 - hits
    assert task.attrs() == {"sequences_file": str(path.resolve()), "targets": targets,
                            "lengths": "every sequence T steps"}
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


@pytest.mark.parametrize("targets", ["classes", "classes_per_step", "values", "values_per_step"])
def test_npz_lengths_make_the_trivial_scores_numpy_gives_over_each_sequences_own_steps(targets, tmp_path):
    import math

    import numpy as np

    from fixtures import make_sequences

    path = make_sequences(tmp_path / "padded.npz", targets=targets, lengths=True)
    arrays = dict(np.load(path))
    task = make_task("npz", file=str(path))
    train_y, test_y = arrays["train_y"], arrays["test_y"]
    own = np.arange(12) < arrays["test_lengths"][:, None]  # (n, T): each sequence's own steps
    if targets == "values":
        expected_loss = expected_metric = ((test_y - train_y.mean(axis=0)) ** 2).mean()
    elif targets == "values_per_step":  # over every sequence's own steps pooled
        mean = train_y[np.arange(12) < arrays["train_lengths"][:, None]].mean(axis=0)
        expected_loss = expected_metric = ((test_y[own] - mean) ** 2).mean()
    else:
        labels = train_y[np.arange(12) < arrays["train_lengths"][:, None]] if targets != "classes" else train_y
        log_prior = np.log((np.bincount(labels, minlength=3) + 1.0) / (len(labels) + 3))
        if targets == "classes":
            expected_loss, hits = -log_prior[test_y].mean(), (test_y == log_prior.argmax()).mean()
        else:  # over every sequence's own steps pooled
            expected_loss, hits = -log_prior[test_y[own]].mean(), (test_y[own] == log_prior.argmax()).mean()
        expected_metric = hits if targets == "classes" else 1 - hits
    assert task.readout == "all" and task.attrs()["lengths"].startswith("per sequence")
    loss, metric = task.baseline_scores(0)
    assert math.isclose(loss, expected_loss, rel_tol=1e-6) and math.isclose(metric, expected_metric, rel_tol=1e-6)


@pytest.mark.parametrize("cell", list_cells())
@pytest.mark.parametrize("targets", ["classes", "classes_per_step", "values", "values_per_step"])
def test_a_padded_sequence_scores_what_it_scores_cut_at_its_length(targets, cell, tmp_path):
    """Known answer: with lengths given, each sequence's loss and metric on the padded batch equal those of the
    sequence cut at its own length and run alone (read at its last step, or averaged over its steps)."""
    import numpy as np

    from fixtures import make_sequences

    path = make_sequences(tmp_path / "padded.npz", targets=targets, lengths=True)
    task = make_task("npz", file=str(path)).to(torch.float64)
    lengths = np.load(path)["test_lengths"]
    model = get_cell(cell).from_inits(["orthogonal", "he"], task.input_size, 8, task.output_size, "tanh",
                                      readout=task.readout, input_std=0.5, output_std=0.5).double()
    x, y = next(task.test_batches(10))
    with torch.no_grad():
        outputs = model(x)
        loss, metric = task.per_sample_loss(outputs, y), task.per_sample_metric(outputs, y)
        for b, length in enumerate(lengths[:10]):
            alone = model(x[:length, b:b + 1])  # (L, M, 1, O)
            if targets == "classes_per_step":
                labels = y[:length, b]
                log_probs = torch.log_softmax(alone[:, :, 0], dim=-1)  # (L, M, C)
                expected = -log_probs.gather(-1, labels.view(-1, 1, 1).expand(-1, 2, 1)).squeeze(-1).mean(dim=0)
                expected_metric = (alone[:, :, 0].argmax(dim=-1) != labels.unsqueeze(1)).double().mean(dim=0)
            elif targets == "classes":
                log_probs = torch.log_softmax(alone[-1, :, 0], dim=-1)  # (M, C)
                expected = -log_probs[:, y[0, b]]
                expected_metric = (log_probs.argmax(dim=-1) == y[0, b]).double()
            elif targets == "values_per_step":  # y is (T * K + 1, B): the T x K values, then the length
                values = y[:-1, b].reshape(12, 3)[:length]
                expected = expected_metric = ((alone[:, :, 0] - values.unsqueeze(1)) ** 2).mean(dim=(0, 2))
            else:
                expected = expected_metric = ((alone[-1, :, 0] - y[:-1, b]) ** 2).mean(dim=-1)
            torch.testing.assert_close(loss[:, b], expected, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(metric[:, b], expected_metric, rtol=1e-12, atol=1e-12)
        # the test scores: a mean over sequences, or over the steps pooled for a class per step
        x, y = next(task.test_batches(48))
        outputs = model(x)
        weights = torch.from_numpy(lengths if targets.endswith("per_step") else np.ones_like(lengths)).double()
        scores = task.evaluate(model, 0)
        for score, per_sample in zip(scores, (task.per_sample_loss(outputs, y), task.per_sample_metric(outputs, y))):
            torch.testing.assert_close(score, (per_sample * weights).sum(dim=1) / weights.sum(), rtol=1e-12, atol=0)


def test_npz_padding_is_read_as_zeros_whatever_it_holds_and_the_probes_take_the_longest_sequences(tmp_path):
    import numpy as np

    from fixtures import make_sequences

    nan_padded = make_sequences(tmp_path / "nan.npz", targets="classes_per_step", lengths=True)
    arrays = dict(np.load(nan_padded))
    for split in ("train", "test"):
        padding = np.arange(12) >= arrays[f"{split}_lengths"][:, None]
        arrays[f"{split}_x"][padding], arrays[f"{split}_y"][padding] = 0.0, 2
    np.savez(tmp_path / "zero.npz", **arrays)
    a, b = (make_task("npz", file=str(tmp_path / name)) for name in ("nan.npz", "zero.npz"))
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.prior, b.prior) and a.baseline_scores(0) == b.baseline_scores(0)
    x, y = a.probe_sequences(5)
    longest = np.argsort(-arrays["test_lengths"], kind="stable")[:5]
    assert torch.equal(x, a.test_x[:, longest])
    assert torch.equal(y[-1], torch.from_numpy(arrays["test_lengths"][longest]))


def test_a_study_reads_its_npz_file_once_and_a_changed_file_again(tmp_path, monkeypatch):
    from fixtures import make_sequences

    from rnn_dynamics import StudyConfig, TrainConfig, run_study
    from rnn_dynamics.tasks import npz

    reads = []
    monkeypatch.setattr(npz, "load_sequences", lambda path, read=npz.load_sequences: reads.append(path) or read(path))
    monkeypatch.chdir(tmp_path)
    npz._read_sequences.cache_clear()
    make_sequences(tmp_path / "mine.npz")
    config = StudyConfig(task="npz", task_options={"file": "mine.npz"}, inits=["orthogonal", "he"], seeds=[0, 1],
                         nonlinearities=["relu", "tanh"], hidden=4, train=TrainConfig(steps=2, probe_every=2))
    run_study(config, progress=False)  # 4 stacks: the task is built for each, its checks and its attrs
    assert reads == [tmp_path / "mine.npz"]
    make_sequences(tmp_path / "mine.npz", test=40)
    assert make_task("npz", file="mine.npz").test_x.shape[1] == 40 and len(reads) == 2


@pytest.mark.parametrize("targets", ["classes", "values_per_step"])
def test_a_study_of_padded_sequences_learns_each_ones_own_targets(targets, tmp_path):
    """Which of three channels sums highest over a sequence's own 3..12 steps, or the channels one step late
    at each of its steps: learnt well beyond the trivial predictor, the padding (NaN in the file) never read."""
    from fixtures import make_sequences

    from rnn_dynamics import StudyConfig, TrainConfig, run_study

    path = make_sequences(tmp_path / "padded.npz", train=1000, test=300, targets=targets, lengths=True)
    config = StudyConfig(task="npz", task_options={"file": str(path)}, inits=["orthogonal"], nonlinearities=["tanh"],
                         hidden=16, probe_batch=2, train=TrainConfig(steps=300, probe_every=300, lr=0.01))
    ds = run_study(config, progress=False)
    score, baseline = ds["test_metric"].isel(step=-1).item(), ds["test_metric_baseline"].item()
    assert ds.attrs["lengths"].startswith("per sequence") and bool(ds["jacobian_log_norm"].notnull().all())
    assert ds.attrs["targets"] == targets and bool(ds["grad_log_norm"].notnull().any())
    assert score > baseline + 0.3 if targets == "classes" else score < baseline / 20, (score, baseline)


@pytest.mark.parametrize("change, message", [
    ("no file", "task 'npz': no file at"),
    ("not npz", "is not an .npz file numpy can read (neither a zip archive of .npy arrays nor an .npy file; "
                "numpy.savez writes one)"),
    ("truncated", "is not an .npz file numpy can read (not a whole zip archive: a truncated copy?; "
                  "numpy.savez writes one)"),
    ("a damaged array", "is damaged: an array could not be read (Bad CRC-32 for file 'train_x.npy')"),
    ("one .npy array", "holds one array, not the train_x, train_y, test_x, test_y of an .npz file"),
    ("no test_y", "lacks test_y; it needs train_x, train_y, test_x, test_y"),
    ("integer channels", "train_x must be float (n, T, D), float (n, T) or integer tokens (n, T), with n, T, D >= 1, "
                         "got int64 (96, 12, 3)"),
    ("other T", "test_x (float32 (48, 11, 3)) and train_x (float32 (96, 12, 3)) must be alike but for "
                "the number of sequences n: the same T, D and kind of dtype"),
    ("negative token", "test_x holds negative tokens"),
    ("labels per other length", "targets of dtype int64 and shape (96, 5) are none of the valid layouts"),
    ("values per other length", "targets of dtype float64 and shape (96, 5, 2) are none of the valid layouts: "
                                "integer (n,) classes, integer (n, T = 12) classes per step, float (n,) or (n, K) "
                                "values, float (n, T = 12, K) values per step"),
    ("negative label", "class labels must be 0 or more"),
    ("NaN input", "train_x holds NaN or infinite values"),
    ("one label short", "train_y must have one target per sequence of train_x (96), got shape (95,)"),
    ("other seq_len", "the sequences of"),
    ("lengths of one split", "holds train_lengths but not test_lengths; give both lengths or neither"),
    ("float lengths", "test_lengths must be integers (n,), one length per sequence (48), got float64 (48,)"),
    ("a length 0", "train_lengths must lie in 1..T = 12, got 0..12"),
    ("a length past T", "test_lengths must lie in 1..T = 12, got 1..13"),
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
    elif change in ("truncated", "a damaged array"):
        data = bytearray(path.read_bytes())
        if change == "truncated":
            del data[len(data) // 2:]
        else:  # one byte of train_x's values flipped: the zip's checksum of it fails
            data[data.index(b"NUMPY") + 200] ^= 0xFF
        path.write_bytes(bytes(data))
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
                "values per other length": lambda: arrays.update(train_y=np.zeros((96, 5, 2)),
                                                                 test_y=np.zeros((48, 5, 2))),
                "negative label": lambda: arrays["test_y"].__setitem__(0, -1),
                "NaN input": lambda: arrays["train_x"].__setitem__((0, 0, 0), np.nan),
                "one label short": lambda: arrays.update(train_y=arrays["train_y"][:95]),
                "lengths of one split": lambda: arrays.update(train_lengths=np.full(96, 12)),
                "float lengths": lambda: arrays.update(train_lengths=np.full(96, 12), test_lengths=np.full(48, 12.0)),
                "a length 0": lambda: arrays.update(train_lengths=np.arange(96) % 13, test_lengths=np.full(48, 12)),
                "a length past T": lambda: arrays.update(train_lengths=np.full(96, 12),
                                                         test_lengths=np.arange(48) % 13 + 1)}
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
