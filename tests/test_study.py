"""End-to-end: a small study through the library and through the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rnn_dynamics import StudyConfig, TrainConfig, read_dataset, run_study, write_dataset
from rnn_dynamics.records import RECORD_DIMS, SCHEMA

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    config = StudyConfig(seq_len=[12, 20], inits=["identity", "scaled_identity:scale=0.5", "gaussian:std=1e30"],
                         nonlinearities=["relu", "tanh"], seeds=[0], hidden=8, preset="tiny",
                         train=TrainConfig(steps=6, probe_every=3, clip=0.0), probe_batch=4)
    return run_study(config, progress=False)


def test_dims_and_coordinates(study):
    assert study.sizes["init"] == 3 and study.sizes["seq_len"] == 2 and study.sizes["nonlinearity"] == 2
    assert list(study["step"].values) == [0, 3, 6]
    assert list(study["init"].values) == ["identity", "scaled_identity:scale=0.5", "gaussian:std=1e30"]
    assert study["time"].values[-1] == 20 and study["lag"].values[-1] == 20
    assert study["jacobian_norm"].dims == ("init", "nonlinearity", "seed", "seq_len", "layer", "step", "lag")
    for name in ("loss", "test_loss", "test_metric", "eig_real", "eig_imag", "spectral_radius", "singular_values",
                 "jacobian_norm", "grad_norm", "active_fraction", "diverged_step"):
        assert name in study


def test_every_variable_and_dim_is_described(study):
    for name, var in study.data_vars.items():
        assert var.attrs["long_name"] and "units" in var.attrs, name
    for dim in study.dims:
        if dim in RECORD_DIMS:
            assert study[dim].attrs["long_name"]
    assert study["test_metric"].attrs["metric"] == "mse"
    config = json.loads(study.attrs["config"])
    assert config["seq_len"] == [12, 20] and study.attrs["torch_version"] and study.attrs["created"]


def test_known_values_at_initialisation(study):
    first = study.sel(step=0, layer=0, seed=0)
    # scaled identity 0.5 I: eigenvalues all 0.5, product norms exactly 0.5^k while ReLU units stay on.
    scaled = first.sel(init="scaled_identity:scale=0.5", nonlinearity="tanh", seq_len=12)
    np.testing.assert_allclose(scaled["eig_real"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(scaled["singular_values"], 0.5, rtol=1e-6)
    # identity under tanh with tiny inputs: the product norm stays ~1 (f' ~ 1).
    ident = first.sel(init="identity", nonlinearity="relu", seq_len=20)
    assert float(ident["spectral_radius"]) == pytest.approx(1.0)
    # lags beyond the shorter sequence are NaN, within it finite
    short = first.sel(init="identity", nonlinearity="tanh", seq_len=12)["jacobian_norm"]
    assert np.isnan(short.sel(lag=20)) and np.isfinite(short.sel(lag=12))
    assert np.isnan(first.sel(seq_len=12)["grad_norm"].sel(time=15)).all()


def test_diverged_cell_is_recorded_not_fatal(study):
    diverged = study["diverged_step"].sel(init="gaussian:std=1e30", nonlinearity="relu")
    assert (diverged == 0).all()
    assert np.isnan(study["test_loss"].sel(init="gaussian:std=1e30", nonlinearity="relu")).all()
    assert np.isnan(study["diverged_step"].sel(init="identity")).all()
    assert np.isfinite(study["test_loss"].sel(init="identity")).all()


def test_netcdf_round_trip_is_lossless(study, tmp_path):
    path = write_dataset(study, tmp_path / "sub" / "study.nc")
    assert read_dataset(path).identical(study)
    assert not list(path.parent.glob("*.tmp"))


def test_plain_xarray_reads_it_without_the_package(study, tmp_path):
    path = write_dataset(study, tmp_path / "study.nc")
    code = ("import sys; sys.modules['rnn_dynamics'] = None; import xarray as xr; "
            f"ds = xr.open_dataset({str(path)!r}); print(ds['jacobian_norm'].attrs['long_name'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "dh_T/dh_{T-k}" in out.stdout


def test_schema_page_documents_every_variable_and_dim():
    page = (ROOT / "docs" / "schema.md").read_text()
    for name in list(SCHEMA) + list(RECORD_DIMS) + ["init", "nonlinearity", "seed", "seq_len"]:
        assert f"`{name}`" in page, name


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "analyses.spectra", *args], capture_output=True, text=True,
                          cwd=cwd, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_cli_writes_a_dataset(tmp_path):
    out = tmp_path / "res" / "s.nc"
    proc = _cli("--seq-len", "10", "--inits", "identity", "he", "--nonlinearities", "relu", "--hidden", "6",
                "--steps", "4", "--probe-every", "2", "--preset", "tiny", "--seeds", "0", "1", "--quiet",
                "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.nc"]  # the per-stack checkpoints are gone
    ds = xr.load_dataset(out)
    assert ds.sizes["seed"] == 2 and "seq_len" not in ds.dims
    assert "analyses.spectra" in ds.attrs["command"] or "--seq-len" in ds.attrs["command"]


def test_cli_probe_every_zero_records_only_losses(tmp_path):
    out = tmp_path / "s.nc"
    proc = _cli("--seq-len", "10", "--inits", "identity", "--nonlinearities", "tanh", "--hidden", "4", "--steps", "3",
                "--probe-every", "0", "--preset", "tiny", "--quiet", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = xr.load_dataset(out)
    assert set(ds.data_vars) == {"train_loss", "diverged_step"} and ds.sizes["iteration"] == 3


@pytest.mark.parametrize("args, message", [
    (["--inits", "identity", "bogus"], "unknown init 'bogus'; valid inits: gaussian, he, identity"),
    (["--task", "sorting"], "unknown task 'sorting'; valid tasks: adding"),
    (["--nonlinearities", "relu", "softplus"], "unknown nonlinearity 'softplus'; valid nonlinearities: relu, tanh"),
    (["--hidden", "0"], "--hidden must be a positive integer, got 0"),
    (["--layers", "-1"], "--layers must be a positive integer"),
    (["--seq-len", "0"], "--seq-len must be positive"),
    (["--steps", "10", "--probe-every", "20"], "--probe-every must lie in 0..10"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--out", "pyproject.toml/x.nc"], "is not writable"),
    (["--out", "/proc/nope/x.nc"], "is not writable"),
])
def test_cli_bad_input(args, message, tmp_path):
    before = set(Path(ROOT).rglob("*.nc")) | set(tmp_path.rglob("*"))
    proc = _cli(*args, "--quiet", cwd=ROOT if args[0] == "--out" else tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert set(Path(ROOT).rglob("*.nc")) | set(tmp_path.rglob("*")) == before


def test_lyapunov_probe_recorded_with_known_values():
    config = StudyConfig(seq_len=[40], inits=["scaled_identity:scale=0.5", "orthogonal"], nonlinearities=["tanh"],
                         hidden=6, preset="tiny", train=TrainConfig(steps=2, probe_every=1), lyapunov=True)
    ds = run_study(config, progress=False)
    lyap = ds["lyapunov"].sel(seed=0, layer=0, nonlinearity="tanh")
    assert lyap.dims == ("init", "step", "exponent") and list(ds["exponent"].values) == [1, 2, 3, 4, 5, 6]
    assert lyap.attrs["units"] == "nats per time step" and lyap.attrs["warmup_steps"] == "T // 10"
    # inputs of std 1e-3 keep tanh nearly linear: 0.5 I has every exponent ln 0.5, orthogonal every exponent 0
    np.testing.assert_allclose(lyap.sel(init="scaled_identity:scale=0.5", step=0), np.log(0.5), atol=1e-4)
    np.testing.assert_allclose(lyap.sel(init="orthogonal", step=0), 0.0, atol=1e-4)
    benettin = ds["lyapunov_benettin"].sel(seed=0, layer=0, nonlinearity="tanh", step=0)
    np.testing.assert_allclose(benettin, lyap.sel(step=0, exponent=1), atol=0.02)


def test_cli_bad_lyapunov_warmup(tmp_path):
    proc = _cli("--seq-len", "20", "--lyapunov", "--lyapunov-warmup", "20", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "--lyapunov-warmup must lie in 0..19" in proc.stderr


def test_an_interrupted_study_resumes_without_rerunning_finished_stacks(tmp_path, monkeypatch):
    from rnn_dynamics import sweep
    from rnn_dynamics.checkpoints import StackCheckpoints

    config = StudyConfig(seq_len=[8], inits=["identity", "he"], nonlinearities=["relu", "tanh"], seeds=[0, 1],
                         hidden=4, preset="tiny", train=TrainConfig(steps=3, probe_every=3))
    reference = run_study(config, progress=False)
    real_run_stack, calls = sweep.run_stack, []

    def dies_on_third_stack(cfg, spec, on_step=None):
        calls.append(spec.key())
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_stack(cfg, spec, on_step)

    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict())
    monkeypatch.setattr(sweep, "run_stack", dies_on_third_stack)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, checkpoints=checkpoints)
    assert len(list(checkpoints.folder.glob("*.npz"))) == 2 and not list(checkpoints.folder.glob("*.tmp"))
    calls.clear()
    resumed = run_study(config, progress=False, checkpoints=checkpoints)
    assert len(calls) == 2  # only the two stacks that had not finished
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    other = StackCheckpoints(tmp_path / "s.nc.parts", {**config.to_dict(), "hidden": 5})
    assert other.folder != checkpoints.folder
    checkpoints.remove()
    assert not (tmp_path / "s.nc.parts").exists()
