"""The README's library example runs as written, its set-up commands are what CI runs, and its
default-study table is what the default study prints."""

import json
import re
import shutil
from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_library_example_runs(tmp_path, monkeypatch, capsys):
    from rnn_dynamics import inits

    section = _readme().split("## Library example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    finally:
        inits.INITS.unregister("diagonal_ramp")
    printed = capsys.readouterr().out
    assert "diagonal_ramp:low=0.9" in printed and (tmp_path / "ramp_study.nc").is_file()
    # the ramp's spectral radius is its largest diagonal entry, 1.0; an orthogonal forget block has singular values 1
    assert re.search(r"diagonal_ramp:low=0.9\s+relu\s+1\.0", printed)
    lines = printed.strip().splitlines()
    assert float(lines[-2]) == pytest.approx(1.0, rel=1e-6)
    # the trained LSTMs rebuilt: every init, 1 layer, 4 gates of 16 x 16
    assert lines[-1] == "['identity', 'diagonal_ramp:low=0.9', 'orthogonal'] torch.Size([3, 1, 4, 16, 16])"


def test_torch_module_example_runs(capsys):
    section = _readme().split("## Library example", 1)[1].split("\n## ", 1)[0]
    code = [block for block in re.findall(r"```python\n(.*?)```", section, re.S) if "from_torch" in block][0]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    norms, exponents = map(float, capsys.readouterr().out.split())
    assert norms == 0.0 and exponents < 1e-14  # the IRNN at initialisation: every norm 1, every exponent 0


def test_fixed_points_example_runs(capsys):
    section = _readme().split("## Fixed and slow points", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    speed, radius = map(float, capsys.readouterr().out.split())
    assert speed < 1e-20 and 0 < radius < 1  # torch's draw of a 16-unit tanh RNN: one stable fixed point


def test_torch_model_example_runs(tmp_path, monkeypatch, capsys):
    """The training script as written (two ReLU RNNs, 500 Adam steps each, a checkpoint every 100), then the command
    (its glob expanded as a shell would): the IRNN learned the adding problem and a gradient reaches its first step;
    the default init did neither."""
    import glob
    import shlex

    from analyses.torch_model import main

    section = _readme().split("## Networks you trained with torch.nn", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"```bash\n(python -m analyses.torch_model .*?)\n", section).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    capsys.readouterr()
    argv = [path for arg in shlex.split(command)[3:] for path in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
    assert main(argv) == 0
    ds = xr.open_dataset(tmp_path / "results" / "adders.nc")
    assert list(ds["step"].values) == [0, 100, 200, 300, 400, 500]
    at = ds.sel(cell="elman", nonlinearity="relu", seq_len=50, seed=0, step=500, layer=0)
    mse, baseline = at["test_metric"], at["test_metric_baseline"]
    assert mse.sel(init="irnn") < baseline.sel(init="irnn") / 2 < mse.sel(init="torch_default")
    reach = at["jacobian_log_norm"].sel(lag=50)
    assert reach.sel(init="irnn") > -1 and reach.sel(init="torch_default") < -5


def test_ci_runs_the_readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", _readme().split("## Set-up and test", 1)[1], re.S)
    setup, test = blocks[0].strip(), blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup in ci and test in ci


def test_readme_table_is_what_the_default_study_prints():
    """Checked against results/spectra.nc, which the README's first command (and CI) writes, when that
    file comes from the default configuration on the platform, processor, torch version and thread count the README
    states: training is chaotic, so other processors, builds or thread counts print other digits (an AMD EPYC and
    the machine before it differed from the second decimal on)."""
    from analyses.spectra import _later_defaults
    from rnn_dynamics.config import StudyConfig
    from rnn_dynamics.records import summary_table

    path = ROOT / "results" / "spectra.nc"
    if not path.is_file():
        pytest.skip("results/spectra.nc is absent: run the README's first command")
    ds = xr.load_dataset(path)
    section = _readme().split("## The default study", 1)[1].split("\n## ", 1)[0]
    stated = re.search(r"\((\S+ \S+), (.+?), torch\s+(\S+)\)", section)
    threads = re.search(r"(\d+) torch threads", section)
    made = (ds.attrs["platform"], ds.attrs.get("cpu"), ds.attrs["torch_version"], str(ds.attrs.get("torch_threads")))
    saved = json.loads(ds.attrs["config"])  # a setting added since it was written: at its default, what it ran with
    if {**_later_defaults(saved), **saved} != StudyConfig().to_dict() or made != (*stated.groups(), threads.group(1)):
        pytest.skip("results/spectra.nc was not made by the default study on the README's platform, processor, "
                    "torch and thread count")
    for line in summary_table(ds).splitlines():
        assert line in section, f"README's default-study table lacks: {line}"


def test_schema_page_is_generated_from_the_declarations(tmp_path):
    from rnn_dynamics.records import update_schema_page

    copy = tmp_path / "schema.md"
    shutil.copy(ROOT / "docs" / "schema.md", copy)
    assert not update_schema_page(copy), "docs/schema.md is stale: run python -m rnn_dynamics.records docs/schema.md"


def test_the_schema_command_refuses_a_page_without_its_tables_and_leaves_it_as_it_was(tmp_path):
    """Given another page (README.md, say) it once appended the tables to it; now it stops in one line, exit 2."""
    import subprocess
    import sys

    page = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", page)
    for path, expected in ((page, "has no line '<!-- generated by"), (tmp_path / "none.md", "is not a file")):
        proc = subprocess.run([sys.executable, "-m", "rnn_dynamics.records", str(path)], capture_output=True,
                              text=True, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert page.read_bytes() == (ROOT / "README.md").read_bytes()
