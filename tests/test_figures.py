"""Every figure module on small studies built through the records schema: files written, errors in
one line naming what is wrong, and no torch imported."""

import importlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import run_in_process
from figures import figure_specs
from figures.__main__ import main as draw_everything
from figures.common import missing_variables
from rnn_dynamics import StudyConfig, TrainConfig, run_study, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def _study(task, **fields):
    base = dict(task=task, hidden=6, preset="tiny", train=TrainConfig(steps=4, probe_every=2), probe_batch=2)
    base.update(fields)
    return run_study(StudyConfig(**base), progress=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("results")
    write_dataset(_study("adding", seq_len=[10, 16], models=["paper"], seeds=[0, 1], lyapunov=True,
                         probes=["default", "lag_spectra", "fixed_points"]), folder / "adding.nc")
    write_dataset(_study("mnist", models=["irnn", "lstm"]), folder / "mnist.nc")
    write_dataset(_study("pmnist", models=["irnn"]), folder / "pmnist.nc")
    write_dataset(_study("npz", models=["irnn", "lstm"]), folder / "mine.nc")  # the data root's sequences.npz
    write_dataset(_study("ptb", task_options={"level": "char"}, models=["irnn", "rnn_tanh"], seq_len=[8]),
                  folder / "ptb_char.nc")
    write_dataset(_study("speech", models=["irnn", "irnn_scaled"], seq_len=[20], lyapunov=True), folder / "speech.nc")
    write_dataset(_study("adding", seq_len=[8], cells=["elman", "gru"], inits=["identity", "he"],
                         train=TrainConfig(steps=3, probe_every=0)), folder / "no_probes.nc")
    return folder


def _images(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def test_every_figure_of_a_results_folder(results, tmp_path, capsys):
    assert draw_everything([str(results), "--out", str(tmp_path)]) == 0
    written = _images(tmp_path)
    for name in ("adding", "mnist", "mine-learning", "speech-lyapunov_spectra"):
        assert written[f"{name}.png"] > 10_000 and written[f"{name}.pdf"] > 1_000
    assert "lm_speech.md" in written and "lm_speech.csv" in written and "adding-summary.csv" in written
    for spec in figure_specs().values():
        if spec.per_dataset:
            for stem in ("adding", "mnist", "ptb_char", "speech"):
                if missing_variables(xr.load_dataset(results / f"{stem}.nc"), spec.needs):
                    continue
                names = [n for n in written if n.startswith(f"{stem}-{spec.name}") and n.endswith(".png")]
                assert names and all(written[n] > 10_000 for n in names), (stem, spec.name)
    table = (tmp_path / "lm_speech.md").read_text()
    assert "| ptb (char) | IRNN |" in table and "| speech | IRNN (0.01 I) |" in table
    assert "skipped lyapunov of mnist.nc: no variable 'lyapunov'" in capsys.readouterr().err


def test_paper_figures_have_one_panel_per_length_and_per_dataset(results, tmp_path):
    from figures import adding, mnist

    assert adding.main([str(results / "adding.nc"), "--out", str(tmp_path)]) == 0
    assert mnist.main([str(results / "mnist.nc"), str(results / "pmnist.nc"), "--out", str(tmp_path)]) == 0
    figure = adding.draw([xr.load_dataset(results / "adding.nc").assign_attrs(source_file="adding")], None)["adding"]
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == ["T = 10", "T = 16"]
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels[:4] == ["IRNN", "RNN + tanh", "RNN + ReLU", "LSTM"] and "trivial baseline" in labels[-1]


def test_the_lag_spectra_figure_draws_the_shortest_and_longest_lag_and_marks_the_resolved_range(results):
    import numpy as np

    from figures import lag_spectra
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    assert lag_spectra.spread_lags(np.arange(1, 11)) == [1, 2, 3, 6, 10]  # 10 ** (i / 4), the nearest in log k
    figure = lag_spectra.draw(ds, _selection())  # T = 10, the first length: lags 1..10 of the 1..16 recorded
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["k = 1", "k = 2", "k = 3", "k = 6", "k = 10", "beyond float64's resolved range: may be rounding"]
    solid = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "-"]
    top = ds["jacobian_log_singular_values_lag"].sel(cell="elman", init="identity", nonlinearity="relu", seed=0,
                                                     seq_len=10, layer=0, sv=0, lag=1)  # the IRNN, panel 1
    assert solid[0].get_ydata()[0] == pytest.approx(float(top.isel(step=-1)) / np.log(10))


def test_full_lag_spectra_are_drawn_whole_with_the_zeroed_directions_counted_by_lag(results):
    """With full_lag_spectra recorded (here values put in its place, 0 to -900 nats, two -inf at lag 10), the
    figure draws those, none dotted as rounding, and counts the -inf directions at each drawn lag under the panel;
    a study holding only them still draws."""
    import numpy as np

    from figures import lag_spectra
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    resolved = ds["jacobian_log_singular_values_lag"]
    full = resolved.copy(data=np.broadcast_to(np.linspace(0.0, -900.0, ds.sizes["sv"])[:, None],
                                              resolved.shape).copy())
    held = resolved.notnull().any("sv")  # the lags each length holds
    full = full.where((full["sv"] < ds.sizes["sv"] - 2) | (full["lag"] != 10), -np.inf).where(held)
    ds = ds.drop_vars("jacobian_log_singular_values_lag").assign(jacobian_log_singular_values_lag_full=full)
    assert not missing_variables(ds, lag_spectra.FIGURE.needs)
    figure = lag_spectra.draw(ds, _selection())
    irnn = figure.axes[0]
    solid = [line.get_ydata() for line in irnn.get_lines() if line.get_linestyle() == "-"]
    np.testing.assert_allclose(solid[0], np.linspace(0.0, -900.0, ds.sizes["sv"]) / np.log(10))
    assert np.isnan(solid[-1][-2:]).all() and np.isfinite(solid[-1][:-2]).all()
    assert all(np.isnan(line.get_ydata()).all() for line in irnn.get_lines() if line.get_linestyle() == ":")
    assert irnn.get_xlabel().endswith("(zeroed at k = 1, 2, 3, 6, 10: 0, 0, 0, 0, 2)")
    assert not any("resolved range" in text.get_text() for text in figure.legends[0].get_texts())
    bare = ds.drop_vars("jacobian_log_singular_values_lag_full")
    assert missing_variables(bare, lag_spectra.FIGURE.needs) == [
        "'jacobian_log_singular_values_lag_full' or 'jacobian_log_singular_values_lag'"]


def test_one_init_under_two_nonlinearities_is_drawn_in_two_line_styles():
    """Unnamed grid points take their init family's colour, so their nonlinearity's line style tells them apart
    (named models keep solid lines, as the paper figure shows)."""
    from figures.common import NONLINEARITY_STYLES
    from figures.curves import learning_curves

    ds = _study("adding", seq_len=[8], inits=["orthogonal"], nonlinearities=["relu", "tanh"])
    figure = learning_curves([("T = 8", ds.isel(seq_len=0))], "test MSE", "")
    relu, tanh = [line for line in figure.axes[0].get_lines() if line.get_linestyle() != "--"]  # the baseline's
    assert relu.get_color() == tanh.get_color()
    assert (relu.get_linestyle(), tanh.get_linestyle()) == NONLINEARITY_STYLES[:2]


def test_an_npz_study_draws_its_own_metric_against_step(results):
    from figures import npz

    ds = xr.load_dataset(results / "mine.nc").assign_attrs(source_file="mine")
    figure = npz.draw([ds], None)["mine-learning"]
    axis = figure.axes[0]
    assert axis.get_ylabel() == "test accuracy" and axis.get_title() == "T = 12"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["IRNN", "LSTM", "trivial baseline (same test sequences)"]
    baseline = [line for line in axis.get_lines() if line.get_linestyle() == "--"][0]
    assert baseline.get_ydata()[0] == pytest.approx(float(ds["test_metric_baseline"].mean()))


def test_the_weight_update_figure_draws_the_resolved_values_and_says_how_far_and_in_how_many_directions(results):
    from figures import weight_updates
    from figures.common import load_study

    assert weight_updates.stable_rank(np.array([2.0, 0.0, 0.0])) == 1.0
    assert weight_updates.stable_rank(np.ones(5)) == pytest.approx(5.0) and np.isnan(weight_updates.stable_rank(
        np.zeros(3)))
    ds = load_study(results / "adding.nc")
    figure = weight_updates.draw(ds, _selection("--seed", "1"))
    point = ds.sel(cell="elman", init="identity", nonlinearity="relu", seq_len=10, seed=1, layer=0, gate="recurrent")
    last = int(ds["step"].values[-1])
    values = point["update_singular_values"].sel(step=last).values
    values = values[np.isfinite(values)]
    irnn = figure.axes[0]  # the paper's models in order: IRNN first
    assert irnn.get_title() == "IRNN"
    drawn = irnn.get_lines()[-1].get_ydata()
    kept = values > values.size * np.finfo(float).eps * values.max()
    np.testing.assert_allclose(drawn[kept], np.log10(values[kept]))
    assert np.isnan(drawn[~kept]).all()
    words = irnn.texts[0].get_text()
    assert f"moved {float(point['weight_drift'].sel(step=last)):.3g}" in words
    assert f"stable rank {weight_updates.stable_rank(values):.1f}" in words


def test_the_weight_drift_figure_draws_each_models_drift_after_step_zero(results):
    from figures import weight_drift
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    figure = weight_drift.draw(ds, _selection("--seq-len", "16"))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines)[:4] == ["IRNN", "RNN + tanh", "RNN + ReLU", "LSTM"]
    lstm = ds.sel(cell="lstm", init="gaussian:std=0.001", nonlinearity="tanh", seq_len=16, seed=0, layer=0,
                  gate="candidate")["weight_drift"].values
    np.testing.assert_array_equal(lines["LSTM"].get_ydata()[1:], lstm[1:])
    assert np.isnan(lines["LSTM"].get_ydata()[0]) and lstm[0] == 0


