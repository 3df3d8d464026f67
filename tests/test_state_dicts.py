"""Networks trained with torch.nn, read back from the files torch.save wrote of their state_dicts: the rebuilt
module computes what the saved one computed, the probes of `analyses.torch_model` give the known answers of
the saved weights, and every file or flag that cannot serve is refused in one line, with nothing written."""

import argparse
import pickle
import shutil

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import save_file
from torch import nn

from conftest import run_in_process
from analyses.torch_model import checkpoint_grid
from rnn_dynamics import get_cell, list_cells
from rnn_dynamics.state_dicts import module_from_tensors, read_tensors, recurrent_prefixes, stack_from_files

MODULE_TYPES = [kind for name in list_cells() for kind in get_cell(name).torch_modules]


class Network(nn.Module):
    """A user's model: an embedding-free recurrent module under a name, and a readout."""

    def __init__(self, kind, hidden=6, inputs=2, outputs=1, layers=2, **options):
        super().__init__()
        layered = {"num_layers": layers} if issubclass(kind, nn.RNNBase) else {}
        self.rnn = kind(inputs, hidden, **layered, **options)
        self.fc = nn.Linear(hidden, outputs)


def _save_checkpoint(path, network, **extra):
    """As a training script saves: the state_dict under a key, beside an optimizer's state and counters."""
    optimizer = torch.optim.SGD(network.parameters(), lr=0.0, momentum=0.9)
    sum(p.sum() for p in network.parameters()).backward()
    optimizer.step()  # its state now holds tensors too (momentum buffers); lr 0 leaves the weights as they are
    torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 7, **extra}, path)
    return path


def _outputs(module, x):
    """h_1..h_T of ``module`` over x (T, B, I) from zero states, a ...Cell applied step by step."""
    if isinstance(module, nn.RNNBase):
        return module(x)[0]
    hidden, state = [], None
    for x_t in x:
        state = module(x_t, state)
        hidden.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(hidden)


def _nonlinearity(kind, options):
    return options.get("nonlinearity", "tanh") if kind in (nn.RNN, nn.RNNCell) else None


CASES = [(kind, {}) for kind in MODULE_TYPES] + [(kind, {"nonlinearity": "relu"}) for kind in (nn.RNN, nn.RNNCell)] \
    + [(kind, {"bias": False}) for kind in (nn.LSTM, nn.GRUCell)]


@pytest.mark.parametrize("kind, options", CASES, ids=lambda case: getattr(case, "__name__", None) or str(case))
def test_the_rebuilt_module_and_stack_compute_what_the_saved_network_computed(tmp_path, kind, options):
    """Every module type a registered cell holds (two layers where it has layers; with and without biases),
    saved inside a checkpoint dict: the rebuilt module has the saved type and weights, and the stack of two such
    files reads out through each file's own readout what each network computes (float64 rounding)."""
    torch.manual_seed(0)
    networks = [Network(kind, **options).double() for _ in range(2)]
    paths = [_save_checkpoint(tmp_path / f"run{i}.pt", network) for i, network in enumerate(networks)]
    tensors = read_tensors(paths[0])
    assert recurrent_prefixes(tensors) == ["model.rnn"] and "epoch" not in tensors
    assert any(name.startswith("optimizer.state.") for name in tensors)
    rebuilt = module_from_tensors(tensors, nonlinearity=_nonlinearity(kind, options))
    assert type(rebuilt) is kind
    assert rebuilt.state_dict().keys() == networks[0].rnn.state_dict().keys()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in networks[0].rnn.state_dict().items())

    stack = stack_from_files(paths, readout="model.fc", nonlinearity=_nonlinearity(kind, options), stack_readout="all")
    x = torch.randn(9, 4, 2, dtype=torch.float64)
    outputs = stack(x)
    for cell, network in enumerate(networks):
        expected = network.fc(_outputs(network.rnn, x))
        assert torch.allclose(outputs[:, cell], expected, rtol=0, atol=1e-12)


