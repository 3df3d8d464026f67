"""What every figure module shares: its command line, loading studies, choosing slices, one visual
language (a fixed colour per model and per init), saving PNG + vector PDF.

Figures read datasets only (never models) and import no torch. Every study dataset has the same
sweep dims (cell, init, nonlinearity, seq_len, seed), so nothing here branches on which exist.
Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from rnn_dynamics.commandline import OneLineParser, fail  # noqa: E402
from rnn_dynamics.paper import MODELS, PAPER  # noqa: E402
from rnn_dynamics.records import SWEEP_DIMS, atomic_write  # noqa: E402

DEFAULT_DATA = "results/spectra.nc"
DEFAULT_OUT = "results/figures"
STUDY_TITLE = "rnn-dynamics study"

# ---------------------------------------------------------------- the visual language

PALETTE = sns.color_palette("colorblind", 10)
#: Named models first (the paper's four in its order, then any other registered), then init families.
_MODEL_LABELS = [MODELS.get(name).label for name in PAPER] + \
    sorted(m.label for name, m in MODELS.items() if name not in PAPER)
_INIT_FAMILIES = ("identity", "scaled_identity", "orthogonal", "random_walk", "xavier", "he", "gaussian")


def colour(label: str):
    """The fixed colour of a named model's label or of an init spec's family (colour-blind palette);
    anything else gets a colour from a hash of its name, the same in every figure."""
    if label in _MODEL_LABELS:
        return PALETTE[_MODEL_LABELS.index(label) % len(PALETTE)]
    family = label.split(":")[0]
    if family in _INIT_FAMILIES:
        return PALETTE[(_INIT_FAMILIES.index(family) + 3) % len(PALETTE)]
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class Point:
    """One grid point that holds data: a cell type, an init and a nonlinearity, and how to name it."""

    cell: str
    init: str
    nonlinearity: str
    label: str

    @property
    def where(self) -> dict:
        return {"cell": self.cell, "init": self.init, "nonlinearity": self.nonlinearity}

    @property
    def colour(self):
        return colour(self.label if self.label in _MODEL_LABELS else self.init)


#: Line styles that tell apart the nonlinearities of grid points without a named model's label (their colour is
#: their init family's), in the order of the dataset's nonlinearity coordinate; dashed is the baseline's.
NONLINEARITY_STYLES = ("-", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))


def line_style(ds: xr.Dataset, point: Point):
    """Solid for a named model (its colour is its own); else the style of its nonlinearity in ``ds``."""
    if point.label in _MODEL_LABELS:
        return "-"
    order = [str(nonlinearity) for nonlinearity in ds["nonlinearity"].values]
    return NONLINEARITY_STYLES[order.index(point.nonlinearity) % len(NONLINEARITY_STYLES)]


def points(ds: xr.Dataset) -> list[Point]:
    """Every (cell, init, nonlinearity) that holds data (training losses; in a dataset of networks trained
    elsewhere, probe records), named models first in the paper's order."""
    grid = ("cell", "init", "nonlinearity")
    held = ds["train_loss"] if "train_loss" in ds else \
        next(v for v in ds.data_vars.values() if set(grid) <= set(v.dims))
    exists = held.notnull().any([d for d in held.dims if d not in grid])
    found = []
    for cell in ds["cell"].values:
        for init in ds["init"].values:
            for nonlinearity in ds["nonlinearity"].values:
                if bool(exists.sel(cell=cell, init=init, nonlinearity=nonlinearity)):
                    model = str(ds["model"].sel(cell=cell, init=init, nonlinearity=nonlinearity).values) \
                        if "model" in ds.coords else ""
                    found.append(Point(str(cell), str(init), str(nonlinearity),
                                       model or f"{cell} {nonlinearity} {init}"))
    order = {label: i for i, label in enumerate(_MODEL_LABELS)}
    return sorted(found, key=lambda p: order.get(p.label, len(order)))