def test_the_activity_figure_draws_each_models_active_fraction_at_every_probe(results):
    from figures import activity
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    figure = activity.draw(ds, _selection("--seed", "1"))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines) == ["IRNN", "RNN + tanh", "RNN + ReLU", "LSTM"]
    for label, (cell, init, nonlinearity) in {"IRNN": ("elman", "identity", "relu"),
                                              "LSTM": ("lstm", "gaussian:std=0.001", "tanh")}.items():
        recorded = ds.sel(cell=cell, init=init, nonlinearity=nonlinearity, seq_len=10, seed=1, layer=0)
        np.testing.assert_array_equal(lines[label].get_xdata(), ds["step"].values)
        np.testing.assert_array_equal(lines[label].get_ydata(), recorded["active_fraction"].values)
    assert figure.axes[0].get_ylim() == (-0.02, 1.02)
    assert "seed 1 of 2, T = 10" in figure.texts[0].get_text()


def test_the_jacobian_decay_figure_draws_each_probe_steps_norm_against_lag_with_its_spread(results):
    from figures import jacobian_decay
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    figure = jacobian_decay.draw(ds, _selection("--seq-len", "16"))
    relu = figure.axes[2]  # the RNN + ReLU: its norms vary across the probe sequences
    assert relu.get_title() == "RNN + ReLU"
    recorded = ds.sel(cell="elman", init="gaussian:std=0.001", nonlinearity="relu", seq_len=16, seed=0, layer=0)
    assert recorded["jacobian_log_norm_std"].max() > 0.1
    lines = [line for line in relu.get_lines() if line.get_label().startswith("step ")]
    assert [line.get_label() for line in lines] == [f"step {s}" for s in ds["step"].values]
    for line, band, step in zip(lines, relu.collections, ds["step"].values):
        at_step = recorded.sel(step=step)
        norm = at_step["jacobian_log_norm"].values / math.log(10)
        spread = at_step["jacobian_log_norm_std"].values / math.log(10)
        np.testing.assert_array_equal(line.get_xdata(), ds["lag"].values)
        np.testing.assert_allclose(line.get_ydata(), norm, rtol=1e-12)
        edges = band.get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose([edges.min(), edges.max()], [np.nanmin(norm - spread), np.nanmax(norm + spread)],
                                   rtol=1e-12)
    assert any(list(line.get_ydata()) == [0, 0] for line in relu.get_lines())  # a norm of 1, for reference


