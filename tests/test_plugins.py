"""Plug-ins kept outside the package: a .py file or a module named with --plugins (here and on dask workers),
and an installed package's entry point."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analyses.spectra import main
from rnn_dynamics import StudyConfig, plugins
from rnn_dynamics.config import ConfigError
from rnn_dynamics.inits import INITS

ROOT = Path(__file__).resolve().parents[1]

#: A user's init, probe and cell type in a file of their own: a diagonal ramp, the trace of every recurrent block,
#: and an Elman cell under another name.
RAMP = textwrap.dedent('''
    import torch

    from rnn_dynamics import register_cell, register_init
    from rnn_dynamics.models.elman import ElmanStack
    from rnn_dynamics.probes import Probe, register_probe
    from rnn_dynamics.records import Variable


    @register_cell("plugin_elman")
    class PluginElman(ElmanStack):
        """An Elman cell registered from a user's file."""


    @register_init("plugin_ramp")
    def plugin_ramp(shape, nonlinearity, generator, *, low=0.5, high=1.0):
        """A diagonal recurrent matrix with entries evenly spaced from low to high."""
        return torch.diag(torch.linspace(low, high, shape[0], dtype=torch.float64))


    @register_probe
    class Trace(Probe):
        name = "plugin_trace"
        variables = {"plugin_trace": Variable(("layer", "gate", "step"), "trace of each recurrent block", "1")}

        def record(self, ctx):
            return {"plugin_trace": ctx.model.recurrent_blocks().diagonal(dim1=-2, dim2=-1).sum(-1)}
''')


def _cli(*args, cwd, pythonpath=()):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, pythonpath)])}
    return subprocess.run([sys.executable, "-m", "analyses.spectra", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_a_plugin_file_runs_on_dask_workers_and_the_study_records_where_it_is(tmp_path):
    (tmp_path / "ramp.py").write_text(RAMP)
    proc = _cli("--plugins", "ramp.py", "--cells", "elman", "plugin_elman", "--inits", "identity",
                "plugin_ramp:low=0.9", "--nonlinearities", "relu", "--hidden", "8", "--seq-len", "6", "--steps", "4",
                "--probe-every", "2", "--preset", "tiny", "--workers", "2", "--quiet", "--out", "study.nc",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ds = xr.load_dataset(tmp_path / "study.nc")
    assert ds.attrs["executor"].startswith("dask.distributed (2 workers")  # the workers had to import it themselves
    trace = ds["plugin_trace"].sel(step=0, nonlinearity="relu", seq_len=6, seed=0, layer=0, gate="recurrent")
    for cell in ("elman", "plugin_elman"):
        np.testing.assert_allclose(trace.sel(cell=cell).values, [8.0, np.linspace(0.9, 1.0, 8).sum()], rtol=1e-6)
    assert json.loads(ds.attrs["config"])["plugins"] == [str(tmp_path / "ramp.py")]


def test_a_plugin_module_is_listed_with_the_built_in_names(tmp_path):
    (tmp_path / "my_ramp.py").write_text(RAMP)
    proc = _cli("--plugins", "my_ramp", "--list-inits", "--list-probes", "--list-cells", cwd=tmp_path,
                pythonpath=[tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert "plugin_ramp(low=0.5, high=1.0): A diagonal recurrent matrix" in proc.stdout
    assert "plugin_trace: Variables: plugin_trace" in proc.stdout and "identity(" in proc.stdout
    assert "plugin_elman: An Elman cell registered from a user's file." in proc.stdout


@pytest.mark.parametrize("source, plugin, message", [
    (None, "absent.py", "--plugins 'absent.py': no such .py file"),
    (None, "no_such_module_here", "--plugins 'no_such_module_here': no module of that name"),
    ("raise RuntimeError('boom')", "broken.py", "--plugins 'broken.py' failed on import: RuntimeError: boom"),
    ("import not_an_installed_package", "needs.py",
     "--plugins 'needs.py' failed on import: ModuleNotFoundError: No module named 'not_an_installed_package'"),
    ("from rnn_dynamics import register_init\nregister_init('identity')(lambda shape, nonlinearity, generator: 0)",
     "clash.py", "init 'identity' is already registered"),
])
def test_a_bad_plugin_is_one_line_and_exit_2_before_anything_runs(source, plugin, message, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    if source is not None:
        (tmp_path / plugin).write_text(source)
    with pytest.raises(SystemExit) as stop:
        main(["--plugins", plugin, "--out", str(tmp_path / "study.nc")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "study.nc").exists() and not (tmp_path / "study.nc.parts").exists()


def test_the_library_names_a_missing_plugin_under_its_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^plugins '.*absent\.py': no such \.py file"):
        StudyConfig(plugins=[str(tmp_path / "absent.py")])


def _installed(folder: Path, monkeypatch, module: str, entry: str, source: str) -> None:
    """A package installed in ``folder`` (its module and a dist-info declaring ``entry`` in the plug-in group),
    seen by importlib.metadata as any installed one, with the plug-ins not yet loaded in this process."""
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{entry} = {module}\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)


def test_an_installed_packages_entry_point_is_imported_once(tmp_path, monkeypatch):
    _installed(tmp_path, monkeypatch, "installed_ramp", "ramp",
               "import torch\nfrom rnn_dynamics import register_init\n"
               "register_init('installed_ramp')(lambda shape, nonlinearity, generator: torch.eye(shape[0]))\n")
    try:
        plugins.load_plugins()
        assert "installed_ramp" in INITS.names()
        plugins.load_plugins()  # a second load imports nothing again (registering twice would raise)
    finally:
        INITS.unregister("installed_ramp")
        sys.modules.pop("installed_ramp", None)


def test_a_broken_installed_plugin_is_named_as_such(tmp_path, monkeypatch, capsys):
    _installed(tmp_path, monkeypatch, "broken_lab", "lab", "raise ImportError('needs a GPU library')")
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "study.nc")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err == (
        "error: installed plug-in 'lab' (entry point broken_lab in group rnn_dynamics.plugins) failed on import: "
        "ImportError: needs a GPU library")
