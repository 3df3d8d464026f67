"""Argument types the benchmark scripts share: a size that must be positive, a device that must exist here."""

from __future__ import annotations

import argparse

import torch


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive integer")
    return value


def present_device(text: str) -> str:
    """cpu, cuda or cuda:K, refused where torch cannot name it or no GPU is visible."""
    try:
        kind = torch.device(text).type
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text}: not a device; valid: cpu, cuda, cuda:K") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU is visible to torch; use --device cpu")
    return text