def test_the_fixed_points_figure_draws_the_eigenvalues_at_each_search_end_filled_where_it_found_a_fixed_point(results):
    from figures import fixed_points
    from figures.common import choose, load_study, points

    ds = load_study(results / "adding.nc")
    args = _selection("--seq-len", "16")
    figure = fixed_points.draw(ds, args)
    chosen, _ = choose(ds, args)
    models = points(chosen)
    assert [ax.get_title() for ax in figure.axes[:len(models)]] == [point.label for point in models]
    found_both, merged = set(), set()
    for ax, point in zip(figure.axes, models):
        recorded = chosen.sel(point.where)
        counts, distinct = [], []
        for index, step in enumerate(reversed(ds["step"].values)):  # drawn from the last step to the first
            at = recorded.sel(step=step)
            fixed = (at["fixed_point_speed"] <= fixed_points.FIXED_SPEED).values
            found_both.update(fixed.tolist())
            eig = (at["fixed_point_eig_real"] + 1j * at["fixed_point_eig_imag"]).transpose("eig", "start").values
            for collection, chosen_searches in zip(ax.collections[2 * index:2 * index + 2], (fixed, ~fixed)):
                values = eig[:, chosen_searches].ravel()
                offsets = collection.get_offsets()
                np.testing.assert_allclose(offsets[:, 0] + 1j * offsets[:, 1], values[~np.isnan(values)], rtol=1e-12)
            counts.append(f"{int(fixed.sum())}/{fixed.size}")
            distinct.append(int((fixed & (at["fixed_point_same_as"].values == np.arange(fixed.size))).sum()))
            merged.add(bool(distinct[-1] < fixed.sum()))
        assert ax.texts[0].get_text() == f"fixed points: {counts[-1]} → {counts[0]}\n" \
                                         f"distinct: {distinct[-1]} → {distinct[0]}"
    assert found_both == {True, False} and merged == {True, False}  # both markers; points merged and not
    older = fixed_points.draw(ds.drop_vars("fixed_point_same_as"), args)  # written before searches were grouped
    assert "distinct" not in older.axes[0].texts[0].get_text()


