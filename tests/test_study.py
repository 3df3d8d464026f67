"""End-to-end: small studies through the library and through the command line."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from conftest import run_in_process
from rnn_dynamics import StudyConfig, TrainConfig, named_models, read_dataset, run_study, write_dataset
from rnn_dynamics.records import COMPRESS_FROM_BYTES, COMPRESSION
from rnn_dynamics.models import get_cell, list_cells
from rnn_dynamics.probes import PROBES, default_probes
from rnn_dynamics.records import SWEEP_DIMS, schema, summary_table
from rnn_dynamics.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    config = StudyConfig(seq_len=[12, 20], inits=["identity", "scaled_identity:scale=0.5", "gaussian:std=1e30"],
                         nonlinearities=["relu", "tanh"], seeds=[0], hidden=8, preset="tiny",
                         train=TrainConfig(steps=6, probe_every=3, clip=0.0), probe_batch=4)
    return run_study(config, progress=False)


def test_every_sweep_dim_is_always_there_in_the_fixed_order(study):
    assert [d for d in study.dims if d in SWEEP_DIMS] == list(SWEEP_DIMS) or set(SWEEP_DIMS) <= set(study.dims)
    assert study.sizes["cell"] == 1 and study.sizes["seed"] == 1 and study.sizes["seq_len"] == 2
    assert list(study["step"].values) == [0, 3, 6]
    assert list(study["init"].values) == ["identity", "scaled_identity:scale=0.5", "gaussian:std=1e30"]
    assert study["jacobian_norm"].dims == ("cell", "init", "nonlinearity", "seq_len", "seed", "layer", "step", "lag")
    assert study["eig_real"].dims[-4:] == ("layer", "gate", "step", "eig")
    assert study["time"].values[-1] == 20 and study["lag"].values[-1] == 20
    assert list(study["gate"].values) == ["recurrent"]
    off_by_default = {name for _, probe in PROBES.items() if not probe.default for name in probe.variables}
    assert off_by_default >= {"lyapunov", "jacobian_log_singular_values_lag"}
    assert set(study.data_vars) == set(schema()) - off_by_default
    assert "exponent" not in study.dims  # only a Lyapunov probe uses it


def test_every_variable_and_dim_is_described(study):
    variables = schema()
    for name, var in study.data_vars.items():
        assert var.attrs["long_name"] and "units" in var.attrs, name
        assert var.dims[5:] == variables[name].dims, name
    for dim in study.dims:
        assert study[dim].attrs["long_name"], dim
    assert study["test_metric"].attrs["metric"] == "mse"
    config = json.loads(study.attrs["config"])
    assert config["seq_len"] == [12, 20] and study.attrs["torch_version"] and study.attrs["created"]
    assert study.attrs["task"] == "adding" and study.attrs["metric_higher_is_better"] == 0


def test_lags_and_times_beyond_a_shorter_sequence_are_nan(study):
    first = study.sel(step=0, layer=0, seed=0, cell="elman")
    short = first.sel(init="identity", nonlinearity="tanh", seq_len=12)["jacobian_norm"]
    assert np.isnan(short.sel(lag=20)) and np.isfinite(short.sel(lag=12))
    assert np.isnan(first.sel(seq_len=12)["grad_norm"].sel(time=15)).all()
    scaled = first.sel(init="scaled_identity:scale=0.5", nonlinearity="tanh", seq_len=12, gate="recurrent")
    np.testing.assert_allclose(scaled["eig_real"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(scaled["singular_values"], 0.5, rtol=1e-6)


def test_diverged_cell_is_recorded_not_fatal(study):
    point = dict(cell="elman", init="gaussian:std=1e30", nonlinearity="relu")
    assert (study["diverged_step"].sel(point) == 0).all()
    assert np.isnan(study["test_loss"].sel(point)).all()
    assert np.isnan(study["diverged_step"].sel(init="identity")).all()
    assert np.isfinite(study["test_loss"].sel(init="identity")).all()


def test_baseline_is_scored_on_the_sequences_the_test_loss_scores(study):
    for seq_len in (12, 20):
        task = make_task("adding", seq_len=seq_len, seed=0, batch_size=16, preset="tiny")
        expected = ((task.test_y - 1.0) ** 2).double().mean().item()  # always predict 1, on the whole test set
        recorded = study["test_metric_baseline"].sel(seq_len=seq_len, cell="elman", init="identity",
                                                     nonlinearity="relu")
        assert recorded.item() == pytest.approx(expected, rel=1e-12)
    assert "always predict 1" in study["test_metric_baseline"].attrs["baseline"]


def test_default_scoring_puts_the_baseline_within_two_percent_of_one_sixth():
    """The default study scores the whole default test set (T = 50): its baseline is the population's to 2%."""
    config = StudyConfig()
    task = make_task(config.task, seq_len=config.seq_len[0], seed=config.seeds[0], batch_size=config.batch_size,
                     preset=config.preset)
    _, metric = task.baseline_scores(config.probe_test_size)
    assert metric == pytest.approx(1 / 6, rel=0.02)