def model_panels(ds: xr.Dataset, width: float, height: float, ylabel: str):
    """Panels for one line per model against training step: one panel while the palette tells every model
    apart, else one per cell type (shared y axis). Returns the figure and (axis, its models) per panel."""
    found = points(ds)
    cells = list(dict.fromkeys(point.cell for point in found))
    groups = [("", found)] if len(found) <= len(PALETTE) or len(cells) == 1 else \
        [(cell, [point for point in found if point.cell == cell]) for cell in cells]
    fig, axes = panels(len(groups), width=width, height=height, columns=3, sharey=True)
    for ax, (title, _) in zip(axes, groups):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step (updates)")
        ax.set_ylabel(ylabel if ax.get_subplotspec().is_first_col() else "")
    return fig, [(ax, group) for ax, (_, group) in zip(axes, groups)]


def per_step_figure(ds: xr.Dataset, args, what: str, ylabel: str, values_of) -> tuple:
    """One line per model of ``values_of(model's slice)`` (one value per probe step) against training step, on the
    chosen slice of ``ds`` (:func:`model_panels`, the legend below). Returns the figure, its first axis (the panels
    share their y axis) and the lines drawn."""
    chosen, words = choose(ds, args)
    fig, groups = model_panels(chosen, width=5.2, height=3.6, ylabel=ylabel)
    steps, handles = chosen["step"].values, {}
    for ax, models in groups:
        for point in models:
            handles[point.label], = ax.plot(steps, values_of(chosen.sel(point.where)), color=point.colour,
                                            ls=line_style(chosen, point), lw=1.5, label=point.label)
    legend_below(fig, handles)
    fig.suptitle(title_of(ds, what, words), fontsize=10)
    return fig, groups[0][0], list(handles.values())


def legend_below(fig, handles: dict) -> None:
    """One legend for the whole figure, below its panels (``handles``: label -> artist)."""
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(5, len(handles)),
               fontsize=8, frameon=False)


# ---------------------------------------------------------------- command line and data


@dataclass
class FigureSpec:
    """A figure module's declaration: what it draws from, and how (for python -m figures RESULTS_DIR)."""

    name: str
    needs: tuple  # variable names; a tuple of names among them: any one will do
    draw: Callable[[list[xr.Dataset], argparse.Namespace], dict]
    tasks: tuple[str, ...] | None = None  # None: any task
    per_dataset: bool = True  # per-dataset figures also take the slice flags (--seed, --seq-len, ...)
    description: str = ""
    over_steps: bool = False  # draws against training step: nothing to draw from a dataset of one probe step


def unready(ds: xr.Dataset, spec: FigureSpec) -> str | None:
    """Why ``spec`` cannot be drawn from ``ds`` (the variable it lacks; one probe step for a figure against
    training step, as in a dataset of networks trained elsewhere), or None where it can."""
    missing = missing_variables(ds, spec.needs)
    if missing:
        return f"no variable {missing[0]}"
    if spec.over_steps and ds.sizes.get("step", 0) < 2:
        return "one probe step, and it draws against training step"
    return None


def figure_parser(module: str, description: str, selection: bool = True) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m figures.{module}", description=description)
    p.add_argument("datasets", nargs="*", default=[DEFAULT_DATA], metavar="DATASET",
                   help=f"study datasets (default {DEFAULT_DATA})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    if selection:
        add_selection(p)
    return p


def add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="seed to draw (default: the first; said in the title)")
    p.add_argument("--seq-len", type=int, default=None, help="seq_len to draw (default: the first; said in the title)")
    p.add_argument("--layer", type=int, default=0, help="layer to draw (default 0)")
    p.add_argument("--gate", default=None, help="recurrent block of gated cells (default: candidate)")