def test_the_summary_table_gives_each_models_final_metric_and_its_dynamics_at_the_first_and_last_probe(results):
    from figures import summary
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    table = summary.draw([ds], None)["adding-summary"]
    rows = {(row[0], row[1]): dict(zip(table.columns, row)) for row in table.rows}
    assert len(rows) == 4 * 2 and "largest Lyapunov exponent (nats/step)" in table.columns  # 4 models x 2 lengths

    def numbers(cell: str) -> list[float]:
        return [float(part) for part in cell.replace("→", " ").replace(",", " ").strip("]").replace("[", " ").split()]

    irnn = ds.sel(cell="elman", init="identity", nonlinearity="relu", seq_len=10, layer=0)
    row = rows[("IRNN", 10)]
    final = irnn["test_metric"].isel(step=-1).values
    np.testing.assert_allclose(numbers(row["test mse (mean [range over seeds])"]),
                               [final.mean(), final.min(), final.max()], rtol=5e-3)
    assert row["longest lag k"] == max(k for k in ds["lag"].values if k <= 10) < 16
    reach = irnn["jacobian_log_norm"].sel(lag=row["longest lag k"]).mean("seed") / math.log(10)
    np.testing.assert_allclose(numbers(row["log10 ‖ds_T/ds_{T-k}‖"]), reach.isel(step=[0, -1]).values,
                               rtol=5e-3, atol=1e-3)
    lyapunov = irnn["lyapunov"].isel(exponent=0).mean("seed").isel(step=[0, -1]).values
    np.testing.assert_allclose(numbers(row["largest Lyapunov exponent (nats/step)"]), lyapunov, rtol=5e-3, atol=1e-3)
    held = np.hypot(irnn["fixed_point_eig_real"], irnn["fixed_point_eig_imag"]).max("eig").median("start")
    np.testing.assert_allclose(numbers(row["largest |λ| at the fixed and slow points (median over searches)"]),
                               held.mean("seed").isel(step=[0, -1]).values, rtol=5e-3)
    lstm = ds.sel(cell="lstm", init="gaussian:std=0.001", nonlinearity="tanh", seq_len=16, layer=0, gate="candidate")
    np.testing.assert_allclose(numbers(rows[("LSTM", 16)]["spectral radius"]),
                               lstm["spectral_radius"].mean("seed").isel(step=[0, -1]).values, rtol=5e-3)
    assert table.caption.startswith("adding (adding): final test metric")
    header = table.markdown().splitlines()[2]  # a | inside a header or cell is escaped: one column each
    assert header.replace("\\|", "").count("|") == len(table.columns) + 1 and "largest \\|λ\\|" in header


