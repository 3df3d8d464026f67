"""Named models: a (cell, nonlinearity, init, cell options) combination with a display label.

The four models Le, Jaitly & Hinton (2015) compare are registered here; ``--models paper``
runs all four, ``--models irnn lstm`` those two. A study labels every grid point that
matches a named model in its ``model`` coordinate, so a figure can name it without
guessing. A user adds one with ``MODELS.add(name, NamedModel(...))``.

Sources. The identity init, ReLU units and zero biases of the IRNN are the paper's
method (abstract and section 3). The paper's text was not reachable from the machine this
was written on, so the other settings below are marked *unconfirmed*: they are the
toolkit's reading of the paper's baselines, not checked against its text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import Registry


@dataclass(frozen=True)
class NamedModel:
    """One model of a comparison: what it is made of, how figures name it, where its settings come from."""

    label: str
    cell: str
    nonlinearity: str
    init: str
    options: dict = field(default_factory=dict)
    source: str = ""

    def describe(self) -> str:
        options = "".join(f", {key}={value!r}" for key, value in self.options.items())
        return f"{self.label}: cell {self.cell}, {self.nonlinearity}, init {self.init}{options}. {self.source}"


MODELS: Registry[NamedModel] = Registry("model")

#: ``--models paper`` expands to these, in this order.
PAPER = ("irnn", "rnn_tanh", "rnn_relu", "lstm")

MODELS.add("irnn", NamedModel(
    "IRNN", "elman", "relu", "identity",
    source="Le et al. 2015, abstract and section 3: ReLU units, W_hh = I, biases 0 (confirmed)."))
MODELS.add("rnn_tanh", NamedModel(
    "RNN + tanh", "elman", "tanh", "gaussian:std=0.001",
    source="Le et al. 2015, section 4 baseline; recurrent weights N(0, 0.001^2) (unconfirmed)."))
MODELS.add("rnn_relu", NamedModel(
    "RNN + ReLU", "elman", "relu", "gaussian:std=0.001",
    source="Le et al. 2015, section 4 baseline; recurrent weights N(0, 0.001^2) (unconfirmed)."))
MODELS.add("lstm", NamedModel(
    "LSTM", "lstm", "tanh", "gaussian:std=0.001", {"forget_bias": 1.0},
    source="Le et al. 2015, section 4 baseline; recurrent blocks N(0, 0.001^2) (unconfirmed); forget-gate "
           "bias 1.0 as Gers et al. 2000 recommend (unconfirmed for this paper)."))


MODELS.add("irnn_scaled", NamedModel(
    "IRNN (0.01 I)", "elman", "relu", "scaled_identity",
    source="Le et al. 2015, abstract and section 4.4: the scaled identity 0.01 I, for speech (confirmed: "
           "'the identity matrix or its scaled version'; 0.01 for speech unconfirmed)."))


def expand_models(names) -> list[str]:
    """Model names with ``paper`` replaced by the paper's four; unknown names fail listing the valid ones."""
    expanded = []
    for name in names:
        if name != "paper" and name not in MODELS.names():
            raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS.names())}, "
                             f"paper ({', '.join(PAPER)})")
        for item in (PAPER if name == "paper" else (name,)):
            if item not in expanded:
                expanded.append(item)
    return expanded