def test_netcdf_round_trip_is_lossless(study, tmp_path):
    path = write_dataset(study, tmp_path / "sub" / "study.nc")
    assert read_dataset(path).identical(study)
    assert not list(path.parent.glob("*.tmp"))


def test_numeric_variables_are_stored_compressed(study, tmp_path):
    path = write_dataset(study, tmp_path / "study.nc")
    stored = read_dataset(path)
    for name, variable in stored.data_vars.items():
        large = variable.nbytes >= COMPRESS_FROM_BYTES
        assert bool(variable.encoding.get("zlib")) == bool(variable.encoding.get("shuffle")) == large, name
    for variable in stored.data_vars.values():  # as parts read back from disk carry it
        variable.encoding.update(COMPRESSION)
    again = read_dataset(write_dataset(stored, tmp_path / "again.nc"))
    assert again.identical(study)
    assert all(bool(v.encoding.get("zlib")) == (v.nbytes >= COMPRESS_FROM_BYTES) for v in again.data_vars.values())
    study.to_netcdf(tmp_path / "plain.nc", engine="netcdf4")
    assert path.stat().st_size <= 1.01 * (tmp_path / "plain.nc").stat().st_size  # small ones cost no more
    padded = np.full((4, 64, 256), np.nan)  # a large variable mostly NaN, as a gated dim of an Elman cell is
    padded[:, :8] = np.random.default_rng(0).normal(size=(4, 8, 256))
    large = xr.Dataset({"padded": (("a", "b", "c"), padded)})
    assert write_dataset(large, tmp_path / "large.nc").stat().st_size < 0.3 * padded.nbytes
    np.testing.assert_array_equal(read_dataset(tmp_path / "large.nc")["padded"].values, padded)


