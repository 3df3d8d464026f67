"""Where stacks run: in-process, on a local dask cluster, on an existing dask scheduler; resume, refusal,
kill -9 of the process or of a worker, and bit-identical results whatever the executor or thread count."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xarray as xr

from conftest import run_in_process
from rnn_dynamics import StudyConfig, TrainConfig, run_study
from rnn_dynamics.executors import InProcess, torch_threads

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
#: Four stacks (2 nonlinearities x 2 seeds) of 2 cells, small enough to run in a few seconds.
STUDY = ["--seq-len", "12", "--inits", "identity", "he", "--nonlinearities", "relu", "tanh", "--seeds", "0", "1",
         "--hidden", "16", "--steps", "30", "--probe-every", "10", "--preset", "tiny", "--quiet"]


def _cli(*args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "analyses.spectra", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, **kwargs)


def _data(path) -> xr.Dataset:
    """The dataset without its attrs (which name the command, time, executor and threads)."""
    return xr.load_dataset(path).drop_attrs()


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory) -> Path:
    """STUDY run by the command (the in-process executor, one thread), as a file."""
    out = tmp_path_factory.mktemp("ref") / "ref.nc"
    proc = _cli(*STUDY, "--threads", "1", "--out", str(out), cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def reference(reference_file) -> xr.Dataset:
    return _data(reference_file)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1; yields (address, workers). Started
    once for the module: the test that kills a worker comes last of those that use it."""
    tmp_path = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], env=ENV, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                 "--no-dashboard", "--no-nanny"], env=ENV, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


