"""Sequences of your own from one .npz file: a study of any init on your data without writing a task.

The file (``numpy.savez``) holds four arrays. ``train_x`` and ``test_x`` are the inputs: float (n, T, D), float
(n, T) for one channel, or integer (n, T) tokens 0..V-1 (a column lookup of W_ih, as one-hot inputs of size V,
the largest token in either split plus one). ``train_y`` and ``test_y`` are the targets, whose dtype and shape
say what is learnt:

- integer (n,): a class per sequence, read out after the last step (cross-entropy; accuracy);
- integer (n, T): a class per step, read out at every step (cross-entropy; error rate over the steps);
- float (n,) or (n, K): K real numbers per sequence, read out after the last step (mean squared error).

Classes are 0..C-1 with C the largest label in either split plus one. Inputs are used as they are (scale
them as you would for any RNN); T is the file's, and a study's seq_len must equal it (it is the default).
The file is ``--file PATH``, else ``sequences.npz`` in the data dir.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import data_root
from ..registry import Option
from .base import Preset, Task, cross_entropy, prior_logits, register_task

#: The file read where no ``file`` option names one, in the data dir.
DEFAULT_NAME = "sequences.npz"
ARRAYS = ("train_x", "train_y", "test_x", "test_y")
#: What the targets' dtype and dims make of the task: name -> (readout, metric, long name, higher is better,
#: baseline).
KINDS = {
    "classes": ("last", "accuracy", "test accuracy", True,
                "predict the training set's class frequencies (accuracy: the test share of the most frequent class)"),
    "classes_per_step": ("all", "error_rate", "test error rate over the steps", False,
                         "predict the training set's class frequencies at every step (majority-class error)"),
    "values": ("last", "mse", "test mean squared error", False, "predict the training targets' mean"),
}


def sequences_file(data_dir=None, file: str = "") -> Path:
    """The .npz file a study reads: ``file`` where given, else :data:`DEFAULT_NAME` in the data dir."""
    return Path(file).expanduser() if file else data_root(data_dir) / DEFAULT_NAME


def read_archive(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of the .npz file at ``path``, as stored; ValueError in one line where it is not one."""
    if not path.is_file():
        raise ValueError(f"task 'npz': no file at {path}; give --file PATH, or put {DEFAULT_NAME} in the data dir")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:  # numpy takes what is not .npy / .npz for a pickle
        raise ValueError(f"task 'npz': {path} is not an .npz file numpy can read ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # one .npy array
        raise ValueError(f"task 'npz': {path} holds one array, not the {', '.join(ARRAYS)} of an .npz file")
    with archive:
        missing = [name for name in ARRAYS if name not in archive.files]
        if missing:
            raise ValueError(f"task 'npz': {path} lacks {', '.join(missing)}; it needs {', '.join(ARRAYS)}")
        try:
            return {name: archive[name] for name in ARRAYS}
        except ValueError as err:  # an array of Python objects, which would need unpickling
            raise ValueError(f"task 'npz': {path} holds an array numpy will not read safely ({err})") from None


def check_inputs(x: np.ndarray, name: str) -> np.ndarray:
    """Inputs as (n, T, D) floats or (n, T) tokens (one float channel becomes (n, T, 1)); ValueError otherwise."""
    tokens = x.dtype.kind in "iu" and x.ndim == 2
    if x.ndim == 2 and x.dtype.kind == "f":
        x = x[..., None]
    if not (tokens or (x.ndim == 3 and x.dtype.kind == "f")) or 0 in x.shape:
        raise ValueError(f"task 'npz': {name} must be float (n, T, D), float (n, T) or integer tokens (n, T), "
                         f"with n, T, D >= 1, got {x.dtype} {x.shape}")
    if tokens and x.min() < 0:
        raise ValueError(f"task 'npz': {name} holds negative tokens")
    if not tokens and not np.isfinite(x).all():
        raise ValueError(f"task 'npz': {name} holds NaN or infinite values")
    return x


def load_sequences(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of ``path``, checked against the layout of this module's docstring (float inputs as
    (n, T, D)); ValueError in one line naming what is wrong otherwise."""
    arrays = read_archive(path)
    for split in ("train", "test"):
        x = arrays[f"{split}_x"] = check_inputs(arrays[f"{split}_x"], f"{split}_x")
        y = arrays[f"{split}_y"]
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"task 'npz': {split}_y must have one target per sequence of {split}_x ({x.shape[0]}), "
                             f"got shape {y.shape}")
    train_x, test_x = arrays["train_x"], arrays["test_x"]
    if test_x.shape[1:] != train_x.shape[1:] or test_x.dtype.kind != train_x.dtype.kind:
        raise ValueError(f"task 'npz': test_x ({test_x.dtype} {test_x.shape}) and train_x ({train_x.dtype} "
                         f"{train_x.shape}) must be alike but for n")
    return arrays


def target_kind(train_y: np.ndarray, test_y: np.ndarray, steps: int) -> str:
    """Which of :data:`KINDS` the targets are; ValueError naming the valid layouts otherwise."""
    if train_y.dtype.kind != test_y.dtype.kind or train_y.shape[1:] != test_y.shape[1:]:
        raise ValueError(f"task 'npz': train_y ({train_y.dtype} {train_y.shape}) and test_y ({test_y.dtype} "
                         f"{test_y.shape}) must be alike")
    if train_y.dtype.kind in "iu":
        if min(train_y.min(), test_y.min()) < 0:
            raise ValueError("task 'npz': class labels must be 0 or more")
        if train_y.ndim == 1:
            return "classes"
        if train_y.shape[1:] == (steps,):
            return "classes_per_step"
    elif train_y.dtype.kind == "f" and train_y.ndim in (1, 2):
        if not (np.isfinite(train_y).all() and np.isfinite(test_y).all()):
            raise ValueError("task 'npz': the targets hold NaN or infinite values")
        return "values"
    raise ValueError(f"task 'npz': targets of dtype {train_y.dtype} and shape {train_y.shape} are none of the valid "
                     f"layouts: integer (n,) classes, integer (n, T = {steps}) classes per step, float (n,) or (n, K)")


@register_task("npz")
class NpzTask(Task):
    """Your own sequences from an .npz file (train_x, train_y, test_x, test_y); classes or values."""

    default_seq_len = None  # the file's
    options = {"file": Option("", f"the .npz file of sequences (empty: {DEFAULT_NAME} in the data dir)", str)}
    presets = {
        "tiny": Preset((64, 32), description="the first 64 training and 32 test sequences, for tests"),
        "default": Preset((None, None), description="every sequence of the file, the study's own settings"),
    }
    metric_units = "1"

    @classmethod
    def default_length(cls, data_dir=None, **options) -> int:
        return load_sequences(sequences_file(data_dir, options.get("file", "")))["train_x"].shape[1]

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None, file: str = ""):
        self.path = sequences_file(data_dir, file).resolve()
        arrays = load_sequences(self.path)
        train_x, test_x = arrays["train_x"], arrays["test_x"]
        steps = train_x.shape[1]
        self.tokens = train_x.ndim == 2
        self.input_size = int(max(train_x.max(), test_x.max())) + 1 if self.tokens else train_x.shape[2]
        if seq_len != steps:
            raise ValueError(f"task 'npz': the sequences of {self.path} have T = {steps} steps; got seq_len {seq_len}")
        self.seq_len, self.kind = seq_len, target_kind(arrays["train_y"], arrays["test_y"], steps)
        self.readout, self.metric_name, self.metric_long_name, self.metric_higher_is_better, self.baseline = (
            KINDS[self.kind])
        splits = []
        for split, size in zip(("train", "test"), sizes):
            x = arrays[f"{split}_x"][:size].swapaxes(0, 1)  # time-major
            x = torch.from_numpy(np.ascontiguousarray(x, np.int64 if self.tokens else np.float32))
            y = arrays[f"{split}_y"][:size].T  # the sequences last, as batches and probes index targets
            splits += [x, torch.from_numpy(np.ascontiguousarray(y, np.float32 if self.kind == "values" else np.int64))]
        super().__init__(*splits, seed=seed, batch_size=batch_size)
        if self.kind == "values":
            self.output_size = 1 if self.train_y.dim() == 1 else self.train_y.shape[0]
            self.mean = self.train_y.double().mean(dim=-1).reshape(self.output_size)
        else:
            self.output_size = int(max(arrays["train_y"].max(), arrays["test_y"].max())) + 1
            self.prior = prior_logits(self.train_y, self.output_size)

    def attrs(self) -> dict:
        return {"sequences_file": str(self.path), "targets": self.kind}

    def _values(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Squared error per cell and sample, averaged over the K targets ((B,) or (K, B))."""
        return ((outputs - targets.reshape(-1, targets.shape[-1]).T) ** 2).mean(dim=-1)

    def per_sample_loss(self, outputs, targets):
        return self._values(outputs, targets) if self.kind == "values" else cross_entropy(outputs, targets)

    def per_sample_metric(self, outputs, targets):
        if self.kind == "values":
            return self._values(outputs, targets)
        if self.kind == "classes":
            return (outputs.argmax(dim=-1) == targets).double()
        return (outputs.argmax(dim=-1) != targets.unsqueeze(1)).double().mean(dim=0)

    def baseline_outputs(self, x):
        guess = self.mean if self.kind == "values" else self.prior
        shape = (1, x.shape[1], self.output_size) if self.readout == "last" else (x.shape[0], 1, x.shape[1],
                                                                                  self.output_size)
        return guess.to(x.dtype if x.is_floating_point() else torch.float32).expand(shape)  # tokens: float32