def missing_variables(ds: xr.Dataset, needs: tuple) -> list[str]:
    """The entries of ``needs`` that ``ds`` lacks, quoted; an entry that is a tuple of names is met by any one of
    them (a figure that draws the exact variable where it was recorded, the resolved one otherwise)."""
    alternatives = [(need,) if isinstance(need, str) else tuple(need) for need in needs]
    return [" or ".join(map(repr, names)) for names in alternatives if not any(name in ds for name in names)]


def load_study(path: str | Path, needs: tuple = ()) -> xr.Dataset:
    """Open a study dataset, or exit 2 with one line saying what is wrong with ``path``."""
    path = Path(path)
    if not path.is_file():
        fail(f"no dataset at {str(path)!r}; run `python -m analyses.spectra` first")
    try:
        ds = xr.load_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as err:
        fail(f"{str(path)!r} is not a netCDF file ({str(err).splitlines()[0]})")
    if ds.attrs.get("title") != STUDY_TITLE or not set(SWEEP_DIMS) <= set(ds.dims):
        fail(f"{str(path)!r} is not an rnn-dynamics study dataset (written by python -m analyses.spectra)")
    missing = missing_variables(ds, needs)
    if missing:
        fail(f"{str(path)!r} has no variable {missing[0]}; "
             + ("it was run with --probe-every 0" if "step" not in ds.dims else "record it when running the study"))
    ds.attrs["source_file"] = path.stem
    return ds


def choose(ds: xr.Dataset, args: argparse.Namespace) -> tuple[xr.Dataset, str]:
    """One seed, seq_len and layer of ``ds`` and the words that say which; exit 2 on a bad choice."""
    chosen = {}
    for dim, value in (("seed", getattr(args, "seed", None)), ("seq_len", getattr(args, "seq_len", None)),
                       ("layer", getattr(args, "layer", 0))):
        if dim not in ds.dims:
            continue
        valid = list(ds[dim].values)
        pick = valid[0] if value is None else value
        if pick not in valid:
            fail(f"{dim} {pick} is not in the dataset; valid: {', '.join(map(str, valid))}")
        chosen[dim] = pick
    words = [f"seed {chosen['seed']}" + (f" of {ds.sizes['seed']}" if ds.sizes["seed"] > 1 else ""),
             f"T = {chosen['seq_len']}" + (f" (of {', '.join(map(str, ds['seq_len'].values))})"
                                           if ds.sizes["seq_len"] > 1 else "")]
    if "layer" in chosen and ds.sizes.get("layer", 1) > 1:
        words.append(f"layer {chosen['layer']}")
    return ds.sel(chosen), ", ".join(words)


def gate_of(cell: xr.Dataset, requested: str | None, recorded: str = "spectral_radius") -> xr.Dataset:
    """One model's slice at the recurrent block drawn: the requested gate, else the candidate (the
    block that transforms h like an Elman W_hh), else the cell's only block (the gates it has: those where
    the per-block variable ``recorded`` is not all NaN)."""
    if "gate" not in cell.dims:
        return cell
    present = [str(g) for g in cell["gate"].values if cell[recorded].sel(gate=g).notnull().any()]
    pick = requested if requested in present else ("candidate" if "candidate" in present else present[0])
    return cell.sel(gate=pick)


def title_of(ds: xr.Dataset, what: str, chosen: str) -> str:
    task, source = ds.attrs.get("task", "?"), ds.attrs.get("source_file", "")
    return f"{what} — {task}{f' ({source})' if source and source != task else ''}, {chosen}"


def panels(count: int, width: float = 3.2, height: float = 2.8, columns: int = 4, **kwargs):
    """A grid of ``count`` panels (hiding the spare ones), laid out without overlaps."""
    columns = min(columns, count)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False,
                             layout="constrained", **kwargs)
    flat = axes.ravel()
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def mark_divergence(ax, point_ds: xr.Dataset, x, y, colour_) -> str:
    """An x at a diverged run's last finite value; the legend suffix that says so (empty if it did not)."""
    step = point_ds["diverged_step"].values if "diverged_step" in point_ds else np.nan
    step = float(np.nanmin(step)) if np.any(np.isfinite(step)) else np.nan
    if np.isnan(step):
        return ""
    finite = np.isfinite(np.asarray(y, dtype=float))
    if finite.any():
        last = np.flatnonzero(finite)[-1]
        ax.plot(np.asarray(x)[last], np.asarray(y)[last], "x", color=colour_, ms=8, mew=2)
    return f" (diverged at step {int(step)})"