def test_the_same_command_gives_the_same_bits_and_records_its_threads(tmp_path, capsys):
    """The in-process default is every core, never a timed guess, so rerunning a command reproduces it: once from
    a shell, once in this process (which has run other tests before)."""
    from analyses.spectra import main
    from rnn_dynamics.executors import available_cores

    proc = _cli(*STUDY, "--out", str(tmp_path / "first.nc"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    code, _, stderr = run_in_process(main, [*STUDY, "--out", str(tmp_path / "again.nc")], capsys)
    assert code == 0, stderr
    runs = [xr.load_dataset(tmp_path / name) for name in ("first.nc", "again.nc")]
    assert runs[0].attrs["torch_threads"] == runs[1].attrs["torch_threads"] == available_cores()
    xr.testing.assert_identical(runs[0].drop_attrs(), runs[1].drop_attrs())


def test_local_workers_of_a_cuda_study_see_one_gpu_each(monkeypatch):
    """--workers N --device cuda on a node of several GPUs: worker i sees GPU i (round robin), as dask-cuda pins
    its workers; here with torch's GPU count stood in for, so the pinning itself runs without a GPU."""
    pytest.importorskip("distributed")  # a project dependency, absent from the bare GPU check machine
    from rnn_dynamics.executors import local_cluster, worker_gpus

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert worker_gpus("cuda", 3) == ["0", "1", "0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # this process's own choice of GPUs: shared out among workers
    assert worker_gpus("cuda", 2) == ["3", "5"]
    assert worker_gpus("cuda:1", 2) is None and worker_gpus("cpu", 2) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert worker_gpus("cuda", 2) is None
    with local_cluster(2, gpus=["3", "5"]) as dask:
        seen = dask.client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        workers = dask.client.scheduler_info(n_workers=-1)["workers"]
        names = {address: worker["name"] for address, worker in workers.items()}
        assert {names[address]: gpu for address, gpu in seen.items()} == {0: "3", 1: "5"}
        assert dask.describe().endswith(", one GPU each (CUDA_VISIBLE_DEVICES 3, 5))")


def test_a_cuda_study_on_dask_counts_each_gpus_free_memory_among_the_workers_sharing_it():
    """The resource check of a study on GPUs: each worker reports its GPU (by UUID) and that GPU's free memory."""
    from rnn_dynamics.executors import Dask, gpu_free_bytes, per_worker_gpu_bytes

    assert per_worker_gpu_bytes([("GPU-a", 100), ("GPU-a", 90), ("GPU-b", 150)]) == 45
    assert per_worker_gpu_bytes([]) is None

    class StandInClient:
        def run(self, function, device):
            assert function is gpu_free_bytes and device == "cuda"
            return {"tcp://w1": ("GPU-a", 8 << 30), "tcp://w2": ("GPU-b", 6 << 30), "tcp://w3": ("GPU-b", 6 << 30)}

    assert Dask(StandInClient()).available_bytes(StudyConfig(device="cuda")) == 3 << 30

    class WorkersWithoutAGpu:
        def run(self, function, device):
            raise RuntimeError("No CUDA GPUs are available")

    with pytest.raises(ValueError, match=r"^--device 'cuda': a dask worker cannot use it \(RuntimeError: No CUDA"):
        Dask(WorkersWithoutAGpu()).available_bytes(StudyConfig(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_worker_reports_its_gpu_and_free_memory():
    from rnn_dynamics.executors import gpu_free_bytes

    gpu, free = gpu_free_bytes("cuda")
    assert gpu == str(torch.cuda.get_device_properties(0).uuid) and 0 < free <= torch.cuda.mem_get_info()[1]


def test_local_dask_workers_give_the_in_process_dataset(reference, tmp_path):
    """The workers also write snapshots of their stacks, every 50 ms (the study's folder is theirs too)."""
    proc = _cli(*STUDY, "--workers", "2", "--snapshot-every", "0.05", "--out", str(tmp_path / "dask.nc"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    xr.testing.assert_identical(_data(tmp_path / "dask.nc"), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.nc"]
    assert xr.load_dataset(tmp_path / "dask.nc").attrs["executor"].startswith("dask.distributed (2 workers")


def test_an_existing_scheduler_and_two_workers_give_the_in_process_dataset(reference, dask_cluster, tmp_path):
    address, _ = dask_cluster
    proc = _cli(*STUDY, "--scheduler", address, "--out", str(tmp_path / "remote.nc"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    xr.testing.assert_identical(_data(tmp_path / "remote.nc"), reference)


def test_a_worker_killed_mid_study_is_replaced_by_dask(reference, dask_cluster, tmp_path):
    address, workers = dask_cluster
    run = subprocess.Popen([sys.executable, "-m", "analyses.spectra", *STUDY, "--scheduler", address, "--out",
                            str(tmp_path / "lost.nc")], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "lost.nc.parts"
    deadline = time.time() + 120
    while time.time() < deadline and not list(parts.glob("*/*.nc")) and run.poll() is None:
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)  # the other stacks were on it or queued
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    xr.testing.assert_identical(_data(tmp_path / "lost.nc"), reference)


def test_kill_minus_nine_then_the_same_command_finishes_without_recomputing(reference, tmp_path):
    out = tmp_path / "killed.nc"
    run = subprocess.Popen([sys.executable, "-m", "analyses.spectra", *STUDY, "--threads", "1", "--out", str(out)],
                           cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = Path(f"{out}.parts")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*/*.nc"))) < 2 and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = len(list(parts.glob("*/*.nc")))
    assert 2 <= finished < 4 and not out.exists()
    proc = _cli(*STUDY, "--threads", "1", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{finished} of 4 stacks loaded, {4 - finished} to run" in proc.stdout
    xr.testing.assert_identical(_data(out), reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.nc"]  # no parts, no temporary files


def test_kill_minus_nine_mid_stack_then_the_same_command_resumes_it_from_its_snapshot(reference, tmp_path):
    out = tmp_path / "killed.nc"
    command = [*STUDY, "--threads", "1", "--snapshot-every", "0.02", "--out", str(out)]  # every 20 ms
    run = subprocess.Popen([sys.executable, "-m", "analyses.spectra", *command], cwd=tmp_path, env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = Path(f"{out}.parts")
    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None and not (
            list(parts.glob("*/*.snapshot.nc")) and any(not p.name.endswith(".snapshot.nc")
                                                        for p in parts.glob("*/*.nc"))):
        time.sleep(0.02)  # until a stack has finished and another is part way
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert len(list(parts.glob("*/*.snapshot.nc"))) == 1 and not out.exists()
    proc = _cli(*command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "to run, 1 of them from a snapshot part way" in proc.stdout
    xr.testing.assert_identical(_data(out), reference)  # the snapshots' flag changes neither numbers nor config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.nc"]  # no parts, snapshots or temporary files


def test_stacks_merge_to_the_same_dataset_in_any_order():
    config = StudyConfig(seq_len=[8], inits=["identity", "he"], nonlinearities=["relu", "tanh"], seeds=[0, 1],
                         hidden=4, preset="tiny", train=TrainConfig(steps=3, probe_every=3))

    class Reversed(InProcess):
        def run(self, config, specs, progress, snapshots=None):
            return reversed(list(super().run(config, specs, progress, snapshots)))

    forward = run_study(config, progress=False, executor=InProcess(threads=1))
    backward = run_study(config, progress=False, executor=Reversed(threads=1))
    xr.testing.assert_identical(forward.drop_attrs(), backward.drop_attrs())


def test_the_same_out_with_another_configuration_is_refused(reference_file, tmp_path, capsys):
    """In this process, on a copy of the reference (the same configuration: threads are not part of it)."""
    from analyses.spectra import main

    out = tmp_path / "s.nc"
    shutil.copy(reference_file, out)
    code, stdout, _ = run_in_process(main, [*STUDY, "--out", str(out)], capsys)
    assert code == 0 and "already holds this study: nothing to run" in stdout
    ds = xr.load_dataset(out)  # as a version before --plugins wrote it: a field it lacks counts at its default
    config = json.loads(ds.attrs["config"])
    del config["plugins"]
    ds.assign_attrs(config=json.dumps(config)).to_netcdf(out)
    code, stdout, _ = run_in_process(main, [*STUDY, "--out", str(out)], capsys)
    assert code == 0 and "already holds this study: nothing to run" in stdout
    assert "(it differs in: plugins)" in run_in_process(main, [*STUDY, "--plugins", "json", "--out", str(out)],
                                                        capsys)[2]
    code, _, stderr = run_in_process(main, [*STUDY, "--hidden", "8", "--out", str(out)], capsys)
    assert code == 2 and stderr.strip().splitlines() == [
        f"error: --out '{out}' holds a study with another configuration (it differs in: hidden); "
        "pass --overwrite to replace it, or choose another --out"]
    code, _, stderr = run_in_process(main, [*STUDY, "--hidden", "8", "--overwrite", "--out", str(out)], capsys)
    assert code == 0 and xr.load_dataset(out).sizes["eig"] == 8, stderr


def test_a_diverging_cell_is_listed_and_the_exit_code_stays_zero(tmp_path, capsys):
    from analyses.spectra import main

    code, stdout, stderr = run_in_process(main, ["--seq-len", "8", "--inits", "identity", "gaussian:std=1e30",
                                                 "--nonlinearities", "relu", "--hidden", "4", "--steps", "4",
                                                 "--preset", "tiny", "--quiet", "--out", str(tmp_path / "d.nc")],
                                          capsys)
    assert code == 0, stderr
    row = next(line for line in stdout.splitlines() if "gaussian:std=1e30" in line)
    assert row.startswith("| elman | gaussian:std=1e30 | relu | 8 | 0 |  |  | 0.") and row.endswith("| at step 0 |")


@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--snapshot-every", "-5"], "--snapshot-every must be >= 0 seconds (0: no snapshots), got -5.0"),
    (["--snapshot-every", "nan"], "--snapshot-every must be >= 0 seconds (0: no snapshots), got nan"),
    (["--snapshot-every", "soon"], "argument --snapshot-every: invalid float value: 'soon'"),
    (["--threads", "0"], "argument --threads: must be a positive integer or auto, got '0'"),
    (["--threads", "auto", "--workers", "2"], "--threads auto applies in-process only"),
    (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler 'tcp://127.0.0.1:9' could not be reached"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "not allowed with argument"),
])
def test_bad_execution_flags(args, message, tmp_path, capsys):
    import dask

    from analyses.spectra import main

    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        code, _, stderr = run_in_process(main, [*STUDY, *args, "--out", str(tmp_path / "x.nc")], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not list(tmp_path.iterdir())


def test_threads_auto_times_one_or_every_core(tmp_path, capsys, monkeypatch):
    """On one core (an xdist worker's) there is nothing to time, so two cores are stood in for there: the timing
    then runs whatever the machine."""
    from analyses.spectra import main
    from rnn_dynamics import executors

    cores = max(2, executors.available_cores())
    monkeypatch.setattr(executors, "available_cores", lambda: cores)
    timed = []
    monkeypatch.setattr(executors, "torch_threads", lambda threads: timed.append(threads) or torch_threads(threads))
    code, _, stderr = run_in_process(main, [*STUDY, "--threads", "auto", "--out", str(tmp_path / "auto.nc")], capsys)
    assert code == 0, stderr
    assert {1, cores} <= set(timed)
    assert xr.load_dataset(tmp_path / "auto.nc").attrs["torch_threads"] in {1, cores}
