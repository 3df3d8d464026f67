"""Snapshots of a stack part way through its training: a stack that dies resumes from its last snapshot and
comes out with the bits of an uninterrupted run."""

import numpy as np
import pytest
import xarray as xr

from rnn_dynamics import StudyConfig, TrainConfig, run_study
from rnn_dynamics.checkpoints import StackCheckpoints
from rnn_dynamics.tasks import TASKS

#: Every 1 ns of training: a snapshot at the start of every update after the first.
EVERY_UPDATE = 1e-9


def _config(**changes):
    train = TrainConfig(steps=12, probe_every=4, **changes.pop("train", {}))
    base = dict(seq_len=[8], inits=["identity", "he"], nonlinearities=["relu"], hidden=6, preset="tiny",
                probe_batch=2, train=train)
    return StudyConfig(**{**base, **changes})


def _dies_at(monkeypatch, task: str, update: int, calls: list, nth: int = 1):
    """Make the task raise KeyboardInterrupt at the ``nth`` request of the batch of ``update`` (the losses probe
    asks for a probe step's batch before the update does), once; log every request."""
    cls = TASKS.get(task)
    real = cls.train_batch
    requests, died = [], []

    def train_batch(self, step):
        calls.append(step)
        requests.append(step)
        if step == update and requests.count(step) == nth and not died:
            died.append(step)
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(cls, "train_batch", train_batch)


@pytest.mark.parametrize("case, config, update, nth, resumes_at", [
    ("adam, dies between probe steps", _config(), 7, 1, 7),
    ("adam, dies at a probe step's update", _config(), 8, 2, 8),  # its probe record is in the snapshot
    ("adam, dies in a probe", _config(), 8, 1, 7),
    ("sgd with momentum", _config(train=dict(optimizer="sgd", momentum=0.9, lr=0.01)), 5, 1, 5),
    ("rmsprop, tanh", _config(nonlinearities=["tanh"], train=dict(optimizer="rmsprop", momentum=0.5)), 9, 1, 9),
    ("lstm, two layers", _config(cells=["lstm"], layers=2), 6, 1, 6),
    ("ptb: state carried across segments", _config(task="ptb", seq_len=[5], cells=["gru"]), 7, 1, 7),
    ("a cell diverged before the snapshot", _config(inits=["identity", "gaussian:std=1e30"],
                                                    train=dict(clip=0.0)), 10, 1, 10),
])
def test_a_stack_that_dies_part_way_resumes_from_its_snapshot_with_the_uninterrupted_bits(
        case, config, update, nth, resumes_at, tmp_path, monkeypatch):
    reference = run_study(config, progress=False)
    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict(), snapshot_every=EVERY_UPDATE)
    calls = []
    _dies_at(monkeypatch, config.task, update, calls, nth)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, checkpoints=checkpoints)
    snapshots = list(checkpoints.folder.glob("*.snapshot.nc"))
    assert len(snapshots) == 1 and not list(checkpoints.folder.glob("*.tmp"))
    calls.clear()
    said = []
    resumed = run_study(config, progress=False, checkpoints=checkpoints, report=said.append)
    # on from where it died, not from 0 (the losses probe scores each probe step's batch too, the last one's)
    assert sorted(set(calls)) == list(range(resumes_at, config.train.steps + 1)), case
    assert said == [f"resuming from {checkpoints.folder}: 0 of 1 stacks loaded, 1 to run, 1 of them from a "
                    "snapshot part way"]
    assert not snapshots[0].exists()  # dropped once the stack's part is saved
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    for name in ("train_loss", "diverged_step", "test_loss", "jacobian_log_norm", "eig_real"):
        assert resumed[name].dtype == reference[name].dtype, name
        np.testing.assert_array_equal(resumed[name].values, reference[name].values)
    if "diverged" in case:
        assert np.isfinite(reference["diverged_step"].values).sum() == 1


def test_snapshots_are_taken_every_so_many_seconds_and_never_at_0(tmp_path, monkeypatch):
    config = _config()
    for every, taken in ((0, False), (3600.0, False), (EVERY_UPDATE, True)):
        checkpoints = StackCheckpoints(tmp_path / f"{every}.nc.parts", config.to_dict(), snapshot_every=every)
        calls = []
        _dies_at(monkeypatch, config.task, 10, calls)
        with pytest.raises(KeyboardInterrupt):
            run_study(config, progress=False, checkpoints=checkpoints)
        monkeypatch.undo()
        assert bool(list(checkpoints.folder.glob("*.snapshot.nc"))) == taken, every
    with pytest.raises(ValueError, match="snapshot_every must be >= 0 seconds"):
        StackCheckpoints(tmp_path / "x", config.to_dict(), snapshot_every=-1)


def test_a_damaged_snapshot_is_reported_and_its_stack_starts_again(tmp_path, monkeypatch):
    config = _config()
    reference = run_study(config, progress=False)
    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict(), snapshot_every=EVERY_UPDATE)
    calls = []
    _dies_at(monkeypatch, config.task, 6, calls)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, checkpoints=checkpoints)
    snapshot = next(checkpoints.folder.glob("*.snapshot.nc"))
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    calls.clear()
    with pytest.warns(UserWarning, match="could not be read .*its stack starts again at update 0"):
        again = run_study(config, progress=False, checkpoints=checkpoints)
    assert sorted(set(calls)) == list(range(config.train.steps + 1))
    xr.testing.assert_identical(again.drop_attrs(), reference.drop_attrs())


def test_a_snapshot_that_cannot_be_written_leaves_the_stack_training(tmp_path, monkeypatch):
    from rnn_dynamics import records

    config = _config()
    reference = run_study(config, progress=False)
    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict(), snapshot_every=EVERY_UPDATE)
    tries = []

    def no_disk(ds, path):  # as on a dask worker that does not share the study's file system
        tries.append(path)
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(records, "write_dataset", no_disk)  # the snapshots' writer; the parts keep their own
    with pytest.warns(UserWarning, match="could not be written .*the stack trains on without snapshots"):
        stack = run_study(config, progress=False, checkpoints=checkpoints)
    assert len(tries) == 1  # tried once, then trained on without
    xr.testing.assert_identical(stack.drop_attrs(), reference.drop_attrs())


def test_resuming_with_another_thread_count_says_the_last_bits_may_differ(tmp_path, monkeypatch):
    from rnn_dynamics.executors import InProcess

    config = _config()
    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict(), snapshot_every=EVERY_UPDATE)
    _dies_at(monkeypatch, config.task, 6, [])
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, checkpoints=checkpoints, executor=InProcess(threads=1))
    with pytest.warns(UserWarning, match="resuming a stack at update 6 with 2 torch threads where 1 trained it"):
        run_study(config, progress=False, checkpoints=checkpoints, executor=InProcess(threads=2))
