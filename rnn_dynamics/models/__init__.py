"""Recurrent stacks of every cell type, found by name: one module per cell type in this folder.

:class:`~rnn_dynamics.models.base.RecurrentStack` is the protocol; ``elman``, ``lstm`` and
``gru`` register themselves with :func:`register_cell` when this package is imported,
and so does any new module added here.
"""

from __future__ import annotations

from ..registry import import_submodules
from .base import CELLS, RecurrentStack, Trace, get_cell, list_cells, register_cell

import_submodules(__name__, __path__)

from .elman import ElmanStack  # noqa: E402  (re-exported for the public API)
from .gru import GRUStack  # noqa: E402
from .lstm import LSTMStack  # noqa: E402

__all__ = ["CELLS", "RecurrentStack", "Trace", "get_cell", "list_cells", "register_cell",
           "ElmanStack", "LSTMStack", "GRUStack"]
