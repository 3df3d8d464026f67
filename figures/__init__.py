"""Figure scripts: ``python -m figures.<name> DATASET... --out DIR`` turns study datasets into PNG and
vector PDF figures (and Markdown / CSV tables); ``python -m figures RESULTS_DIR --out DIR`` draws every
figure whose datasets are in RESULTS_DIR. Figures read datasets only, never models, and import no torch.

Each figure module declares a ``FIGURE`` (:class:`~figures.common.FigureSpec`): its name, the variables
it needs, the tasks it draws; :func:`figure_specs` finds them all, so a new figure is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil


def figure_specs() -> dict:
    """name -> FigureSpec of every figure module in this folder."""
    specs = {}
    for module in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FIGURE", None)
        if spec is not None:
            specs[spec.name] = spec
    return dict(sorted(specs.items()))
