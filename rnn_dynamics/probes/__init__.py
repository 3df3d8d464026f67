"""Probes: one module per recorded quantity, each declaring its own variables, found by name.

A probe is a :class:`~rnn_dynamics.probes.base.Probe` registered with
:func:`register_probe`; every module in this folder is imported here, so a new probe is
one new file. The dataset schema is the union of the probes' variables
(:func:`rnn_dynamics.records.schema`).
"""

from __future__ import annotations

from ..registry import import_submodules
from .base import (PROBES, Probe, ProbeContext, ProbeSettings, StackShape, default_probes, list_probes,
                   register_probe)

import_submodules(__name__, __path__)

__all__ = ["PROBES", "Probe", "ProbeContext", "ProbeSettings", "StackShape", "default_probes", "list_probes",
           "register_probe"]
