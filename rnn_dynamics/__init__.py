"""rnn-dynamics: spectral and Jacobian study of recurrent-network initialisations.

The public API, imported lazily so that reading a dataset or drawing a figure
(``rnn_dynamics.records``, ``rnn_dynamics.theory``) never loads torch: the init registry
(:mod:`.inits`), nonlinearities (:mod:`.nonlinearities`), recurrent stacks of every cell
type (:mod:`.models`), Jacobian products and gradient norms (:mod:`.jacobians`), spectra
(:mod:`.spectra`), fixed and slow points (:mod:`.fixed_points`), probes (:mod:`.probes`), tasks
(:mod:`.tasks`), configurations (:mod:`.config`), the dataset schema (:mod:`.records`), studies
(:mod:`.sweep`), the networks they trained (:mod:`.trained`), networks trained as torch.nn modules
(:mod:`.torch_nn`) and read back from their saved state_dicts (:mod:`.state_dicts`), and plug-ins kept outside
the package (:mod:`.plugins`).
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

#: public name -> the submodule that defines it
_EXPORTS = {
    "RecurrentStack": "models", "ElmanStack": "models", "LSTMStack": "models", "GRUStack": "models",
    "Trace": "models", "get_cell": "models", "list_cells": "models", "register_cell": "models",
    "get_init": "inits", "list_inits": "inits", "parse_init_spec": "inits", "register_init": "inits",
    "Nonlinearity": "nonlinearities", "get_nonlinearity": "nonlinearities",
    "register_nonlinearity": "nonlinearities",
    "Probe": "probes", "list_probes": "probes", "register_probe": "probes",
    "list_tasks": "tasks", "make_task": "tasks", "register_task": "tasks",
    "StudyConfig": "config", "TrainConfig": "config", "ConfigError": "config",
    "run_study": "sweep", "probe_study": "sweep", "trained_stack": "trained", "from_torch": "torch_nn",
    "stack_from_files": "state_dicts", "load_plugins": "plugins",
    "read_dataset": "records", "write_dataset": "records", "named_models": "records",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnn_dynamics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
