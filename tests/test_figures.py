import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from figures import lyapunov as lyapunov_figure
from figures import spectra as spectra_figure
from rnn_dynamics import StudyConfig, TrainConfig, run_study, write_dataset

ROOT = Path(__file__).resolve().parents[1]
FIGURE_MODULES = ["figures.spectra", "figures.lyapunov"]


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    config = StudyConfig(seq_len=[10, 16], cells=["elman", "lstm"], inits=["identity", "he"],
                         nonlinearities=["relu", "tanh"], hidden=6, preset="tiny",
                         train=TrainConfig(steps=4, probe_every=2), lyapunov=True)
    return write_dataset(run_study(config, progress=False), tmp_path_factory.mktemp("data") / "s.nc")


@pytest.mark.parametrize("cell, gate", [("elman", None), ("lstm", "forget")])
def test_figures_are_written_as_png_and_pdf(dataset_path, tmp_path, cell, gate):
    chosen = ["--cell", cell] + (["--gate", gate] if gate else [])
    assert spectra_figure.main(["--data", str(dataset_path), "--out", str(tmp_path), "--seq-len", "16", *chosen]) == 0
    assert lyapunov_figure.main(["--data", str(dataset_path), "--out", str(tmp_path), *chosen]) == 0
    for name in ("eigenvalues", "jacobian_norms", "lyapunov_spectra", "lyapunov_largest"):
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-"


def _run(module, *args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.nc"], "no dataset at 'missing.nc'"),
    (["--seq-len", "99"], "seq_len 99 is not in the dataset; valid: 10, 16"),
    (["--cell", "gru"], "cell gru is not in the dataset; valid: elman, lstm"),
    (["--cell", "elman", "--gate", "forget"], "gate forget has no data for cell elman; valid: recurrent"),
    (["--layer", "x"], "argument --layer: invalid int value: 'x'"),
])
def test_bad_figure_input(args, message, dataset_path, tmp_path):
    if args[0] != "--data":
        args = ["--data", str(dataset_path), *args]
    proc = _run("figures.spectra", *args, "--out", str(tmp_path / "figs"), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "figs").exists()


def test_files_that_are_not_study_datasets_are_refused_in_one_line(tmp_path):
    (tmp_path / "text.nc").write_text("not a netCDF file")
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(tmp_path / "other.nc")
    for name, message in (("text.nc", "is not a netCDF file"), ("other.nc", "is not an rnn-dynamics study dataset")):
        proc = _run("figures.spectra", "--data", name, cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert message in proc.stderr


def test_a_missing_variable_is_named(dataset_path, tmp_path):
    ds = xr.load_dataset(dataset_path).drop_vars(["lyapunov", "lyapunov_benettin"])
    ds.to_netcdf(tmp_path / "no_lyapunov.nc")
    proc = _run("figures.lyapunov", "--data", "no_lyapunov.nc", cwd=tmp_path)
    assert proc.returncode == 2 and "has no variable 'lyapunov'" in proc.stderr


def _imports_torch(code, cwd) -> bool:
    proc = subprocess.run([sys.executable, "-c", f"{code}; import sys; print('torch' in sys.modules)"],
                          capture_output=True, text=True, cwd=cwd, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True"


@pytest.mark.parametrize("module", FIGURE_MODULES)
def test_figure_modules_import_no_torch_and_name_themselves(module, tmp_path):
    assert not _imports_torch(f"import {module}", tmp_path)
    assert f"usage: python -m {module}" in _run(module, "--help", cwd=tmp_path).stdout


def test_reading_a_dataset_and_the_theory_need_no_torch(dataset_path, tmp_path):
    code = (f"from rnn_dynamics import read_dataset, named_models, theory; ds = read_dataset({str(dataset_path)!r}); "
            "named_models(ds); theory.gaussian_product_exponents(4, 0.5); theory.tanh_random_walk_gain(100)")
    assert not _imports_torch(code, tmp_path)