def test_a_bare_state_dict_and_one_of_several_modules(tmp_path):
    """A module's own state_dict (no prefix) is found; of two recurrent modules, --module picks one and none
    given is refused, naming both."""
    torch.manual_seed(1)
    gru = nn.GRU(3, 4).double()
    torch.save(gru.state_dict(), tmp_path / "bare.pt")
    assert type(module_from_tensors(read_tensors(tmp_path / "bare.pt"))) is nn.GRU

    two = nn.ModuleDict({"encoder": nn.LSTM(3, 4), "decoder": nn.GRU(4, 4)})
    torch.save(two.state_dict(), tmp_path / "two.pt")
    tensors = read_tensors(tmp_path / "two.pt")
    assert type(module_from_tensors(tensors, "decoder")) is nn.GRU
    assert type(module_from_tensors(tensors, "encoder")) is nn.LSTM
    with pytest.raises(ValueError, match=r"2 recurrent modules: name one with --module; valid: encoder, decoder$"):
        module_from_tensors(tensors)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", MODULE_TYPES, ids=lambda kind: kind.__name__)
def test_a_safetensors_file_gives_what_the_same_state_dict_saved_by_torch_gives(tmp_path, kind, dtype):
    """A network's state_dict saved with safetensors (float32 as it trained, or bfloat16 as large models are often
    shared) is read, whatever the file's name, as the same state_dict saved by torch.save: the same names, dtypes
    and bits, and the same stack (float64 holds every bfloat16 exactly)."""
    torch.manual_seed(3)
    network = Network(kind, **({"nonlinearity": "relu"} if kind in (nn.RNN, nn.RNNCell) else {})).to(dtype)
    torch.save(network.state_dict(), tmp_path / "net.pt")
    shutil.copy(_safetensors(tmp_path / "net.safetensors", network), tmp_path / "renamed.bin")
    expected = read_tensors(tmp_path / "net.pt")
    for name in ("net.safetensors", "renamed.bin"):
        tensors = read_tensors(tmp_path / name)
        assert tensors.keys() == expected.keys()
        assert all(tensors[k].dtype == v.dtype and torch.equal(tensors[k], v) for k, v in expected.items())
    nonlinearity = "relu" if kind in (nn.RNN, nn.RNNCell) else None
    stacks = [stack_from_files([tmp_path / name], readout="fc", nonlinearity=nonlinearity)
              for name in ("net.pt", "net.safetensors")]
    assert all(torch.equal(a, b) for a, b in zip(*(stack.parameters() for stack in stacks), strict=True))


def test_a_safetensors_files_stem_gives_its_network_and_step():
    args = argparse.Namespace(files=["runs/irnn_300.safetensors", "runs/irnn_0.safetensors"], steps=None,
                              steps_from_stems=True, names=None)
    assert checkpoint_grid(args) == (["irnn"], {0: ["runs/irnn_0.safetensors"], 300: ["runs/irnn_300.safetensors"]})


def _refusal(tmp_path, make, **given) -> str:
    path = make(tmp_path / "file.pt")
    with pytest.raises(ValueError) as error:
        stack_from_files([path], **given)
    assert "\n" not in str(error.value)
    return str(error.value)


def _written(data: bytes):
    def make(path):
        path.write_bytes(data)
        return path
    return make


def _saved(network):
    def make(path):
        torch.save(network.state_dict(), path)
        return path
    return make


def _safetensors(path, network=None):
    save_file((network or Network(nn.GRU)).state_dict(), path)
    return path


def _cut(path, count):
    path.write_bytes(path.read_bytes()[:-count])
    return path


def _overwritten(path, at, data):
    whole = path.read_bytes()
    path.write_bytes(whole[:at] + data + whole[at + len(data):])
    return path


