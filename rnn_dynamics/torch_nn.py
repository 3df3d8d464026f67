"""Networks trained elsewhere as ``torch.nn.RNN``, ``LSTM`` or ``GRU`` modules (or their one-layer ``...Cell``
versions), held in a recurrent stack, so that every analysis of this toolkit (step Jacobians and their products,
gradient norms, Lyapunov spectra, the probes) runs on them."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .models import RecurrentStack, get_cell, list_cells


def _torch_cells() -> dict[type, type[RecurrentStack]]:
    """torch.nn module type -> the registered cell type that holds its weights."""
    return {kind: cls for cls in map(get_cell, list_cells()) for kind in cls.torch_modules}


def _shape(module: nn.Module) -> dict:
    return {"input_size": module.input_size, "hidden_size": module.hidden_size,
            "num_layers": getattr(module, "num_layers", 1), "nonlinearity": getattr(module, "nonlinearity", "tanh")}


def _layer_tensors(module: nn.Module, layer: int) -> list[torch.Tensor]:
    """weight_ih, weight_hh, bias_ih and bias_hh of one layer, float64 on the CPU (zero biases where it has none);
    a ``...Cell`` module names them without the layer's suffix."""
    suffix = f"_l{layer}" if hasattr(module, "num_layers") else ""
    tensors = [getattr(module, name + suffix, None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    rows = tensors[0].shape[0]
    return [torch.zeros(rows, dtype=torch.float64) if tensor is None else tensor.detach().to("cpu", torch.float64)
            for tensor in tensors]


def from_torch(modules: nn.Module | Sequence[nn.Module], readouts: nn.Linear | Sequence[nn.Linear] | None = None,
               *, readout: str = "last", dtype: torch.dtype = torch.float64) -> RecurrentStack:
    """A stack whose M cells hold the weights of M trained ``torch.nn`` recurrent modules of one type and shape
    (``nn.RNN`` with its relu or tanh, ``nn.LSTM``, ``nn.GRU`` and their ``...Cell`` versions: every module a cell
    type declares in its ``torch_modules``), on the CPU in ``dtype``, each with its ``nn.Linear`` readout of the top
    layer's h (a zero readout of one output where ``readouts`` is None). The stack computes what the modules
    compute (a ``...Cell`` applied step by step), in the stack's conventions: time-major inputs (T, B, I) from zero
    states. Dropout between layers is a training device and is not carried over. ValueError in one line for a
    module it cannot hold."""
    modules = [modules] if isinstance(modules, nn.Module) else list(modules)
    if not modules:
        raise ValueError("no module given: pass a torch.nn.RNN, LSTM or GRU, or a list of them")
    cells = _torch_cells()
    valid = ", ".join(sorted(f"torch.nn.{kind.__name__}" for kind in cells))
    first = modules[0]
    if type(first) not in cells:
        raise ValueError(f"{type(first).__name__} is not a recurrent module this toolkit can hold; valid: {valid}")
    for index, module in enumerate(modules):
        if type(module) is not type(first) or _shape(module) != _shape(first):
            raise ValueError(f"module {index} ({type(module).__name__}, {_shape(module)}) differs from module 0 "
                             f"({type(first).__name__}, {_shape(first)}): a stack holds modules of one type and shape")
        if getattr(module, "bidirectional", False) or getattr(module, "proj_size", 0):
            raise ValueError(f"module {index} is {'bidirectional' if module.bidirectional else 'projected'}: "
                             "only unidirectional modules without proj_size can be held")
    readouts = [readouts] * len(modules) if readouts is None or isinstance(readouts, nn.Module) else list(readouts)
    if len(readouts) != len(modules):
        raise ValueError(f"{len(readouts)} readouts for {len(modules)} modules: give one nn.Linear per module")
    shape = _shape(first)
    outputs = {None if r is None else (r.in_features, r.out_features) for r in readouts}
    if len(outputs) > 1 or (None not in outputs and next(iter(outputs))[0] != shape["hidden_size"]):
        raise ValueError(f"the readouts must all be nn.Linear({shape['hidden_size']}, O) with one O, or None; got "
                         f"{sorted(outputs, key=str)}")
    output_size = 1 if readouts[0] is None else readouts[0].out_features
    stack = cells[type(first)](len(modules), shape["input_size"], shape["hidden_size"], output_size,
                               shape["nonlinearity"], shape["num_layers"], readout).to(dtype)
    for cell, (module, linear) in enumerate(zip(modules, readouts)):
        for layer in range(shape["num_layers"]):
            stack.load_torch_layer(cell, layer, *_layer_tensors(module, layer))
        if linear is not None:
            with torch.no_grad():
                stack.w_out[cell].copy_(linear.weight)
                stack.b_out[cell, 0].copy_(linear.bias if linear.bias is not None else torch.zeros(output_size))
    return stack
