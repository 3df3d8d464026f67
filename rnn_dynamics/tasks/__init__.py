"""Task registry: every module in this folder registers its workloads by name.

A task factory is called as ``factory(seq_len=..., seed=..., batch_size=..., preset=...)``
and returns a :class:`~rnn_dynamics.tasks.base.Task`. Modules are discovered from the
folder at import, so a new workload is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Task, get_task_factory, list_tasks, make_task, register_task

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Task", "get_task_factory", "list_tasks", "make_task", "register_task"]