def finite(values) -> np.ndarray:
    """``values`` as floats with -inf / inf replaced by NaN (for plotting)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def save_all(out_dir: str | Path, figures: dict) -> int:
    """Save each figure as NAME.png and NAME.pdf (tables as NAME.md and NAME.csv) in ``out_dir``, each file written
    whole or not at all (:func:`~rnn_dynamics.records.atomic_write`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, item in figures.items():
        if isinstance(item, Table):
            item.write(out_dir / name)
            continue
        for path in (out_dir / f"{name}.png", out_dir / f"{name}.pdf"):
            atomic_write(path, lambda tmp: item.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight"))
            item.set_layout_engine("none")  # the layout the PNG got serves the PDF: one layout pass, not two
            print(f"wrote {path}")
        plt.close(item)
    return 0


@dataclass
class Table:
    """Rows of named columns, written as Markdown and CSV."""

    columns: list[str]
    rows: list[list]
    caption: str = ""

    def markdown(self) -> str:
        def line(cells) -> str:  # a | inside a cell (|λ|, a user's init spec) escaped, so it splits no column
            return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

        lines = [line(self.columns), line("---" for _ in self.columns)] + [line(row) for row in self.rows]
        return (self.caption + "\n\n" if self.caption else "") + "\n".join(lines) + "\n"

    def write(self, base: Path) -> None:
        atomic_write(base.with_suffix(".md"), lambda tmp: Path(tmp).write_text(self.markdown()))
        atomic_write(base.with_suffix(".csv"), self._write_csv)
        print(f"wrote {base.with_suffix('.md')}\nwrote {base.with_suffix('.csv')}")

    def _write_csv(self, path) -> None:
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            writer.writerows(self.rows)


def run(spec: FigureSpec, argv=None) -> int:
    """The command line of one figure module: load its datasets, draw, save."""
    args = figure_parser(spec.name, spec.description, spec.per_dataset).parse_args(argv)
    datasets = [load_study(path, spec.needs) for path in args.datasets]
    for ds in datasets:
        if spec.tasks is not None and ds.attrs.get("task") not in spec.tasks:
            fail(f"{ds.attrs['source_file']}.nc is a {ds.attrs.get('task')} study; figure {spec.name} draws "
                 f"{', '.join(spec.tasks)}")
        if unready(ds, spec):
            fail(f"figure {spec.name} cannot be drawn from {ds.attrs['source_file']}.nc: {unready(ds, spec)}")
    return save_all(args.out, spec.draw(datasets, args))


def main_for(spec: FigureSpec):
    """The ``main(argv)`` of a figure module: :func:`run` of its spec."""

    def main(argv=None) -> int:
        return run(spec, argv)

    return main


def draw_ready(specs, datasets: list[xr.Dataset], args, out_dir) -> tuple[int, list[str]]:
    """Draw every spec from the datasets of its tasks that hold its variables, saving figure by figure (one
    open at a time); returns how many were drawn and, for the rest, why each dataset could not serve."""
    drawn, skipped = 0, []
    for spec in specs:
        wanted = [ds for ds in datasets if spec.tasks is None or ds.attrs.get("task") in spec.tasks]
        ready = []
        for ds in wanted:
            reason = unready(ds, spec)
            if reason:
                skipped.append(f"{spec.name} of {ds.attrs['source_file']}.nc: {reason}")
            else:
                ready.append(ds)
        for name, item in (spec.draw(ready, args) if ready else {}).items():
            save_all(out_dir, {name: item})
            drawn += 1
    return drawn, skipped
