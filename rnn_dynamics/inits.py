"""Registry of recurrent-matrix initialisations.

Every init is a function ``init(shape, nonlinearity, generator, **params) -> Tensor``
returning the float64 recurrent matrix ``W_hh`` of ``shape = (N, N)`` (rows are the
receiving units: ``a_t = W_hh h_{t-1} + ...``). Inits are found by name; a user adds
one with the :func:`register_init` decorator. On the command line an init is written
``name:key=value[,key=value]`` (see :func:`parse_init_spec`); the full string is the
``init`` coordinate label of a study, so two parameterisations of one family are two
coordinates.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch

from .nonlinearities import get_nonlinearity
from .registry import Registry, keyword_parameters, summary

InitFn = Callable[..., torch.Tensor]

INITS: Registry[InitFn] = Registry("init")


def register_init(name: str, *, overwrite: bool = False) -> Callable[[InitFn], InitFn]:
    """Decorator registering ``fn(shape, nonlinearity, generator, **params)`` under ``name``."""
    if not name or ":" in name or "," in name or "=" in name:
        raise ValueError(f"init name {name!r} must be non-empty and contain none of ':,='")
    return INITS.register(name, overwrite=overwrite)


def list_inits() -> list[str]:
    """Names of every registered init, sorted."""
    return INITS.names()


def get_init(name: str) -> InitFn:
    """The init registered as ``name``; a clear error listing the valid names otherwise."""
    return INITS.get(name)


def _parse_value(text: str) -> float | int | bool | str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def _wants_number(param: inspect.Parameter) -> bool:
    """Whether an init parameter takes a number: a numeric default, or a float/int annotation."""
    default = param.default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return True
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
    return any(word in str(annotation) for word in ("float", "int"))


def parse_init_spec(spec: str) -> tuple[str, dict]:
    """Split ``'name:key=value,key=value'`` into ``(name, params)``; checks the name, keys and value types."""
    name, _, arg_text = spec.strip().partition(":")
    fn = get_init(name)
    params: dict = {}
    if arg_text:
        for item in arg_text.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"bad init parameter {item!r} in {spec!r}; write name:key=value[,key=value]")
            params[key.strip()] = _parse_value(value)
    signature = inspect.signature(fn).parameters
    accepted = {p.name: p for p in signature.values() if p.kind == p.KEYWORD_ONLY}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.values())
    for key, value in params.items():
        if key not in accepted:
            if takes_any:
                continue
            valid = ", ".join(accepted) or "none"
            raise ValueError(f"init {name!r} has no parameter {key!r}; its parameters: {valid}")
        if _wants_number(accepted[key]) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"init {name!r} parameter {key!r} must be a number, got {value!r} in {spec!r}")
    return name, params


def describe_inits() -> list[tuple[str, str, str]]:
    """(name, parameters with defaults, one-line description) of every registered init."""
    return [(name, keyword_parameters(fn), summary(fn)) for name, fn in INITS.items()]


def make_recurrent(spec: str, n: int, nonlinearity: str, generator: torch.Generator) -> torch.Tensor:
    """Build the (n, n) float64 recurrent matrix for an init spec string."""
    if n < 1:
        raise ValueError(f"hidden size must be positive, got {n}")
    get_nonlinearity(nonlinearity)
    name, params = parse_init_spec(spec)
    weight = get_init(name)((n, n), nonlinearity, generator, **params)
    if tuple(weight.shape) != (n, n):
        raise ValueError(f"init {name!r} returned shape {tuple(weight.shape)}, expected {(n, n)}")
    return weight.to(torch.float64)


def _normal(shape, generator, std: float) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * std


# ---------------------------------------------------------------- built-in inits


@register_init("identity")
def identity(shape, nonlinearity, generator) -> torch.Tensor:
    """W = I: the IRNN of Le, Jaitly & Hinton (2015)."""
    return torch.eye(shape[0], shape[1], dtype=torch.float64)


@register_init("scaled_identity")
def scaled_identity(shape, nonlinearity, generator, *, scale: float = 0.01) -> torch.Tensor:
    """W = scale * I; the paper's 0.01 I forgets quickly and suits framewise speech."""
    return scale * torch.eye(shape[0], shape[1], dtype=torch.float64)


@register_init("orthogonal")
def orthogonal(shape, nonlinearity, generator, *, gain: float = 1.0) -> torch.Tensor:
    """Haar-random orthogonal matrix times ``gain`` (Saxe, McClelland & Ganguli 2013).

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q, which makes
    Q exactly Haar distributed (Mezzadri 2007).
    """
    q, r = torch.linalg.qr(_normal(shape, generator, 1.0))
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return gain * q * signs


@register_init("random_walk")
def random_walk(shape, nonlinearity, generator, *, gain: float | None = None) -> torch.Tensor:
    """W_ij ~ N(0, g^2 / N); g defaults to the nonlinearity's random-walk gain (rnn_dynamics.theory)."""
    g = get_nonlinearity(nonlinearity).random_walk_gain(shape[1]) if gain is None else gain
    return _normal(shape, generator, g / math.sqrt(shape[1]))


@register_init("xavier")
def xavier(shape, nonlinearity, generator, *, gain: float = 1.0, distribution: str = "normal") -> torch.Tensor:
    """Glorot & Bengio (2010): variance 2 gain^2 / (fan_in + fan_out); ``distribution`` normal | uniform."""
    fan_out, fan_in = shape
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    if distribution == "normal":
        return _normal(shape, generator, std)
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * bound
    raise ValueError(f"xavier distribution {distribution!r} is not valid; valid: normal, uniform")


@register_init("he")
def he(shape, nonlinearity, generator, *, gain: float = math.sqrt(2.0)) -> torch.Tensor:
    """He et al. (2015) fan-in normal init, std = gain / sqrt(fan_in) with the ReLU gain sqrt(2)."""
    return _normal(shape, generator, gain / math.sqrt(shape[1]))


@register_init("gaussian")
def gaussian(shape, nonlinearity, generator, *, std: float = 0.001) -> torch.Tensor:
    """W_ij ~ N(0, std^2): the paper's "RNN + ReLU" baseline uses small Gaussian weights."""
    return _normal(shape, generator, std)


#: The six built-in families of the default study, one spec each.
DEFAULT_INITS = ("identity", "scaled_identity", "orthogonal", "random_walk", "xavier", "he")
