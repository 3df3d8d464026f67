"""Task registry: every module in this folder registers its workloads by name.

A task factory is called as ``factory(seq_len=..., seed=..., batch_size=..., preset=...)``
and returns a :class:`~rnn_dynamics.tasks.base.Task`. Modules are discovered from the
folder at import, so a new workload is one new file.
"""

from __future__ import annotations

from ..registry import import_submodules
from .base import TASKS, Task, get_task_factory, list_tasks, make_task, register_task

import_submodules(__name__, __path__)

__all__ = ["TASKS", "Task", "get_task_factory", "list_tasks", "make_task", "register_task"]
