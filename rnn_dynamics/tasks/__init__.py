"""Task registry: every module in this folder registers its workloads by name.

A task is a :class:`~rnn_dynamics.tasks.base.Task` subclass registered with
``@register_task("name")``; :func:`make_task` builds one at a seq_len, seed, batch size and
preset. Modules are discovered from the folder at import, so a new workload is one new file.
"""

from __future__ import annotations

from ..registry import import_submodules
from .base import TASKS, Preset, Task, get_task, list_tasks, make_task, register_task

import_submodules(__name__, __path__)

__all__ = ["TASKS", "Preset", "Task", "get_task", "list_tasks", "make_task", "register_task"]
