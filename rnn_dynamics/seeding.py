"""Generators seeded from coordinates, never from global state.

A cell's weights and a stack's batches depend only on the coordinates that name them
(seed, init spec, layer, ...), so a result is the same whatever order, process or
worker count computes it.
"""

from __future__ import annotations

import hashlib

import torch


def coordinate_seed(*parts) -> int:
    """A 63-bit integer determined by ``parts`` (their ``repr``), stable across runs and machines."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(*parts) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`coordinate_seed` of ``parts``."""
    gen = torch.Generator()
    gen.manual_seed(coordinate_seed(*parts))
    return gen