NEITHER = "is neither a file torch.save wrote nor a safetensors file"
REFUSALS = {
    "pickled module": (lambda p: torch.save(nn.RNN(2, 3), p) or p, {}, "holds more than tensors"),
    "pickled object": (_written(pickle.dumps(object, protocol=2)), {}, "holds more than tensors"),
    "newer pickle": (_written(pickle.dumps({"w": 1}, protocol=4)), {}, f"{NEITHER} (UnpicklingError: Unsupported "
                                                                     "operand 149)"),
    "text": (_written(b"not a checkpoint"), {}, f"{NEITHER} (UnpicklingError: Unsupported"),
    "empty": (_written(b""), {}, NEITHER),
    "safetensors cut short": (lambda p: _cut(_safetensors(p), 5), {}, "is not a whole safetensors file "
                              "(SafetensorError: Error while deserializing header: incomplete metadata"),
    "safetensors header not JSON": (lambda p: _overwritten(_safetensors(p), 9, b"garbage"), {},
                                    "is not a whole safetensors file (SafetensorError: Error while deserializing "
                                    "header: invalid JSON"),
    "missing": (lambda p: p, {}, "is not a file"),
    "no recurrent weights": (_saved(nn.Linear(3, 2)), {}, "no recurrent weights"),
    "unknown module": (_saved(Network(nn.LSTM)), {"module": "encoder"}, "--module 'encoder' holds no recurrent"),
    "RNN without nonlinearity": (_saved(Network(nn.RNN)), {}, "give --nonlinearity relu or tanh$"),
    "RNN, unknown nonlinearity": (_saved(Network(nn.RNN)), {"nonlinearity": "gelu"}, "('gelu' is not one)"),
    "LSTM with nonlinearity": (_saved(Network(nn.LSTM)), {"nonlinearity": "relu"}, "takes no nonlinearity"),
    "readout not a Linear": (_saved(Network(nn.GRU)), {"readout": "rnn"}, "candidates: fc$"),
    "bidirectional": (_saved(Network(nn.GRU, bidirectional=True)), {}, "bidirectional: only unidirectional"),
    "projected": (_saved(Network(nn.LSTM, proj_size=2)), {}, "projected: only unidirectional"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_what_cannot_be_read_is_refused_in_one_line_naming_the_file(tmp_path, case):
    make, given, expected = REFUSALS[case]
    message = _refusal(tmp_path, make, **given)
    assert "file.pt" in message and (expected in message or message.endswith(expected.rstrip("$"))), message


def test_files_of_two_shapes_are_refused(tmp_path):
    torch.save(Network(nn.GRU, hidden=4).state_dict(), tmp_path / "a.pt")
    torch.save(Network(nn.GRU, hidden=5).state_dict(), tmp_path / "b.pt")
    with pytest.raises(ValueError, match=r"differs from module 0 .*\(modules 0: .*a\.pt, 1: .*b\.pt\)$"):
        stack_from_files([tmp_path / "a.pt", tmp_path / "b.pt"])


# ---------------------------------------------------------------- the command


def _irnn_files(tmp_path, hidden=8):
    """An IRNN as it starts (W = I, input weights >= 0, bias 0.1: every state positive, every J_t = I) and the
    same network with W = 0.5 I; each with a readout."""
    paths = []
    for name, scale in (("irnn", 1.0), ("half", 0.5)):
        torch.manual_seed(2)
        network = Network(nn.RNN, hidden=hidden, layers=1, nonlinearity="relu").double()
        with torch.no_grad():
            network.rnn.weight_hh_l0.copy_(scale * torch.eye(hidden))
            network.rnn.weight_ih_l0.abs_()
            network.rnn.bias_ih_l0.fill_(0.1)
            network.rnn.bias_hh_l0.zero_()
        paths.append(_save_checkpoint(tmp_path / f"{name}.pt", network))
    return paths


def _command(argv):
    from analyses.torch_model import main

    return main([str(arg) for arg in argv])


def _command_refusal(argv, capsys, main=None) -> str:
    """The error a command (analyses.torch_model where ``main`` is None) prints refusing ``argv``: checked to be
    one line, with exit code 2."""
    if main is None:
        from analyses.torch_model import main
    code, _, error = run_in_process(main, [str(arg) for arg in argv], capsys)
    assert code == 2 and error.count("\n") == 1, error
    return error


def test_the_command_records_the_known_answers_of_the_saved_weights(tmp_path, capsys):
    """Two saved ReLU networks, W = I and W = 0.5 I with positive states: spectral radius 1 and 0.5,
    every Jacobian product norm 1 and 0.5^k, Lyapunov exponents 0 and ln 0.5, in a dataset of the studies'
    schema (step 0; init: the files' stems) whose summary names them."""
    out = tmp_path / "probed.nc"
    assert _command([*_irnn_files(tmp_path), "--nonlinearity", "relu", "--readout", "model.fc", "--seq-len", 20,
                     "--probes", "default", "lyapunov", "--preset", "tiny", "--out", out]) == 0
    ds = xr.open_dataset(out)
    assert {"cell", "init", "nonlinearity", "seq_len", "seed"} <= set(ds.dims) and list(ds["step"].values) == [0]
    assert list(ds["init"].values) == ["irnn", "half"] and list(ds["cell"].values) == ["elman"]
    at = ds.sel(cell="elman", nonlinearity="relu", seq_len=20, seed=0, step=0, gate="recurrent", layer=0)
    np.testing.assert_allclose(at["spectral_radius"].values, [1, 0.5], atol=1e-12)
    lags = at["lag"].values
    np.testing.assert_allclose(at["jacobian_log_norm"].sel(init="irnn").values, 0, atol=1e-12)
    np.testing.assert_allclose(at["jacobian_log_norm"].sel(init="half").values, lags * np.log(0.5), atol=1e-10)
    np.testing.assert_allclose(at["lyapunov"].sel(init="irnn").values, 0, atol=1e-12)
    np.testing.assert_allclose(at["lyapunov"].sel(init="half").values, np.log(0.5), atol=1e-12)
    assert np.isfinite(at["test_metric"].values).all() and "sha256" in ds.attrs["trained_elsewhere"]
    printed = capsys.readouterr().out
    assert "| elman relu irnn | 20 |" in printed and f"wrote {out}: " in printed.strip().splitlines()[-1]


def _checkpoints_along_training(tmp_path):
    """Two networks (W = 0.9 I, 0.5 I) saved at steps 0, 10 and 30, their weights moved by a step-dependent
    amount: slow_0.pt ... fast_30.pt."""
    paths = []
    for name, scale in (("slow", 0.9), ("fast", 0.5)):
        for step in (0, 10, 30):
            network = Network(nn.RNN, hidden=5, layers=1, nonlinearity="tanh").double()
            torch.manual_seed(3)
            with torch.no_grad():
                network.rnn.weight_hh_l0.copy_((scale + step / 1000) * torch.eye(5, dtype=torch.float64)
                                               + 0.01 * torch.randn(5, 5, dtype=torch.float64))
            paths.append(_save_checkpoint(tmp_path / f"{name}_{step}.pt", network))
    return paths


def test_checkpoints_along_training_are_the_probe_steps_each_as_its_files_alone_give(tmp_path):
    """--steps-from-stems: the dataset has each network at each step, each step's records equal those of that
    step's files probed alone, and the weight drift is measured from the first step's weights."""
    paths = _checkpoints_along_training(tmp_path)
    common = ["--nonlinearity", "tanh", "--readout", "model.fc", "--seq-len", 12, "--preset", "tiny"]
    assert _command([*paths, "--steps-from-stems", *common, "--out", tmp_path / "all.nc"]) == 0
    ds = xr.open_dataset(tmp_path / "all.nc")
    assert list(ds["step"].values) == [0, 10, 30] and list(ds["init"].values) == ["slow", "fast"]
    for step in (0, 10, 30):
        alone = tmp_path / f"alone_{step}.nc"
        assert _command([tmp_path / f"slow_{step}.pt", tmp_path / f"fast_{step}.pt", "--names", "slow", "fast",
                         *common, "--out", alone]) == 0
        single = xr.open_dataset(alone).isel(step=0, drop=True)
        for name in ("spectral_radius", "jacobian_log_norm", "grad_log_norm", "test_loss"):
            xr.testing.assert_allclose(ds[name].sel(step=step, drop=True), single[name], rtol=0, atol=1e-12)
    drift = ds["weight_drift"].sel(gate="recurrent", layer=0, cell="elman", nonlinearity="tanh", seq_len=12, seed=0)
    np.testing.assert_allclose(drift.sel(step=0), 0, atol=0)
    np.testing.assert_allclose(drift.sel(step=30) / drift.sel(step=10), 3, rtol=1e-9)  # W moved 3x as far
    explicit = tmp_path / "explicit.nc"
    assert _command([*paths, "--names", *["slow"] * 3, *["fast"] * 3, "--steps", 0, 10, 30, 0, 10, 30, *common,
                     "--out", explicit]) == 0
    xr.testing.assert_identical(xr.open_dataset(explicit)["spectral_radius"], ds["spectral_radius"])


def test_a_progress_bar_counts_every_probe_step_at_every_sweep_point_and_quiet_turns_it_off(tmp_path, monkeypatch):
    """Three checkpoint steps at two sequence lengths: a bar of 6 probe steps, moved on 6 times; --quiet disables it
    (without --quiet, tqdm itself shows it only on a terminal)."""
    import rnn_dynamics.sweep as sweep

    bars = []

    class Bar:
        def __init__(self, total, disable, **_):
            self.total, self.disable, self.done = total, disable, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def update(self, count):
            self.done += count

    monkeypatch.setattr(sweep, "tqdm", Bar)
    paths = _checkpoints_along_training(tmp_path)
    for flags in ([], ["--quiet"]):
        assert _command([*paths, "--steps-from-stems", "--nonlinearity", "tanh", "--seq-len", 8, 12, "--preset", "tiny",
                         "--probes", "weight_spectra", "--out", tmp_path / "bar.nc", *flags]) == 0
    assert [(bar.total, bar.done, bar.disable) for bar in bars] == [(6, 6, None), (6, 6, True)]


@pytest.mark.parametrize("flags, files, expected", [
    (["--steps-from-stems"], ["slow_0", "fast_0", "slow_10"], "no file of 'fast' at step 10: give every network"),
    (["--names", "a"], ["slow_0", "slow_10"], "--names gives 1 values for 2 files: give one per file"),
    (["--steps", 0, 1, 2], ["slow_0", "slow_10"], "--steps gives 3 values for 2 files: give one per file"),
    (["--steps", -1, 0], ["slow_0", "slow_10"], "--steps must be >= 0, got -1"),
    (["--names", "a", "a"], ["slow_0", "slow_10"], "'a' at step 0 is given twice"),
    (["--steps-from-stems", "--steps", 0, 1], ["slow_0", "slow_10"], "not allowed with argument"),
])
def test_bad_steps_stop_in_one_line_and_write_nothing(tmp_path, capsys, flags, files, expected):
    _checkpoints_along_training(tmp_path)
    out = tmp_path / "never.nc"
    argv = [*(tmp_path / f"{stem}.pt" for stem in files), "--nonlinearity", "tanh", "--out", out, *flags]
    assert expected in _command_refusal(argv, capsys)
    assert not out.exists()


def test_a_stem_without_its_step_is_refused(tmp_path, capsys):
    torch.save(Network(nn.GRU).state_dict(), tmp_path / "final.pt")
    error = _command_refusal([tmp_path / "final.pt", "--steps-from-stems", "--out", tmp_path / "never.nc"], capsys)
    assert "the stem 'final' is not a name followed by its step, as in irnn_300.pt" in error


def test_probes_without_the_summarys_variables_write_their_dataset_and_say_what_it_holds(tmp_path, capsys):
    out = tmp_path / "points.nc"
    assert _command([*_irnn_files(tmp_path), "--nonlinearity", "relu", "--seq-len", 12, "--preset", "tiny",
                     "--probes", "fixed_points", "--fixed-point-input", "mean", "--out", out]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}: fixed_point_speed, fixed_point_iterations, " \
        "fixed_point_norm, fixed_point_same_as, fixed_point_eig_real, fixed_point_eig_imag"
    assert xr.open_dataset(out)["fixed_point_norm"].attrs["input_held"] == "the probe sequences' mean input"


def test_without_a_readout_the_probes_that_read_the_output_are_left_out(tmp_path):
    from rnn_dynamics.probes import PROBES

    out = tmp_path / "no_readout.nc"
    assert _command([*_irnn_files(tmp_path), "--nonlinearity", "relu", "--seq-len", 12, "--preset", "tiny",
                     "--out", out]) == 0
    ds = xr.open_dataset(out)
    for name, probe in PROBES.items():
        if probe.default:
            assert all((variable in ds) != probe.reads_output for variable in probe.variables), name
    assert "spectral_radius" in ds and "test_loss" not in ds and "grad_log_norm" not in ds


@pytest.mark.parametrize("flags, expected", [
    (["--probes", "losses"], "--probes losses: these read the network's output; give --readout"),
    (["--readout", "model.fc", "--task", "mnist"], "task 'mnist' has input size 1 but the network's is 2"),
    (["--readout", "model.fc", "--seq-len", 0], "--seq-len must be a positive integer, got 0"),
    (["--readout", "nowhere"], "--readout 'nowhere' is not an nn.Linear"),
])
def test_bad_flags_stop_in_one_line_and_write_nothing(tmp_path, capsys, flags, expected):
    out = tmp_path / "never.nc"
    argv = [*_irnn_files(tmp_path), "--nonlinearity", "relu", "--preset", "tiny", "--out", out, *flags]
    assert expected in _command_refusal(argv, capsys)
    assert not out.exists()


def test_the_figures_of_a_probed_dataset(tmp_path, capsys):
    """python -m figures on the one dataset draws its spectral figures and skips, saying why, those drawn
    against training step."""
    from figures.__main__ import main as figures_main

    out = tmp_path / "probed.nc"
    _command([*_irnn_files(tmp_path), "--nonlinearity", "relu", "--readout", "model.fc", "--seq-len", 12,
              "--probes", "default", "lyapunov", "--preset", "tiny", "--out", out])
    assert figures_main([str(out), "--out", str(tmp_path / "figures")]) == 0
    drawn = {path.name for path in (tmp_path / "figures").iterdir()}
    assert {"probed-eigenvalues.png", "probed-singular_values.png", "probed-jacobian_decay.png",
            "probed-lyapunov_spectra.png", "probed-summary.md"} <= drawn
    assert not {"probed-weight_drift.png", "probed-jacobian_norms.png", "probed-lyapunov_largest.png", "adding.png"} \
        & drawn
    assert "skipped adding of probed.nc: one probe step, and it draws against training step" in capsys.readouterr().err
    from figures.weight_drift import main as weight_drift_main

    error = _command_refusal([out, "--out", tmp_path / "drift"], capsys, weight_drift_main)
    assert error == "error: figure weight_drift cannot be drawn from probed.nc: one probe step, and it draws " \
                    "against training step\n"
    assert not (tmp_path / "drift").exists()


class LanguageModel(nn.Module):
    """A user's word model: embedding, recurrent module, decoder, over the user's own token order."""

    def __init__(self, kind, vocabulary: int, **options):
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocabulary, 4), kind(4, 6, **options)
        self.decoder = nn.Linear(6, vocabulary)

    def forward(self, tokens):
        hidden = self.rnn(self.embed(tokens))[0]
        return self.decoder(hidden)


def _language_model_files(tmp_path, kind, task, **options):
    """The model saved with its vocabulary file: the task's tokens in a shuffled order of the user's own."""
    tokens = list(task.vocabulary)
    shuffled = [tokens[i] for i in torch.randperm(len(tokens), generator=torch.Generator().manual_seed(4))]
    _vocabulary_file(tmp_path, shuffled)
    torch.manual_seed(5)
    model = LanguageModel(kind, len(tokens), **options).double()
    torch.save(model.state_dict(), tmp_path / "lm.pt")
    return model, shuffled


@pytest.mark.parametrize("kind, options", [(nn.RNN, {"nonlinearity": "relu"}), (nn.LSTM, {"num_layers": 2})],
                         ids=["RNN", "LSTM"])
def test_a_language_models_embedding_is_folded_in_and_its_tokens_put_in_the_tasks_order(tmp_path, kind, options):
    """The stack, fed the task's token ids, computes the saved model's logits on the same words (its own ids), in
    the task's token order (float64 rounding)."""
    from rnn_dynamics.state_dicts import token_order
    from rnn_dynamics.tasks import make_task

    task = make_task("ptb", seq_len=9, preset="tiny")
    model, shuffled = _language_model_files(tmp_path, kind, task, **options)
    order = token_order(tmp_path / "vocab.txt", list(task.vocabulary))
    assert [shuffled[row] for row in order] == list(task.vocabulary)
    stack = stack_from_files([tmp_path / "lm.pt"], readout="decoder", embedding="embed", order=order,
                             nonlinearity=options.get("nonlinearity"), stack_readout="all")
    x, _ = task.probe_sequences(3)  # (T, B) token ids of the task
    expected = model(torch.tensor(order)[x])[..., order]  # the same words in the user's ids; scores in task order
    assert torch.allclose(stack(x)[:, 0], expected, rtol=0, atol=1e-12)


def test_the_command_probes_a_language_model_on_the_ptb_task(tmp_path, capsys):
    from rnn_dynamics.tasks import make_task

    task = make_task("ptb", seq_len=9, preset="tiny")
    _language_model_files(tmp_path, nn.GRU, task)
    out = tmp_path / "lm.nc"
    common = [tmp_path / "lm.pt", "--task", "ptb", "--seq-len", 9, "--preset", "tiny", "--out", out]
    assert _command([*common, "--embedding", "embed", "--vocabulary", tmp_path / "vocab.txt", "--readout",
                     "decoder"]) == 0
    ds = xr.open_dataset(out)
    assert ds.attrs["input_size"] == len(task.vocabulary) and np.isfinite(ds["test_loss"]).all()
    capsys.readouterr()
    (tmp_path / "short.txt").write_text("\n".join(task.vocabulary[1:]), encoding="utf-8")
    for flags, expected in [(["--embedding", "embed"], "--embedding and --vocabulary go together"),
                            (["--embedding", "embed", "--vocabulary", tmp_path / "short.txt"],
                             f"is not the task's vocabulary ({len(task.vocabulary)} tokens): missing "
                             f"{task.vocabulary[0]!r}; not in the task none"),
                            (["--embedding", "rnn", "--vocabulary", tmp_path / "vocab.txt"],
                             "--embedding 'rnn' is not an nn.Embedding in the file")]:
        out.unlink(missing_ok=True)
        assert expected in _command_refusal([*common, *flags], capsys)
        assert not out.exists()


def _vocabulary_file(tmp_path, tokens):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def _language_model_refusal(tmp_path, make_file, vocabulary=("a", "b", "c"), tokens=("a", "b", "c"),
                            embedding="embed", readout="decoder") -> str:
    """The one-line error reading a language model of ``vocabulary`` rows against a task of ``tokens`` gives, where
    ``make_file`` saves the model (a GRU on 4-vectors with a 6-way decoder: ``LanguageModel``)."""
    from rnn_dynamics.state_dicts import token_order

    make_file(tmp_path / "lm.pt", len(vocabulary))
    with pytest.raises(ValueError) as error:
        order = token_order(_vocabulary_file(tmp_path, vocabulary), list(tokens))
        stack_from_files([tmp_path / "lm.pt"], readout=readout, embedding=embedding, order=order)
    assert "\n" not in str(error.value)
    return str(error.value)


def _saved_language_model(embedding_rows=None, decoder_outputs=None, embedding_size=4):
    """A file of ``LanguageModel(nn.GRU, V)`` with its embedding and decoder resized where given."""
    def make(path, vocabulary):
        model = LanguageModel(nn.GRU, vocabulary)
        model.embed = nn.Embedding(embedding_rows or vocabulary, embedding_size)
        model.decoder = nn.Linear(6, decoder_outputs or vocabulary)
        torch.save(model.state_dict(), path)
    return make


@pytest.mark.parametrize("make, given, expected", [
    (_saved_language_model(), {"vocabulary": ("a", "b", "b")}, "repeats tokens: 'b'"),
    (_saved_language_model(), {"vocabulary": ("a", "b", "d")}, "is not the task's vocabulary (3 tokens): "
                                                                "missing 'c'; not in the task 'd'"),
    (_saved_language_model(embedding_rows=2), {}, "--embedding 'embed' has 2 rows but the vocabulary 3 tokens"),
    (_saved_language_model(decoder_outputs=5), {}, "--readout 'decoder' has 5 outputs but the vocabulary 3 tokens"),
    (_saved_language_model(embedding_size=5), {}, "the embedding's vectors have 5 entries but rnn takes inputs of 4"),
], ids=["repeated token", "another vocabulary", "embedding too short", "readout too wide", "embedding too wide"])
def test_a_language_model_that_does_not_fit_its_vocabulary_is_refused_in_one_line(tmp_path, make, given, expected):
    assert expected in _language_model_refusal(tmp_path, make, **given)


def test_a_vocabulary_that_is_no_file_and_tensors_of_no_modules_shape_are_refused(tmp_path):
    from rnn_dynamics.state_dicts import token_order

    with pytest.raises(ValueError, match=r"^--vocabulary '.*missing\.txt' is not a file$"):
        token_order(tmp_path / "missing.txt", ["a"])
    tensors = {"rnn.weight_ih_l0": torch.zeros(4, 3), "rnn.weight_hh_l0": torch.zeros(5, 2)}  # 4 rows, then 5
    with pytest.raises(ValueError, match=r"^rnn \(weight_ih_l0 \(4, 3\), weight_hh_l0 \(5, 2\)\) is not shaped as "
                                         r"any module this toolkit holds; valid: torch\.nn\.RNN, "):
        module_from_tensors(tensors, nonlinearity="tanh")


def test_checkpoints_of_other_shapes_at_two_steps_and_an_embedding_on_a_task_of_no_tokens_are_refused(tmp_path,
                                                                                                    capsys):
    torch.save(Network(nn.GRU, hidden=4).state_dict(), tmp_path / "net_0.pt")
    torch.save(Network(nn.GRU, hidden=5).state_dict(), tmp_path / "net_10.pt")
    out = tmp_path / "never.nc"
    error = _command_refusal([tmp_path / "net_0.pt", tmp_path / "net_10.pt", "--steps-from-stems", "--preset", "tiny",
                              "--out", out], capsys)
    assert "the files of step 10 hold ('GRUStack', 'tanh') modules of other sizes or type than those of step 0" \
        in error
    error = _command_refusal([tmp_path / "net_0.pt", "--embedding", "embed", "--vocabulary",
                              _vocabulary_file(tmp_path, ["a"]), "--preset", "tiny", "--out", out], capsys)
    assert "--embedding needs a task of tokens with a vocabulary (ptb), not 'adding'" in error
    assert not out.exists()
