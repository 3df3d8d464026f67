"""Trained recurrent modules read back from a file ``torch.save`` wrote (a model's ``state_dict``, or a checkpoint
dict that holds one) or a safetensors file. The recurrent ``torch.nn`` module (any that a registered cell type
holds) is rebuilt from the names and shapes of its tensors, its readout from an ``nn.Linear``'s, so that
:func:`~rnn_dynamics.from_torch` can hold them. ``torch.save`` files are read with ``weights_only=True`` and
safetensors files hold only tensors: nothing in either is executed."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .torch_nn import from_torch

#: A recurrent module's hidden-to-hidden weight: ``PREFIX.weight_hh`` (a ...Cell) or ``PREFIX.weight_hh_lK``.
_RECURRENT_WEIGHT = re.compile(r"^(?P<prefix>(?:.*\.)?)weight_hh(?:_l\d+)?$")
_TOP_LEVEL = "(top level)"
#: The nonlinearities torch.nn.RNN takes; its state_dict does not say which.
_RNN_NONLINEARITIES = ("relu", "tanh")


def _flatten(value, prefix: str, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        out[prefix.rstrip(".")] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", out)
    return out


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the file, named by its dotted path through nested dicts (``{'model': {'rnn.weight_hh_l0':
    ...}, 'epoch': 9}`` gives ``model.rnn.weight_hh_l0``); other values are left out. A safetensors file (known by
    its first bytes, whatever its name) gives its tensors under their own names. ValueError in one line for a
    missing file or one that is neither a safetensors file nor a tensors-only ``torch.save`` file (a pickled
    module, say)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    if _is_safetensors(path):
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():  # a file of another pickle protocol warns before it fails, or loads
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's unpicklers raise many kinds on a file they cannot read
        if isinstance(err, pickle.UnpicklingError) and "unsupported global" in str(err).lower():
            raise ValueError(f"{str(path)!r} holds more than tensors (a pickled module or object?): save "
                             "model.state_dict() instead and pass that file") from None
        raise ValueError(f"{str(path)!r} is neither a file torch.save wrote nor a safetensors file "
                         f"({_reason(err)})") from None
    return _flatten(saved, "", {})


def _is_safetensors(path: Path) -> bool:
    """Whether the file opens as safetensors files do: the 8-byte little-endian length of a JSON header that the
    file holds, then the header's ``{`` (a ``torch.save`` file opens with a zip or pickle header instead)."""
    with path.open("rb") as file:
        head = file.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file by name; ValueError in one line for one cut short or garbled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except SafetensorError as err:
        raise ValueError(f"{str(path)!r} is not a whole safetensors file ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    """What a failed load says, on one line: the weights-only unpickler's own error where it gives one (its first
    line is a general note on weights_only), else the first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    marker = "WeightsUnpickler error:"
    detail = next((after for line, after in zip(lines, lines[1:]) if line.endswith(marker)), None)
    return f"{type(err).__name__}: {detail or (lines[0] if lines else '')}".rstrip(": ")


def _show(prefix: str) -> str:
    return prefix.rstrip(".") or _TOP_LEVEL