def test_lines_per_model_split_by_cell_type_once_colours_would_repeat(tmp_path):
    from figures import weight_drift
    from figures.common import PALETTE, load_study, model_panels

    write_dataset(_study("adding", seq_len=[8], cells=["elman", "gru"], hidden=10,  # a tanh random walk needs N >= 8
                         train=TrainConfig(steps=2, probe_every=1)),
                  tmp_path / "grid.nc")
    ds = load_study(tmp_path / "grid.nc").isel(seed=0, seq_len=0, layer=0)
    assert ds.sizes["init"] * ds.sizes["nonlinearity"] * 2 > len(PALETTE)
    figure = weight_drift.draw(load_study(tmp_path / "grid.nc"), _selection())
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["elman", "gru"]
    for ax in axes:  # every model of the panel's cell type, and only those
        assert len(ax.get_lines()) == ds.sizes["init"] * ds.sizes["nonlinearity"]
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert len(labels) == len(set(labels)) == 2 * ds.sizes["init"] * ds.sizes["nonlinearity"]
    gru_he = ds.sel(cell="gru", init="he", nonlinearity="tanh", gate="candidate")["weight_drift"].values
    drawn = {line.get_label(): line for line in axes[1].get_lines()}["gru tanh he"].get_ydata()
    np.testing.assert_array_equal(drawn[1:], gru_he[1:])
    _, few = model_panels(ds.sel(cell=["elman"], init=["identity", "he"]), 4, 3, "y")
    assert len(few) == 1 and len(few[0][1]) == 4  # within the palette: one panel


def _selection(*args: str):
    """The spectral figures' selection flags (--seed, --seq-len, ...) parsed from ``args``."""
    import argparse

    from figures.common import add_selection

    parser = argparse.ArgumentParser()
    add_selection(parser)
    return parser.parse_args(list(args))


def test_spectral_figures_say_which_seed_and_length_they_draw(results):
    from figures import eigenvalues
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    figure = eigenvalues.draw(ds, _selection("--seed", "1", "--seq-len", "16"))
    assert "seed 1 of 2, T = 16 (of 10, 16)" in figure._suptitle.get_text()


@pytest.mark.parametrize("written_by, product_dtype", [("this version", "float64"), ("an older version", "float32")])
def test_the_products_singular_values_beyond_the_resolved_range_are_drawn_apart(results, written_by, product_dtype):
    """Values further below the largest than RESOLVED_PRODUCT_NATS of the dtype the product was formed in go to the
    faint dotted line, the rest to the dashed one; the legend says so. The probe forms it in float64 and says so in
    the variable's attrs; a dataset without that attr (an older version's) formed it in the training dtype, float32
    in this study."""
    import math

    import numpy as np

    from figures import singular_values
    from figures.common import load_study
    from rnn_dynamics.records import RESOLVED_PRODUCT_NATS

    ds = load_study(results / "adding.nc")
    variable = ds["jacobian_log_singular_values"]
    assert variable.attrs["product_dtype"] == "float64" and variable.attrs["resolved_nats"] == 28.0
    spread = np.linspace(0.0, -60.0, ds.sizes["sv"])  # nats below the largest
    variable = variable.copy(data=np.broadcast_to(spread, variable.shape).copy())
    if written_by == "an older version":
        variable.attrs = {k: v for k, v in variable.attrs.items() if k not in ("product_dtype", "resolved_nats")}
    ds["jacobian_log_singular_values"] = variable
    figure = singular_values.draw(ds, _selection())
    dashed, dotted = [line for line in figure.axes[0].get_lines() if line.get_linestyle() in ("--", ":")][-2:]
    cut = -RESOLVED_PRODUCT_NATS[product_dtype] / math.log(10)
    assert np.nanmin(dashed.get_ydata()) >= cut > np.nanmax(dotted.get_ydata())
    assert np.isfinite(dashed.get_ydata()).sum() + np.isfinite(dotted.get_ydata()).sum() == ds.sizes["sv"]
    assert f"beyond {product_dtype}'s resolved range" in figure.legends[0].get_texts()[-1].get_text()


