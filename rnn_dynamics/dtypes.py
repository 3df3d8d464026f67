"""Registered floating-point types for training: name -> torch dtype."""

from __future__ import annotations

import torch

from .registry import Registry

DTYPES: Registry[torch.dtype] = Registry("dtype")
DTYPES.add("float32", torch.float32)
DTYPES.add("float64", torch.float64)


def get_dtype(name: str) -> torch.dtype:
    """The torch dtype registered as ``name``; an error listing the valid names otherwise."""
    return DTYPES.get(name)