def recurrent_prefixes(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The dotted names of the recurrent modules among ``tensors`` ('' for a module's own state_dict)."""
    found = [match["prefix"].rstrip(".") for match in map(_RECURRENT_WEIGHT.match, tensors) if match]
    return list(dict.fromkeys(found))


def _holdable_modules() -> list[type[nn.Module]]:
    from .models import get_cell, list_cells

    return [kind for name in list_cells() for kind in get_cell(name).torch_modules]


def _under(tensors: dict[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    prefix = f"{module}." if module else ""
    return {name[len(prefix):]: tensor for name, tensor in tensors.items()
            if name.startswith(prefix) and "." not in name[len(prefix):]}


def _build(kind: type[nn.Module], own: dict[str, torch.Tensor], nonlinearity: str) -> nn.Module | None:
    """A ``kind`` module shaped as ``own`` says (its sizes, layers, biases, directions, projection), holding its
    weights in float64, or None where ``kind``'s parameters cannot have those names and shapes."""
    weight_ih = own.get("weight_ih_l0", own.get("weight_ih"))
    weight_hh = own.get("weight_hr_l0", own.get("weight_hh_l0", own.get("weight_hh")))
    if weight_ih is None or weight_hh is None or weight_ih.dim() != 2 or weight_hh.dim() != 2:
        return None
    shape = {"input_size": weight_ih.shape[1], "hidden_size": weight_hh.shape[1], "bias": any("bias" in n for n in own)}
    if issubclass(kind, nn.RNNBase):
        projection = own.get("weight_hr_l0")
        shape.update(num_layers=sum(bool(re.fullmatch(r"weight_hh_l\d+", n)) for n in own),
                     bidirectional=any(n.endswith("_reverse") for n in own),
                     **({} if projection is None else {"proj_size": projection.shape[0]}))
    try:
        module = kind(**shape)
        if hasattr(module, "nonlinearity"):  # nn.RNN fixes its kernel by it as it is made
            module = kind(**shape, nonlinearity=nonlinearity)
    except (TypeError, ValueError):
        return None
    if {n: tuple(t.shape) for n, t in module.state_dict().items()} != {n: tuple(t.shape) for n, t in own.items()}:
        return None
    module.double().load_state_dict(own)  # float64 first: float64 weights are not rounded to float32 on the way in
    return module


def module_from_tensors(tensors: dict[str, torch.Tensor], module: str | None = None,
                        nonlinearity: str | None = None, input_map: torch.Tensor | None = None) -> nn.Module:
    """The recurrent ``torch.nn`` module named ``module`` in ``tensors`` (the one there is, where None), rebuilt
    with its weights in float64: whichever module a registered cell type holds has parameters of exactly those
    names and shapes. ``nonlinearity`` (relu or tanh) is required for a module that takes one (``nn.RNN``), whose
    state_dict does not record it, and refused for one that does not. ``input_map`` (E, V) folds what feeds the
    module into its first input weights, W_ih -> W_ih @ input_map (an embedding's rows, transposed: the module then
    takes one-hot tokens, as an embedding lookup fed it). ValueError in one line otherwise."""
    found = recurrent_prefixes(tensors)
    if not found:
        some = ", ".join(list(tensors)[:6]) or "none"
        raise ValueError(f"no recurrent weights (a name ending in weight_hh or weight_hh_l0) among the tensors: {some}")
    if module is None:
        if len(found) > 1:
            raise ValueError(f"{len(found)} recurrent modules: name one with --module; valid: "
                             f"{', '.join(map(_show, found))}")
        module = found[0]
    module = module.rstrip(".")
    if module not in found:
        raise ValueError(f"--module {module!r} holds no recurrent weights; valid: {', '.join(map(_show, found))}")
    own = _under(tensors, module)
    if input_map is not None:
        first = "weight_ih_l0" if "weight_ih_l0" in own else "weight_ih"
        if own[first].shape[1] != input_map.shape[0]:
            raise ValueError(f"the embedding's vectors have {input_map.shape[0]} entries but {_show(module)} takes "
                             f"inputs of {own[first].shape[1]}")
        own[first] = own[first].double() @ input_map.double()
    for kind in _holdable_modules():
        built = _build(kind, own, nonlinearity if nonlinearity in _RNN_NONLINEARITIES else "tanh")
        if built is None:
            continue
        takes_nonlinearity = hasattr(built, "nonlinearity")
        if takes_nonlinearity and nonlinearity not in _RNN_NONLINEARITIES:
            given = "" if nonlinearity is None else f" ({nonlinearity!r} is not one)"
            raise ValueError(f"a torch.nn.{kind.__name__}'s state_dict does not record its nonlinearity: give "
                             f"--nonlinearity relu or tanh{given}")
        if not takes_nonlinearity and nonlinearity is not None:
            raise ValueError(f"{_show(module)} is a torch.nn.{kind.__name__}, which takes no nonlinearity: drop "
                             "--nonlinearity")
        return built
    shapes = ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in own.items())
    valid = ", ".join(f"torch.nn.{kind.__name__}" for kind in _holdable_modules())
    raise ValueError(f"{_show(module)} ({shapes}) is not shaped as any module this toolkit holds; valid: {valid}")


def _matrices(tensors: dict[str, torch.Tensor]) -> str:
    """The modules of the file with a 2-D weight (an nn.Linear's or nn.Embedding's), for an error to list."""
    names = [name.removesuffix(".weight") for name, tensor in tensors.items()
             if name.endswith(".weight") and tensor.dim() == 2]
    return ", ".join(names) or "none"


def readout_from_tensors(tensors: dict[str, torch.Tensor], readout: str, rows: list[int] | None = None) -> nn.Linear:
    """The ``nn.Linear`` named ``readout`` in ``tensors`` (its ``weight`` (O, N) and ``bias``, if any), float64;
    with ``rows``, only those outputs, in that order. ValueError in one line, naming the 2-D weights there are,
    where it is not one."""
    weight, bias = tensors.get(f"{readout}.weight"), tensors.get(f"{readout}.bias")
    if weight is None or weight.dim() != 2 or (bias is not None and bias.shape != weight.shape[:1]):
        raise ValueError(f"--readout {readout!r} is not an nn.Linear in the file (a 2-D {readout}.weight and its "
                         f"bias); candidates: {_matrices(tensors)}")
    if rows is not None:
        if weight.shape[0] != len(rows):
            raise ValueError(f"--readout {readout!r} has {weight.shape[0]} outputs but the vocabulary {len(rows)} "
                             "tokens: a language model's readout scores every token")
        weight, bias = weight[rows], None if bias is None else bias[rows]
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).double()
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def token_order(vocabulary_file: str | Path, tokens: list[str]) -> list[int]:
    """For each of ``tokens`` (a task's vocabulary, in its order), its index in the file's vocabulary: one token per
    line, in the order of the network's embedding rows. ValueError in one line where the two are not one set."""
    path = Path(vocabulary_file)
    if not path.is_file():
        raise ValueError(f"--vocabulary {str(path)!r} is not a file")
    given = path.read_text(encoding="utf-8").splitlines()
    index = {token: row for row, token in enumerate(given)}
    if len(index) != len(given):
        twice = sorted({token for token in given if given.count(token) > 1})[:5]
        raise ValueError(f"--vocabulary {str(path)!r} repeats tokens: {', '.join(map(repr, twice))}")
    missing, extra = [t for t in tokens if t not in index], sorted(set(given) - set(tokens))
    if missing or extra:
        raise ValueError(f"--vocabulary {str(path)!r} ({len(given)} tokens) is not the task's vocabulary "
                         f"({len(tokens)} tokens): missing {', '.join(map(repr, missing[:5])) or 'none'}; not in the "
                         f"task {', '.join(map(repr, extra[:5])) or 'none'}")
    return [index[token] for token in tokens]


def _embedding_rows(tensors: dict[str, torch.Tensor], embedding: str, order: list[int]) -> torch.Tensor:
    """The vectors of the nn.Embedding ``embedding`` for the tokens ``order`` gives, transposed: (E, V), float64."""
    weight = tensors.get(f"{embedding}.weight")
    if weight is None or weight.dim() != 2:
        raise ValueError(f"--embedding {embedding!r} is not an nn.Embedding in the file (a 2-D {embedding}.weight); "
                         f"candidates: {_matrices(tensors)}")
    if max(order) >= weight.shape[0]:
        raise ValueError(f"--embedding {embedding!r} has {weight.shape[0]} rows but the vocabulary {max(order) + 1} "
                         "tokens")
    return weight.double()[order].T


def stack_from_files(paths, *, module: str | None = None, readout: str | None = None,
                     nonlinearity: str | None = None, stack_readout: str = "last", embedding: str | None = None,
                     order: list[int] | None = None):
    """A stack holding the recurrent module (and, with ``readout``, the ``nn.Linear`` readout) of each file in
    ``paths``, one cell per file, in float64 on the CPU (:func:`~rnn_dynamics.from_torch`); every file must hold
    a module of one type and shape. ``stack_readout``: ``last`` or ``all`` time steps, as the task reads it.
    ``embedding`` names an ``nn.Embedding`` that feeds the module: its rows ``order`` (:func:`token_order`) are
    folded into the first input weights, and the readout's outputs are taken in that order too, so that the stack
    reads and scores tokens in a task's vocabulary order. ValueError in one line, prefixed with the file's name,
    where a file cannot give one."""
    modules, readouts = [], []
    for path in paths:
        try:
            tensors = read_tensors(path)
            input_map = None if embedding is None else _embedding_rows(tensors, embedding, order)
            modules.append(module_from_tensors(tensors, module, nonlinearity, input_map))
            readouts.append(None if readout is None else
                            readout_from_tensors(tensors, readout, None if embedding is None else order))
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(repr(str(path))) else f"{path}: {message}") from None
    try:  # its errors name a module by its index: say which file that is
        return from_torch(modules, None if readout is None else readouts, readout=stack_readout)
    except ValueError as err:
        files = ", ".join(f"{index}: {path}" for index, path in enumerate(paths))
        raise ValueError(f"{err} (modules {files})") from None
