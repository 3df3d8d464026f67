"""The README's library example runs as written, and its set-up commands are what CI runs."""

import re
from pathlib import Path

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
    # the ramp's spectral radius is its largest diagonal entry, 1.0
    assert re.search(r"diagonal_ramp:low=0.9\s+relu\s+1\.0", printed)


def test_ci_runs_the_readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", _readme().split("## Set-up and test", 1)[1], re.S)
    setup, test = blocks[0].strip(), blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup in ci and test in ci