def test_written_files_respect_the_umask(study, tmp_path):
    old = os.umask(0o022)
    try:
        path = write_dataset(study, tmp_path / "study.nc")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_plain_xarray_reads_it_without_the_package(study, tmp_path):
    path = write_dataset(study, tmp_path / "study.nc")
    code = ("import sys; sys.modules['rnn_dynamics'] = None; import xarray as xr; "
            f"ds = xr.open_dataset({str(path)!r}); print(ds['jacobian_norm'].attrs['long_name'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "ds_T/ds_{T-k}" in out.stdout


def test_summary_table_lists_every_cell_and_marks_divergence(study):
    table = summary_table(study).splitlines()
    assert len(table) == 2 + 3 * 2 * 2  # header, rule, 3 inits x 2 nonlinearities x 2 lengths
    diverged = [line for line in table if "gaussian:std=1e30 | relu" in line]
    assert diverged and all("at step 0" in line for line in diverged)


# ---------------------------------------------------------------- known values through the dataset


def _known_study(**kwargs):
    base = dict(seq_len=[30], hidden=5, preset="tiny", seeds=[0], cells=["elman"],
                train=TrainConfig(steps=1, probe_every=1), probe_batch=3)
    base.update(kwargs)
    return run_study(StudyConfig(**base), progress=False)


def test_linear_half_identity_records_half_to_the_lag():
    ds = _known_study(inits=["scaled_identity:scale=0.5"], nonlinearities=["linear"])
    point = ds.sel(cell="elman", init="scaled_identity:scale=0.5", nonlinearity="linear", seq_len=30, seed=0,
                   layer=0, step=0)
    lags = ds["lag"].values
    np.testing.assert_allclose(point["jacobian_log_norm"], lags * math.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(point["jacobian_norm"], 0.5 ** lags, rtol=1e-6)
    np.testing.assert_allclose(point["jacobian_log_singular_values"], 30 * math.log(0.5), rtol=1e-6)


#: d_i = (16 - i) / 16: the eigenvalues of W = H D H^T / 16 (H the 16 x 16 Hadamard matrix), exact in float32.
GRADED = torch.arange(16, 0, -1, dtype=torch.float64) / 16


def _graded_hadamard_study(**fields):
    """A float32 study of one linear Elman cell whose W = H D H^T / 16 is exact in float32 (multiples of 1/256), so
    that ds_T/ds_{T-k} = W^k has the singular values d_i^k, spreading over 2.77 k nats."""
    from rnn_dynamics import inits

    hadamard = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(4):
        hadamard = torch.cat([torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)])

    @inits.register_init("test_graded_hadamard")
    def graded(shape, nonlinearity, generator):
        return hadamard @ torch.diag(GRADED) @ hadamard.T / 16

    try:
        ds = _known_study(inits=["test_graded_hadamard"], nonlinearities=["linear"], hidden=16, **fields)
    finally:
        inits.INITS.unregister("test_graded_hadamard")
    assert json.loads(ds.attrs["config"])["dtype"] == "float32"
    return ds.sel(cell="elman", init="test_graded_hadamard", nonlinearity="linear", seq_len=30, seed=0, layer=0,
                  step=0)


def test_a_float32_study_resolves_the_products_singular_values_as_far_as_float64():
    """ds_T/ds_0 = W^30 has singular values d_i^30, over 83 nats. The probe forms the product in float64 in a
    float32 study too: the ten values within its resolved_nats (28) of the largest come out exact; formed in
    float32, those beyond about 7-17 nats were rounding."""
    point = _graded_hadamard_study()
    recorded = point["jacobian_log_singular_values"]
    expected = 30 * np.log(GRADED.numpy())
    within = expected[0] - expected <= recorded.attrs["resolved_nats"]
    assert recorded.attrs["product_dtype"] == "float64" and within.sum() == 10
    np.testing.assert_allclose(recorded.values[within], expected[within], rtol=0, atol=0.01)


def test_the_full_product_spectrum_holds_every_singular_value_of_the_power():
    """ds_T/ds_0 = W^30: all sixteen d_i^30, over 83 nats, where jacobian_log_singular_values resolves ten."""
    point = _graded_hadamard_study(probes=["jacobian_products", "full_product_spectrum"])
    expected = 30 * np.log(GRADED.numpy())
    np.testing.assert_allclose(point["jacobian_log_singular_values_full"].values, expected, rtol=0, atol=1e-9)
    dense = point["jacobian_log_singular_values"].values
    assert np.abs(dense - expected).max() > 10  # beyond its resolved range, rounding


def test_the_lag_spectra_are_the_singular_values_of_every_power():
    """At lag k, ds_T/ds_{T-k} = W^k: singular values d_i^k, each within resolved_nats of the largest exact, the
    first equal to the norm the jacobian_products probe records."""
    point = _graded_hadamard_study(probes=["jacobian_products", "lag_spectra"])
    recorded = point["jacobian_log_singular_values_lag"]  # (sv, lag)
    lags = point["lag"].values
    expected = np.log(GRADED.numpy())[:, None] * lags[None, :]
    within = expected[0] - expected <= recorded.attrs["resolved_nats"]
    assert within.all(axis=0).sum() >= 2 and within.sum() > 16 * 3
    np.testing.assert_allclose(recorded.values[within], expected[within], rtol=0, atol=0.01)
    np.testing.assert_allclose(recorded.sel(sv=0).values, point["jacobian_log_norm"].values, rtol=0, atol=1e-12)


def test_the_full_lag_spectra_hold_every_singular_value_of_every_power():
    """At every lag k all sixteen d_i^k, down to 83 nats below the largest at k = 30, where
    jacobian_log_singular_values_lag resolves those within 28 nats."""
    point = _graded_hadamard_study(probes=["lag_spectra", "full_lag_spectra"])
    expected = np.log(GRADED.numpy())[:, None] * point["lag"].values[None, :]
    np.testing.assert_allclose(point["jacobian_log_singular_values_lag_full"].values, expected, rtol=0, atol=1e-9)
    assert np.abs(point["jacobian_log_singular_values_lag"].values - expected).max() > 10


@pytest.mark.parametrize("cell", list_cells())
def test_a_rank_one_update_of_one_block_is_what_weight_updates_records(cell):
    """W_0 + s u v^T (u, v unit vectors) in one block of one cell: that block's update has the singular values
    (s, 0, ...) and drift s / ||W_0||_F; every other block 0 and 0."""
    from conftest import make_stack

    from rnn_dynamics.probes import ProbeContext, ProbeSettings

    task = make_task("adding", seq_len=10, seed=0, batch_size=4, preset="tiny")
    model = make_stack(["orthogonal", "he"], "tanh", hidden=5, layers=2, cell=cell)
    initial = model.recurrent_blocks()
    gen = torch.Generator().manual_seed(1)
    u, v = (w / w.norm() for w in torch.randn(2, 5, generator=gen, dtype=torch.float64))
    gate = len(model.gates) - 1
    with torch.no_grad():
        model.w_hh[1][1, gate * 5:(gate + 1) * 5] += 0.3 * torch.outer(u, v)
    ctx = ProbeContext(model, task, 7, ProbeSettings((1,), probe_batch=2), ["orthogonal", "he"], initial)
    recorded = PROBES.get("weight_updates")(ctx)
    drift, values = recorded["weight_drift"].values, recorded["update_singular_values"].values  # (M, L, G), (.., sv)
    expected_drift = np.zeros_like(drift)
    expected_drift[1, 1, gate] = 0.3 / torch.linalg.matrix_norm(initial[1, 1, gate]).item()
    expected_values = np.zeros_like(values)
    expected_values[1, 1, gate, 0] = 0.3
    np.testing.assert_allclose(drift, expected_drift, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(values, expected_values, rtol=1e-12, atol=1e-15)


def test_a_study_records_no_drift_at_step_zero_and_the_drift_the_update_spectrum_implies(study):
    """||W - W_0||_F is the root of the sum of the update's squared singular values, and ||W_0||_F that of the
    step-0 block's (weight_spectra): the two probes agree, and at step 0 nothing has moved."""
    trained = study.sel(seq_len=12, nonlinearity="tanh", init=["identity", "scaled_identity:scale=0.5"])
    assert (trained["weight_drift"].sel(step=0) == 0).all() and (trained["weight_drift"].sel(step=6) > 0).all()
    assert (trained["update_singular_values"].sel(step=0) == 0).all()
    update = np.sqrt((trained["update_singular_values"] ** 2).sum("sv"))
    initial = np.sqrt((trained["singular_values"].sel(step=0) ** 2).sum("sv"))
    np.testing.assert_allclose(trained["weight_drift"], update / initial, rtol=1e-10)


@pytest.mark.parametrize("cell", list_cells())
def test_a_network_rebuilt_from_its_dataset_is_the_one_the_study_trained(cell):
    """With the parameters probe, trained_stack rebuilds any probe step's stack: at step 0 exactly the stack
    from_inits draws, and at the last step one that scores the test loss and metric the study recorded."""
    from rnn_dynamics import trained_stack

    config = StudyConfig(cells=[cell], inits=["orthogonal", "he"], nonlinearities=["relu", "tanh"], hidden=6,
                         seq_len=[10], layers=2, preset="tiny", probes=["default", "parameters"], probe_batch=2,
                         train=TrainConfig(steps=6, probe_every=3))
    ds = run_study(config, progress=False)
    assert ds.attrs["input_size"] == 2 and ds.attrs["output_size"] == 1 and ds.attrs["readout"] == "last"
    first, inits = trained_stack(ds, nonlinearity="tanh", step=0)
    drawn = get_cell(cell).from_inits(["orthogonal", "he"], 2, 6, 1, "tanh", 2, seed=0)
    assert inits == ["orthogonal", "he"] and first.w_out.dtype == torch.float32
    for rebuilt, original in zip(first.parameters(), drawn.parameters(), strict=True):
        assert torch.equal(rebuilt, original)
    last, _ = trained_stack(ds, nonlinearity="tanh")
    task = config.build_task(10, 0).to(torch.float32)
    loss, metric = task.evaluate(last, config.probe_test_size)
    recorded = ds.sel(cell=cell, nonlinearity="tanh", seq_len=10, seed=0, step=6)
    np.testing.assert_allclose(loss.numpy(), recorded["test_loss"].values, rtol=1e-6)
    np.testing.assert_allclose(metric.numpy(), recorded["test_metric"].values, rtol=1e-6)
    with pytest.raises(ValueError, match=r"the dataset has 2 values of nonlinearity: give nonlinearity= one of "
                                         r"\['relu', 'tanh'\]"):
        trained_stack(ds)
    with pytest.raises(ValueError, match="record it with --probes default parameters"):
        trained_stack(ds.drop_vars("parameters"), nonlinearity="tanh")


def test_a_float64_network_is_rebuilt_with_the_parameters_recorded_to_the_last_bit():
    """A float64 study: the rebuilt stack holds exactly the recorded float64 values (a float32 stack on the way in
    would round them by about 1e-8)."""
    from rnn_dynamics import trained_stack
    from rnn_dynamics.probes.parameters import flat_parameters

    config = StudyConfig(inits=["orthogonal", "he"], nonlinearities=["tanh"], hidden=5, seq_len=[8], preset="tiny",
                         probes=["parameters"], dtype="float64", train=TrainConfig(steps=3, probe_every=3))
    ds = run_study(config, progress=False)
    stack, _ = trained_stack(ds)
    recorded = ds["parameters"].sel(cell="elman", nonlinearity="tanh", seq_len=8, seed=0, step=3).values
    assert stack.w_out.dtype == torch.float64
    assert np.array_equal(flat_parameters(stack).numpy(), recorded)


def test_the_memory_check_counts_the_records_of_every_probe_step():
    """Each probe step of the parameters probe keeps M x P float64 values until the stack ends (P the parameters
    of one cell), twice while they are joined; the lag spectra M x L x S x lags. Nothing else grows the check."""
    from rnn_dynamics.sweep import plan_stacks, stack_bytes

    def needed(probes, all_lags=False):
        config = StudyConfig(inits=["identity", "he"], nonlinearities=["tanh"], hidden=10, seq_len=[20], layers=2,
                             probes=probes, all_lags=all_lags, train=TrainConfig(steps=50, probe_every=10))
        return stack_bytes(config, plan_stacks(config)[0])

    parameters = get_cell("elman").parameter_count(2, 10, 1, 2)  # the adding task: 2 inputs, 1 output
    base = needed(["default"])
    assert needed(["default", "parameters"]) - base == 2 * 6 * 8 * 2 * parameters  # 6 probe steps, 2 cells
    assert needed(["default", "lag_spectra"], all_lags=True) - needed(["default"], all_lags=True) == \
        2 * 6 * 8 * 2 * 2 * 10 * 20  # 2 cells, 2 layers, S = 10, 20 lags


def test_a_study_whose_records_would_not_fit_on_disk_is_refused(tmp_path):
    """Its parts and then its dataset: twice what the probes record over every stack and probe step."""
    from rnn_dynamics.sweep import check_disk

    config = StudyConfig(inits=["identity", "he"], nonlinearities=["relu", "tanh"], hidden=10, seq_len=[20],
                         probes=["default", "parameters"], train=TrainConfig(steps=50, probe_every=10))
    needed = 2 * 2 * 6 * 8 * 2 * get_cell("elman").parameter_count(2, 10, 1, 1)  # 2 stacks, 6 probes, 2 cells
    check_disk(config, tmp_path / "new" / "study.nc", free=needed)
    with pytest.raises(ValueError, match=r"the study's records need about .* on disk \(its parts, then the "
                                         rf"dataset\); .* is free in {tmp_path}: record less"):
        check_disk(config, tmp_path / "new" / "study.nc", free=needed - 1)
    check_disk(StudyConfig(), tmp_path / "default.nc", free=0)  # the default probes record little


def test_a_diverged_cell_is_left_out_of_the_rebuilt_stack():
    from rnn_dynamics import trained_stack

    config = StudyConfig(inits=["identity", "gaussian:std=1e30"], nonlinearities=["relu"], hidden=6, seq_len=[10],
                         preset="tiny", probes=["default", "parameters"], probe_batch=2,
                         train=TrainConfig(steps=4, probe_every=2, clip=0.0))
    ds = run_study(config, progress=False)
    assert ds["diverged_step"].sel(init="gaussian:std=1e30").item() <= 2
    stack, inits = trained_stack(ds)
    assert inits == ["identity"] and stack.n_cells == 1 and torch.isfinite(stack.w_hh[0]).all()


def test_identity_relu_with_positive_states_records_norm_one():
    ds = _known_study(inits=["identity"], nonlinearities=["relu"], bias=1.0)  # a_t = h_{t-1} + 1 + tiny > 0
    point = ds.sel(cell="elman", init="identity", nonlinearity="relu", seq_len=30, seed=0, layer=0, step=0)
    np.testing.assert_allclose(point["jacobian_norm"], 1.0, rtol=1e-6)
    assert point["active_fraction"].item() == 1.0


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_grad_norm_at_step_zero_equals_autograd_on_the_same_weights(cell):
    ds = _known_study(cells=[cell], inits=["orthogonal", "he"], nonlinearities=["tanh"], input_std=0.5,
                      output_std=0.5, dtype="float64", layers=2)
    task = make_task("adding", seq_len=30, seed=0, batch_size=16, preset="tiny")
    model = get_cell(cell).from_inits(["orthogonal", "he"], 2, 5, 1, "tanh", 2, seed=0, input_std=0.5,
                                      output_std=0.5).double()
    trace = model.trace(task.test_x[:, :3].double(), grad_wrt_states=True)
    loss = task.per_sample_loss(trace.outputs, task.test_y[:3].double()).sum()
    for layer in range(2):
        grads = torch.autograd.grad(loss, trace.states[layer], retain_graph=True)
        expected = torch.stack([g.norm(dim=-1) for g in grads]).mean(dim=-1)  # (T + 1, M)
        recorded = ds["grad_norm"].sel(cell=cell, nonlinearity="tanh", seq_len=30, seed=0, layer=layer, step=0)
        np.testing.assert_allclose(recorded.sel(init=["orthogonal", "he"]).values, expected.T.numpy(), rtol=1e-9)


def test_lyapunov_probe_recorded_with_known_values():
    config = StudyConfig(seq_len=[40], inits=["scaled_identity:scale=0.5", "orthogonal"], nonlinearities=["tanh"],
                         hidden=6, preset="tiny", train=TrainConfig(steps=2, probe_every=1), lyapunov=True)
    ds = run_study(config, progress=False)
    lyap = ds["lyapunov"].sel(cell="elman", seq_len=40, seed=0, layer=0, nonlinearity="tanh")
    assert lyap.dims == ("init", "step", "exponent") and list(ds["exponent"].values) == [1, 2, 3, 4, 5, 6]
    assert lyap.attrs["units"] == "nats per time step" and lyap.attrs["warmup_steps"] == "T // 10"
    # inputs of std 1e-3 keep tanh nearly linear: 0.5 I has every exponent ln 0.5, orthogonal every exponent 0
    np.testing.assert_allclose(lyap.sel(init="scaled_identity:scale=0.5", step=0), np.log(0.5), atol=1e-4)
    np.testing.assert_allclose(lyap.sel(init="orthogonal", step=0), 0.0, atol=1e-4)
    benettin = ds["lyapunov_benettin"].sel(cell="elman", seq_len=40, seed=0, layer=0, nonlinearity="tanh", step=0)
    np.testing.assert_allclose(benettin, lyap.sel(step=0, exponent=1), atol=0.02)


def test_lstm_records_gate_spectra_and_two_n_exponents():
    ds = _known_study(cells=["elman", "lstm"], inits=["orthogonal"], nonlinearities=["tanh"], lyapunov=True)
    assert list(ds["gate"].values) == ["recurrent", "input", "forget", "output", "candidate"]
    lstm = ds.sel(cell="lstm", init="orthogonal", nonlinearity="tanh", seq_len=30, seed=0, layer=0, step=0)
    np.testing.assert_allclose(lstm["singular_values"].sel(gate=["input", "forget", "output", "candidate"]).isel(
        sv=slice(0, 5)), 1.0, rtol=1e-6)  # an orthogonal block in every gate
    assert np.isnan(lstm["spectral_radius"].sel(gate="recurrent"))
    assert ds.sizes["exponent"] == 10 and np.isfinite(lstm["lyapunov"]).all()
    elman = ds.sel(cell="elman", init="orthogonal", nonlinearity="tanh", seq_len=30, seed=0, layer=0, step=0)
    assert np.isfinite(elman["lyapunov"].isel(exponent=slice(0, 5))).all()
    assert np.isnan(elman["lyapunov"].isel(exponent=slice(5, 10))).all()


def test_paper_models_run_exactly_their_four_combinations():
    ds = _known_study(cells=["elman"], models=["paper"], inits=StudyConfig().inits, seq_len=[10])
    labels = named_models(ds)
    assert set(labels) == {"IRNN", "RNN + tanh", "RNN + ReLU", "LSTM"}
    assert labels["IRNN"]["init"].item() == "identity" and labels["LSTM"]["cell"].item() == "lstm"
    exists = ds["train_loss"].notnull().any("iteration").sum().item()
    assert exists == 4  # not the 2 x 2 x 2 cross product
    assert ds["model"].sel(cell="lstm", init="identity", nonlinearity="relu").item() == ""


# ---------------------------------------------------------------- the command line


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "analyses.spectra", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_writes_a_dataset_and_a_summary(tmp_path):
    out = tmp_path / "res" / "s.nc"
    proc = _cli("--seq-len", "10", "--inits", "identity", "he", "--nonlinearities", "relu", "--hidden", "6",
                "--steps", "4", "--probe-every", "2", "--preset", "tiny", "--seeds", "0", "1", "--quiet",
                "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "| elman | he | relu | 10 | 1 |" in proc.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.nc"]  # the per-stack checkpoints are gone
    ds = xr.load_dataset(out)
    assert ds.sizes["seed"] == 2 and ds.sizes["seq_len"] == 1 and ds.sizes["cell"] == 1
    assert "--seq-len" in ds.attrs["command"]


def test_cli_probe_every_zero_records_only_losses(tmp_path, capsys):
    from analyses.spectra import main

    out = tmp_path / "s.nc"
    code, _, err = run_in_process(main, ["--seq-len", "10", "--inits", "identity", "--nonlinearities", "tanh",
                                         "--hidden", "4", "--steps", "3", "--probe-every", "0", "--preset", "tiny",
                                         "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    ds = xr.load_dataset(out)
    assert set(ds.data_vars) == {"train_loss", "diverged_step"} and ds.sizes["iteration"] == 3


def test_cli_one_step_probes_at_both_ends(tmp_path, capsys):
    from analyses.spectra import main

    out = tmp_path / "s.nc"
    code, _, err = run_in_process(main, ["--seq-len", "8", "--inits", "identity", "--nonlinearities", "relu",
                                         "--hidden", "4", "--steps", "1", "--preset", "tiny", "--quiet", "--out",
                                         str(out)], capsys)
    assert code == 0, err
    assert list(xr.load_dataset(out)["step"].values) == [0, 1]


@pytest.mark.parametrize("args, message", [
    (["--inits", "identity", "bogus"], "unknown init 'bogus'; valid inits: gaussian, he, identity"),
    (["--inits", "orthogonal:gain=abc"], "init 'orthogonal' parameter 'gain' must be a number, got 'abc'"),
    (["--task", "sorting"], "unknown task 'sorting'; valid tasks: adding"),
    (["--nonlinearities", "relu", "softplus"], "unknown nonlinearity 'softplus'; valid nonlinearities: linear, relu"),
    (["--cells", "elman", "rnn"], "unknown cell 'rnn'; valid cells: elman, gru, lstm"),
    (["--cells", "lstm", "--nonlinearities", "linear"],
     "cell 'lstm' cannot take nonlinearity 'linear'; valid for lstm"),
    (["--models", "irnn", "transformer"],
     "unknown model 'transformer'; valid models: irnn, irnn_scaled, lstm, rnn_relu, rnn_tanh, "
     "paper (irnn, rnn_tanh, rnn_relu, lstm)"),
    (["--models", "irnn", "--inits", "he"],
     "--models fixes cell, init and nonlinearity; it cannot be combined with inits"),
    (["--probes", "losses", "entropy"], "unknown probe 'entropy'; valid probes: activity"),
    (["--probes", "default", "entropy"], f"{sorted(PROBES.names())[-1]}, default ({', '.join(default_probes())})"),
    (["--cells", "lstm", "--forget-bias", "abc"], "argument --forget-bias: invalid float value: 'abc'"),
    (["--forget-bias", "2"], "--forget-bias is an option of cell 'lstm', which this study does not run"),
    (["--hidden", "0"], "--hidden must be a positive integer, got 0"),
    (["--hidden", "100000"], "needs about"),
    (["--probes", "default", "parameters", "--steps", "100000", "--probe-every", "1", "--hidden", "200"],
     "or record less (--probe-every, --probes)"),
    (["--layers", "-1"], "--layers must be a positive integer"),
    (["--seq-len", "0"], "--seq-len must be a positive integer"),
    (["--steps", "10", "--probe-every", "20"], "--probe-every must lie in 0..10"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--dtype", "float16"], "unknown dtype 'float16'; valid dtypes: float32, float64"),
    (["--seq-len", "20", "--lyapunov", "--lyapunov-warmup", "20"], "--lyapunov-warmup must lie in 0..19"),
    (["--out", "pyproject.toml/x.nc"], "is not writable"),
    (["--out", "/proc/nope/x.nc"], "is not writable"),
])
def test_cli_bad_input(args, message, tmp_path, monkeypatch, capsys):
    """In-process (the exit code and stderr are the same as from a shell; one subprocess case is below)."""
    from analyses import spectra

    monkeypatch.chdir(ROOT if args[0] == "--out" else tmp_path)
    before = set(Path(ROOT).rglob("*.nc")) | set(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        spectra.main([*args, "--quiet"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert set(Path(ROOT).rglob("*.nc")) | set(tmp_path.rglob("*")) == before


def test_a_bad_kernel_mode_stops_the_command_in_one_line(tmp_path, monkeypatch, capsys):
    from analyses import spectra

    monkeypatch.setenv("RNN_DYNAMICS_KERNELS", "fast")
    with pytest.raises(SystemExit) as exit_info:
        spectra.main(["--out", str(tmp_path / "study.nc"), "--quiet"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: RNN_DYNAMICS_KERNELS= 'fast' is not a kernel mode; valid modes: "
                                               "auto, on, off")
    assert not list(tmp_path.iterdir())


def test_cli_bad_input_from_a_shell(tmp_path):
    proc = _cli("--cells", "lstm", "--forget-bias", "abc", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: argument --forget-bias: invalid float value: 'abc' (see python -m analyses.spectra --help)"]
    assert not list(tmp_path.iterdir())


def test_cli_lists_registered_plugins(capsys):
    from analyses.spectra import main

    code, out, err = run_in_process(main, ["--list-inits", "--list-cells", "--list-tasks", "--list-models",
                                           "--list-probes"], capsys)
    assert code == 0, err
    assert "sequences from an .npz file (train_x, train_y, test_x, test_y, and any lengths); classes or values. " \
           "Default seq_len the data's" in out  # a summary wrapped over two lines of its docstring, joined
    assert "activity: The fraction of active (ReLU) or saturated (tanh) units. Variables: active_fraction" in out
    assert "orthogonal(gain=1.0):" in out and "scaled_identity(scale=0.01):" in out
    assert "lstm:" in out and "forget_bias=1.0" in out
    assert "adding: The adding problem" in out and "quick: CPU-sized" in out
    assert "irnn: IRNN: cell elman, relu, init identity" in out


def test_an_interrupted_study_resumes_without_rerunning_finished_stacks(tmp_path, monkeypatch):
    from rnn_dynamics import sweep
    from rnn_dynamics.checkpoints import StackCheckpoints

    config = StudyConfig(seq_len=[8], inits=["identity", "he"], nonlinearities=["relu", "tanh"], seeds=[0, 1],
                         hidden=4, preset="tiny", train=TrainConfig(steps=3, probe_every=3))
    reference = run_study(config, progress=False)
    real_run_stack, calls = sweep.run_stack, []

    def dies_on_third_stack(cfg, spec, on_step=None, snapshot=None):
        calls.append(spec.key())
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_stack(cfg, spec, on_step, snapshot)

    checkpoints = StackCheckpoints(tmp_path / "s.nc.parts", config.to_dict())
    monkeypatch.setattr(sweep, "run_stack", dies_on_third_stack)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, checkpoints=checkpoints)
    assert len(list(checkpoints.folder.glob("*.nc"))) == 2 and not list(checkpoints.folder.glob("*.tmp"))
    calls.clear()
    said = []
    resumed = run_study(config, progress=False, checkpoints=checkpoints, report=said.append)
    assert len(calls) == 2  # only the two stacks that had not finished
    assert said == [f"resuming from {checkpoints.folder}: 2 of 4 stacks loaded, 2 to run"]
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    other = StackCheckpoints(tmp_path / "s.nc.parts", {**config.to_dict(), "hidden": 5})
    assert other.folder != checkpoints.folder
    # a corrupt checkpoint is reported and its stack recomputed
    corrupt = sorted(checkpoints.folder.glob("*.nc"))[0]
    corrupt.write_bytes(b"not netcdf")
    calls.clear()
    with pytest.warns(UserWarning, match="could not be read"):
        again = run_study(config, progress=False, checkpoints=checkpoints)
    assert len(calls) == 1
    xr.testing.assert_identical(again.drop_attrs(), reference.drop_attrs())
    checkpoints.remove()
    assert not (tmp_path / "s.nc.parts").exists()
