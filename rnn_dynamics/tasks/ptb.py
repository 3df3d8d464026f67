"""Penn Treebank language modelling (Le, Jaitly & Hinton 2015, section 4.3 compares models on
language modelling), at word level (perplexity) or character level (bits per character).

The corpus is cut into ``batch_size`` parallel streams; training step k reads segment k of
``seq_len`` tokens of every stream and predicts the next token at every step, starting from
the state the previous segment ended in (truncated backpropagation through time; the state
restarts with the streams each epoch). Tokens go in as a column lookup of the input weights.
The test set is scored the same way, as 10 streams carried across segments.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import data_root
from ..data.ptb import load_ptb
from ..registry import Option
from .base import LN2, TOOLKIT_BUDGET, TOOLKIT_BUDGET_SOURCES, Preset, Task, cross_entropy, prior_logits, register_task

#: Parallel streams the test set is cut into.
TEST_STREAMS = 10


def streams(ids: np.ndarray, count: int, limit: int | None, segment: int) -> torch.Tensor:
    """The first ``limit`` tokens (all if None; at least one ``segment`` and its next token per stream)
    cut into ``count`` parallel streams: (L, count), time-major."""
    ids = ids[:max(limit, (segment + 1) * count)] if limit else ids
    length = len(ids) // count
    return torch.from_numpy(ids[:length * count].reshape(count, length).T.copy())


@register_task("ptb")
class PTBTask(Task):
    """Penn Treebank language modelling, --level word (perplexity) or char (bits per character)."""

    default_seq_len = 35
    stateful = True
    tokens = True
    options = {"level": Option("word", "PTB tokens: word (10k vocabulary, perplexity) or char (bits per character)",
                               str, ("word", "char"))}
    presets = {
        "tiny": Preset((20_000, 5_000), description="the first 20k training and 5k test tokens, for tests"),
        "default": Preset((None, None), description="the whole corpus, the study's own settings"),
        "quick": Preset((None, None), {"hidden": 100, "batch_size": 20, "optimizer": "adam", "lr": 2e-3,
                                       "clip": 1.0, "steps": 2000, "probe_every": 250, "probe_test_size": 50},
                        description="the whole corpus, 20 streams, 2,000 Adam updates; test scored on the first "
                                    "50 segments of 10 streams"),
        "paper": Preset((None, None), {"layers": 4, "hidden": 1000, "optimizer": "sgd", "clip": 1.0,
                                       **TOOLKIT_BUDGET},
                        sources={"layers": "4 layers (unconfirmed; the paper's language model is not on PTB)",
                                 "hidden": "1000 units per layer (unconfirmed)", "optimizer": "SGD (unconfirmed)",
                                 "clip": "clipped gradients (unconfirmed)", **TOOLKIT_BUDGET_SOURCES},
                        description="4 layers of 1000 units, SGD (unconfirmed: the paper's language model was "
                                    "trained on another corpus); "
                                    "lr 0.01 for 100,000 updates, this toolkit's budget, not the paper's"),
    }
    readout = "all"
    metric_units = "1"
    metric_higher_is_better = False
    baseline = "the unigram model of the training tokens"

    def __init__(self, seq_len: int, seed: int, batch_size: int, sizes, data_dir=None, level: str = "word"):
        ids, self.vocabulary = load_ptb(data_root(data_dir).resolve(), level)
        self.seq_len, self.level = seq_len, level
        self.input_size = self.output_size = len(self.vocabulary)
        self.metric_name = "perplexity" if level == "word" else "bits_per_character"
        self.metric_long_name = "test perplexity" if level == "word" else "test bits per character"
        train = streams(ids["train"], batch_size, sizes[0], seq_len)
        test = streams(ids["test"], TEST_STREAMS, sizes[1], seq_len)
        if min(len(train), len(test)) <= seq_len:
            raise ValueError(f"seq_len {seq_len} leaves no whole segment in the PTB streams ({len(train)} training "
                             f"and {len(test)} test tokens per stream)")
        super().__init__(train[:-1], train[1:], test[:-1], test[1:], seed=seed, batch_size=batch_size)
        self.prior = prior_logits(self.train_y, self.output_size)

    @property
    def segments(self) -> int:
        """Training segments per epoch."""
        return self.train_x.shape[0] // self.seq_len

    def train_batch(self, step: int):
        start = (step % self.segments) * self.seq_len
        return self.train_x[start:start + self.seq_len], self.train_y[start:start + self.seq_len]

    def starts_stream(self, step: int) -> bool:
        return step % self.segments == 0

    def test_segments(self, limit: int | None):
        """The test streams' consecutive segments (the first ``limit`` of them if given)."""
        count = self.test_x.shape[0] // self.seq_len
        for k in range(min(count, limit) if limit else count):
            window = slice(k * self.seq_len, (k + 1) * self.seq_len)
            yield self.test_x[window], self.test_y[window]

    def probe_sequences(self, count: int):
        return self.test_x[:self.seq_len, :count], self.test_y[:self.seq_len, :count]

    def attrs(self) -> dict:
        return {"level": self.level, "vocabulary_size": len(self.vocabulary)}

    def metric_of(self, loss):
        """Perplexity exp(loss) or bits per character loss / ln 2 of a mean loss in nats per token."""
        return loss.exp() if self.level == "word" else loss / LN2

    def per_sample_loss(self, outputs, targets):
        return cross_entropy(outputs, targets)

    def per_sample_metric(self, outputs, targets):
        return self.metric_of(self.per_sample_loss(outputs, targets))

    def baseline_outputs(self, x):
        return self.prior.to(torch.float32).expand(x.shape[0], 1, x.shape[1], self.output_size)

    @torch.no_grad()
    def evaluate(self, model, sequences: int):
        """Mean loss per token over the first ``sequences`` test segments (0: all), the state carried
        from segment to segment; the metric from that mean loss."""
        device = model.w_out.device
        total = torch.zeros(model.n_cells, dtype=torch.float64)
        state, count = None, 0
        for x, y in self.test_segments(sequences):
            outputs, state = model.forward_with_state(x.to(device), state)
            total += self.per_sample_loss(outputs, y.to(device)).double().sum(dim=1).cpu()
            count += x.shape[1]
        loss = total / count
        return loss, self.metric_of(loss)

    def baseline_scores(self, sequences: int):
        losses = [self.per_sample_loss(self.baseline_outputs(x), y).double().mean()
                  for x, y in self.test_segments(sequences)]
        loss = torch.stack(losses).mean()
        return loss.item(), float(self.metric_of(loss))