def test_a_full_product_spectrum_is_drawn_whole_and_its_zeroed_directions_counted(results):
    """With full_product_spectrum recorded, the figure draws those values, none of them dotted as rounding, and
    says under the panel how many directions the steps zeroed."""
    import math

    import numpy as np

    from figures import singular_values
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    full = ds["jacobian_log_singular_values"].copy(data=np.broadcast_to(
        np.linspace(0.0, -900.0, ds.sizes["sv"]), ds["jacobian_log_singular_values"].shape).copy())
    full[..., -2:] = -np.inf
    ds["jacobian_log_singular_values_full"] = full
    figure = singular_values.draw(ds, _selection())
    irnn = figure.axes[0]
    dashed = [line for line in irnn.get_lines() if line.get_linestyle() == "--"][-1]
    expected = np.linspace(0.0, -900.0, ds.sizes["sv"]) / math.log(10)
    np.testing.assert_allclose(dashed.get_ydata()[:-2], expected[:-2])
    assert np.isnan(dashed.get_ydata()[-2:]).all()
    assert all(np.isnan(line.get_ydata()).all() for line in irnn.get_lines() if line.get_linestyle() == ":")
    assert "2 zeroed at step" in irnn.get_xlabel()
    assert not any("resolved range" in text.get_text() for text in figure.legends[0].get_texts())


def test_the_lyapunov_spectra_show_the_finite_time_exponents_of_a_full_product_spectrum(results):
    """(1/T) ln sigma_i of ds_T/ds_0 at the last probe, as circles beside the QR exponents, when recorded."""
    import numpy as np

    from figures import lyapunov
    from figures.common import load_study

    ds = load_study(results / "adding.nc")
    full = ds["jacobian_log_singular_values"].copy(data=np.broadcast_to(
        -np.arange(ds.sizes["sv"], dtype=float), ds["jacobian_log_singular_values"].shape).copy())
    ds["jacobian_log_singular_values_full"] = full
    figure = lyapunov.spectrum_figure(ds, _selection("--seq-len", "16"))
    circles = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    size = len(circles[0].get_xdata())
    np.testing.assert_allclose(circles[0].get_ydata(), -np.arange(size) / 16)
    assert "(1/T) ln σ_i of ds_T/ds_0" in figure.legends[0].get_texts()[-1].get_text()


