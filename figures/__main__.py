"""python -m figures RESULTS [--out DIR]: every figure whose datasets are in RESULTS (a folder, or one .nc file).

Each *.nc study in RESULTS says its task in its attrs; a figure is drawn from every dataset of a
task it draws that holds the variables it needs (per-dataset figures once per dataset). What could not
be drawn is listed with the variable it lacked.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnn_dynamics.commandline import OneLineParser, fail

from . import figure_specs
from .common import DEFAULT_OUT, draw_ready, figure_parser, load_study


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m figures", description=__doc__.splitlines()[0])
    parser.add_argument("results", help="folder of study datasets (*.nc), or one dataset")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    folder = Path(args.results)
    if folder.is_file() and folder.suffix == ".nc":
        paths = [folder]
    elif folder.is_dir():
        paths = sorted(folder.glob("*.nc"))
    else:
        fail(f"{str(folder)!r} is neither a folder of study datasets nor a .nc dataset")
    datasets = [load_study(path) for path in paths]
    if not datasets:
        fail(f"{str(folder)!r} holds no study datasets (*.nc)")
    slice_defaults = figure_parser("figures", "").parse_args([])  # first seed and length, layer 0
    drawn, skipped = draw_ready(figure_specs().values(), datasets, slice_defaults, args.out)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not drawn:
        fail(f"no figure can be drawn from {str(folder)!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
