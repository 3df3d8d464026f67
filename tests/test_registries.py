"""Loops over every registry, so that a new plug-in (init, nonlinearity, cell, probe, task, optimizer,
dtype, named model) is tested the day it is added."""

import numpy as np
import pytest
import torch

from rnn_dynamics import StudyConfig, TrainConfig, run_study
from rnn_dynamics.dtypes import DTYPES
from rnn_dynamics.inits import list_inits, make_recurrent
from rnn_dynamics.models import CELLS, list_cells
from rnn_dynamics.nonlinearities import NONLINEARITIES
from rnn_dynamics.optimizers import OPTIMIZERS
from rnn_dynamics.paper import MODELS
from rnn_dynamics.probes import PROBES, list_probes
from rnn_dynamics.records import schema
from rnn_dynamics.seeding import generator_for
from rnn_dynamics.tasks import list_tasks


def _tiny(**kwargs):
    base = dict(seq_len=[8], hidden=4, preset="tiny", inits=["orthogonal", "he"], nonlinearities=["tanh"],
                train=TrainConfig(steps=2, probe_every=1), probe_batch=2)
    base.update(kwargs)
    return run_study(StudyConfig(**base), progress=False)


@pytest.mark.parametrize("init", list_inits())
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES.names())
def test_every_init_under_every_nonlinearity(init, nonlinearity):
    w = make_recurrent(init, 16, nonlinearity, generator_for("registry", init, nonlinearity))
    assert w.shape == (16, 16) and w.dtype == torch.float64 and torch.isfinite(w).all()


@pytest.mark.parametrize("probe", list_probes())
@pytest.mark.parametrize("cell", list_cells())
def test_every_probe_on_every_cell_records_its_declared_variables(probe, cell):
    ds = _tiny(cells=[cell], probes=[probe])
    declared = PROBES.get(probe).variables
    assert set(declared) <= set(ds.data_vars)
    state_size = CELLS.get(cell).state_size(4)
    for name, variable in declared.items():
        values = ds[name]
        assert values.dims[5:] == variable.dims, name
        for dim, size in (("sv", state_size), ("exponent", state_size), ("eig", 4)):
            if dim in values.dims:
                values = values.isel({dim: slice(0, size)})
        if "sv" in variable.dims and "gate" in variable.dims:  # recurrent blocks: N singular values
            values = values.isel(sv=slice(0, 4))
        assert not np.isnan(values.values).any(), name
        assert np.isfinite(values.values).any(), name


@pytest.mark.parametrize("task", list_tasks())
@pytest.mark.parametrize("cell", list_cells())
def test_every_task_with_every_cell(task, cell):
    ds = _tiny(task=task, cells=[cell], seq_len=[], train=TrainConfig(steps=2, probe_every=2))  # the task's length
    assert np.isfinite(ds["test_loss"].sel(cell=cell)).all() and ds.attrs["task"] == task
    assert np.isfinite(ds["test_metric_baseline"].sel(cell=cell)).all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
@pytest.mark.parametrize("dtype", DTYPES.names())
def test_every_optimizer_and_dtype(optimizer, dtype):
    ds = _tiny(train=TrainConfig(steps=2, probe_every=1, optimizer=optimizer), dtype=dtype, probes=["losses"])
    assert np.isfinite(ds["train_loss"]).all()


@pytest.mark.parametrize("model", MODELS.names())
def test_every_named_model_is_labelled_in_its_study(model):
    ds = _tiny(models=[model], inits=StudyConfig().inits, nonlinearities=StudyConfig().nonlinearities,
               probes=["losses"])
    named = MODELS.get(model)
    assert ds["model"].sel(cell=named.cell, init=named.init, nonlinearity=named.nonlinearity).item() == named.label


def test_a_probe_whose_dims_nobody_describes_is_refused():
    from rnn_dynamics.probes import Probe, register_probe
    from rnn_dynamics.records import Variable

    class Unexplained(Probe):
        name = "test_unexplained"
        variables = {"x": Variable(("step", "widget"), "x", "1")}

    with pytest.raises(ValueError, match="probe 'test_unexplained' records dims widget that neither RECORD_DIMS nor "
                                         "its own dims describe"):
        register_probe(Unexplained)
    assert "test_unexplained" not in PROBES.names()


def test_the_schema_is_the_union_of_every_probe_and_the_runner():
    from rnn_dynamics.records import STACK_VARIABLES

    expected = set(STACK_VARIABLES)
    for _, probe in PROBES.items():
        assert not expected & set(probe.variables), "two plug-ins declare the same variable"
        expected |= set(probe.variables)
    assert set(schema()) == expected
