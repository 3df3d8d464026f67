"""python -m figures RESULTS_DIR [--out DIR]: every figure whose datasets are in RESULTS_DIR.

Each *.nc study in RESULTS_DIR says its task in its attrs; a figure is drawn from every dataset of a
task it draws that holds the variables it needs (per-dataset figures once per dataset). What could not
be drawn is listed with the variable it lacked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail

from . import figure_specs
from .common import DEFAULT_OUT, load_study, save_all


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m figures", description=__doc__.splitlines()[0])
    parser.add_argument("results", help="folder of study datasets (*.nc)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    folder = Path(args.results)
    if not folder.is_dir():
        fail(f"{str(folder)!r} is not a folder of study datasets")
    datasets = [load_study(path) for path in sorted(folder.glob("*.nc"))]
    if not datasets:
        fail(f"{str(folder)!r} holds no study datasets (*.nc)")
    defaults = argparse.Namespace(seed=None, seq_len=None, layer=0, gate=None)
    drawn, skipped = 0, []
    for spec in figure_specs().values():
        wanted = [ds for ds in datasets if spec.tasks is None or ds.attrs.get("task") in spec.tasks]
        for ds in wanted:
            missing = [name for name in spec.needs if name not in ds]
            if missing:
                skipped.append(f"{spec.name} of {ds.attrs['source_file']}.nc: no variable {missing[0]!r}")
        ready = [ds for ds in wanted if all(name in ds for name in spec.needs)]
        if ready:  # saved figure by figure, so that only one figure's worth is open at a time
            for name, item in spec.draw(ready, defaults).items():
                save_all(args.out, {name: item})
                drawn += 1
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not drawn:
        fail(f"no figure can be drawn from {str(folder)!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