def _run(module, *args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("module, args, message", [
    ("figures.eigenvalues", ["missing.nc"], "no dataset at 'missing.nc'"),
    ("figures.eigenvalues", ["RESULTS/adding.nc", "--seq-len", "99"],
     "seq_len 99 is not in the dataset; valid: 10, 16"),
    ("figures.lyapunov", ["RESULTS/mnist.nc"], "has no variable 'lyapunov'"),
    ("figures.adding", ["RESULTS/mnist.nc"], "mnist.nc is a mnist study; figure adding draws adding"),
    ("figures.spectra", ["RESULTS/no_probes.nc"], "no spectral figure can be drawn: the datasets hold no probe"),
    ("figures.eigenvalues", ["RESULTS/adding.nc", "--layer", "x"], "argument --layer: invalid int value: 'x'"),
    ("figures.__main__", ["RESULTS/nowhere"], "is neither a folder of study datasets nor a .nc dataset"),
])
def test_bad_figure_input_in_one_line(module, args, message, results, tmp_path, capsys):
    """In this process (the exit code and stderr are what a shell sees; the case below runs from a shell)."""
    args = [a.replace("RESULTS", str(results)) for a in args]
    code, _, stderr = run_in_process(importlib.import_module(module).main, [*args, "--out", str(tmp_path / "figs")],
                                     capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert message in stderr
    assert not (tmp_path / "figs").exists()


def test_a_figure_or_table_that_fails_while_saving_leaves_no_file(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from figures.common import Table, save_all

    figure = plt.figure()

    def dies_half_way(self, fname, **kwargs):
        Path(fname).write_bytes(b"half a PNG")
        raise OSError("No space left on device")

    monkeypatch.setattr(type(figure), "savefig", dies_half_way)
    with pytest.raises(OSError, match="No space"):
        save_all(tmp_path, {"broken": figure})
    monkeypatch.setattr(Table, "_write_csv", lambda self, path: dies_half_way(None, path))
    with pytest.raises(OSError, match="No space"):
        save_all(tmp_path, {"table": Table(["a"], [[1]])})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]  # written whole before the CSV failed
    plt.close(figure)


def test_files_that_are_not_study_datasets_are_refused_in_one_line(tmp_path, capsys):
    from figures.eigenvalues import main

    (tmp_path / "text.nc").write_text("not a netCDF file")
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(tmp_path / "other.nc")
    proc = _run("figures.eigenvalues", "text.nc", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is not a netCDF file" in proc.stderr
    code, _, stderr = run_in_process(main, [str(tmp_path / "other.nc"), "--out", str(tmp_path / "figs")], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "is not an rnn-dynamics study dataset" in stderr and not (tmp_path / "figs").exists()


def _imports_torch(code, cwd) -> bool:
    proc = subprocess.run([sys.executable, "-c", f"{code}; import sys; print('torch' in sys.modules)"],
                          capture_output=True, text=True, cwd=cwd, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True"


def test_no_figure_module_imports_torch(results, tmp_path):
    modules = ", ".join(f"figures.{name}" for name in [*figure_specs(), "spectra", "__main__", "common"])
    assert not _imports_torch(f"import {modules}; from figures import figure_specs; figure_specs()", tmp_path)
    assert "usage: python -m figures.adding" in _run("figures.adding", "--help", cwd=tmp_path).stdout


def test_reading_a_dataset_and_the_theory_need_no_torch(results, tmp_path):
    code = (f"from rnn_dynamics import read_dataset, named_models, theory; "
            f"ds = read_dataset({str(results / 'adding.nc')!r}); named_models(ds); "
            "theory.gaussian_product_exponents(4, 0.5); theory.tanh_random_walk_gain(100)")
    assert not _imports_torch(code, tmp_path)


def test_reproduce_runs_every_study_then_every_figure_and_resumes(tmp_path, monkeypatch, capsys):
    """The one command of the figures issue at the tiny preset on the tests' data root, in this process: every
    study is written, then the figures are drawn from their folder (drawing itself is the test of a results folder
    above, and `python -m analyses.reproduce` runs as a command in the test of bad flags below); run again, it runs
    no study."""
    import figures.__main__
    from analyses import reproduce

    results = tmp_path / "results"
    command = ["--preset", "tiny", "--results", str(results), "--data-dir", os.environ["RNN_DYNAMICS_DATA"], "--quiet"]
    drawn = []
    monkeypatch.setattr(figures.__main__, "main", lambda argv: drawn.append(argv) or 0)
    assert reproduce.main(command) == 0
    studies = sorted(p.name for p in results.glob("*.nc"))
    assert studies == ["adding.nc", "mnist.nc", "pmnist.nc", "ptb_char.nc", "speech.nc"]
    assert "lyapunov" in xr.load_dataset(results / "speech.nc")
    assert "study speech: speech, preset tiny, irnn, rnn_tanh, rnn_relu, lstm, irnn_scaled" in capsys.readouterr().out
    assert drawn == [[str(results), "--out", str(results / "figures")]]
    assert reproduce.main(command) == 0
    assert capsys.readouterr().out.count("already holds this study") == 5
    assert drawn == 2 * [[str(results), "--out", str(results / "figures")]]
    assert sorted(p.name for p in results.glob("*.nc")) == studies


@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "error: --workers must be >= 0 (0: in this process), got -1"),
    (["--device", "tpu"], "error: --device 'tpu' is not a device; valid: cpu, cuda, cuda:N"),  # every study's
])
def test_reproduce_refuses_bad_flags_before_running(args, message, tmp_path):
    proc = _run("analyses.reproduce", "--preset", "tiny", *args, "--results", str(tmp_path / "r"),
                "--data-dir", os.environ["RNN_DYNAMICS_DATA"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert not (tmp_path / "r").exists()
