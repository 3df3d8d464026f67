"""The spectral figure set of each dataset: every per-dataset figure whose variables it holds.

    python -m figures.spectra results/spectra.nc [more.nc ...] --out results/figures

Every per-dataset figure module of this folder (figures.figure_specs) whose variables the dataset holds: those
of the default probes always; lyapunov, lag_spectra and fixed_points where the study recorded them (--lyapunov,
--probes);
each is also a command of its own.
"""

from __future__ import annotations

from rnn_dynamics.commandline import fail

from . import figure_specs
from .common import draw_ready, figure_parser, load_study


def main(argv=None) -> int:
    args = figure_parser("spectra", __doc__.splitlines()[0]).parse_args(argv)
    datasets = [load_study(path) for path in args.datasets]
    drawn, _ = draw_ready([spec for spec in figure_specs().values() if spec.per_dataset], datasets, args, args.out)
    if not drawn:
        fail("no spectral figure can be drawn: the datasets hold no probe variables (run without --probe-every 0)")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
