"""The spectral figure set of each dataset: every per-dataset figure whose variables it holds.

    python -m figures.spectra results/spectra.nc [more.nc ...] --out results/figures

eigenvalues, jacobian_norms, grad_norms, state_norms, singular_values, and lyapunov when the study
recorded it (python -m analyses.spectra --lyapunov); each is also a module of its own.
"""

from __future__ import annotations

from rnn_dynamics.commandline import fail

from . import figure_specs
from .common import figure_parser, load_study, save_all


def main(argv=None) -> int:
    args = figure_parser("spectra", __doc__.splitlines()[0]).parse_args(argv)
    datasets = [load_study(path) for path in args.datasets]
    specs = [spec for spec in figure_specs().values() if spec.per_dataset]
    if not any(all(name in ds for name in spec.needs) for spec in specs for ds in datasets):
        fail("no spectral figure can be drawn: the datasets hold no probe variables (run without --probe-every 0)")
    for spec in specs:
        ready = [ds for ds in datasets if all(name in ds for name in spec.needs)]
        for name, figure in (spec.draw(ready, args) if ready else {}).items():
            save_all(args.out, {name: figure})  # one figure open at a time
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
