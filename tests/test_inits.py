import math

import pytest
import torch

from rnn_dynamics import inits
from rnn_dynamics import theory
from rnn_dynamics.inits import describe_inits, get_init, list_inits, make_recurrent, parse_init_spec, register_init
from rnn_dynamics.nonlinearities import get_nonlinearity


def test_registry_lists_builtins():
    assert {"identity", "scaled_identity", "orthogonal", "random_walk", "xavier", "he", "gaussian"} <= set(list_inits())


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown init 'nope'.*identity.*orthogonal"):
        get_init("nope")


def test_spec_parsing_keeps_types():
    assert parse_init_spec("scaled_identity:scale=0.5") == ("scaled_identity", {"scale": 0.5})
    assert parse_init_spec("xavier:distribution=uniform,gain=2") == ("xavier", {"distribution": "uniform", "gain": 2})
    assert parse_init_spec("identity") == ("identity", {})


@pytest.mark.parametrize("spec, message", [
    ("scaled_identity:size=2", "has no parameter 'size'.*scale"),
    ("gaussian:std", "bad init parameter"),
    ("xavier:distribution=cauchy", None),
    ("orthogonal:gain=abc", "init 'orthogonal' parameter 'gain' must be a number, got 'abc'"),
    ("scaled_identity:scale=x", "parameter 'scale' must be a number"),
    ("gaussian:std=abc", "parameter 'std' must be a number"),
    ("random_walk:gain=true", "parameter 'gain' must be a number"),
])
def test_bad_specs(spec, message, gen):
    with pytest.raises(ValueError, match=message):
        make_recurrent(spec, 4, "relu", gen)


def test_identity_and_scaled_identity(gen):
    assert torch.equal(make_recurrent("identity", 5, "relu", gen), torch.eye(5, dtype=torch.float64))
    assert torch.allclose(make_recurrent("scaled_identity", 5, "relu", gen), 0.01 * torch.eye(5, dtype=torch.float64))
    assert torch.allclose(make_recurrent("scaled_identity:scale=0.5", 5, "tanh", gen),
                          0.5 * torch.eye(5, dtype=torch.float64))


@pytest.mark.parametrize("gain", [1.0, 1.3])
def test_orthogonal_satisfies_wtw_equals_gain_squared_identity(gain, gen):
    w = make_recurrent(f"orthogonal:gain={gain}", 64, "tanh", gen)
    assert torch.allclose(w.T @ w, gain**2 * torch.eye(64, dtype=torch.float64), atol=1e-12)


def test_orthogonal_is_not_biased_to_positive_diagonal_of_r(gen):
    # With the sign fix, Q's distribution is Haar: the mean of diag(Q) over many draws is ~0.
    diag_means = torch.stack([torch.diagonal(make_recurrent("orthogonal", 8, "relu", gen)) for _ in range(400)]).mean()
    assert abs(diag_means.item()) < 0.05


def test_random_walk_gains_match_sussillo_abbott():
    def gain(n, name):
        return get_nonlinearity(name).random_walk_gain(n)

    assert gain(100, "relu") == pytest.approx(math.sqrt(2) * math.exp(1.2 / 97.6))
    assert gain(3, "relu") == pytest.approx(math.sqrt(2) * math.exp(1.2 / 3.6))  # max(N, 6)
    assert gain(100, "linear") == pytest.approx(math.exp(1 / 200))
    assert gain(100, "tanh") == theory.tanh_random_walk_gain(100) and 1.09 < gain(100, "tanh") < 1.11


def test_random_walk_tanh_below_the_width_with_a_gain_asks_for_one(gen):
    with pytest.raises(ValueError, match="no tanh random-walk gain exists at N = 6.*random_walk:gain="):
        make_recurrent("random_walk", 6, "tanh", gen)
    assert make_recurrent("random_walk:gain=1.5", 6, "tanh", gen).shape == (6, 6)


@pytest.mark.parametrize("spec, nonlinearity, expected_std", [
    ("random_walk", "relu", math.sqrt(2) * math.exp(1.2 / 397.6) / 20),
    ("random_walk:gain=2", "tanh", 2 / 20),
    ("xavier", "tanh", math.sqrt(2 / 800)),
    ("xavier:distribution=uniform", "tanh", math.sqrt(2 / 800)),
    ("he", "relu", math.sqrt(2 / 400)),
    ("gaussian", "relu", 0.001),
    ("gaussian:std=0.3", "relu", 0.3),
])
def test_entry_standard_deviations(spec, nonlinearity, expected_std, gen):
    w = make_recurrent(spec, 400, nonlinearity, gen)
    assert abs(w.mean().item()) < 4 * expected_std / 400
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)  # 160k entries: sampling error ~0.2%


def test_xavier_uniform_bound(gen):
    w = make_recurrent("xavier:distribution=uniform", 200, "tanh", gen)
    bound = math.sqrt(6 / 400)
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound


def test_register_custom_init(gen):
    @register_init("test_diag_half")
    def diag_half(shape, nonlinearity, generator, *, value=0.5):
        return value * torch.eye(*shape, dtype=torch.float64)

    try:
        assert "test_diag_half" in list_inits()
        assert torch.allclose(make_recurrent("test_diag_half:value=0.25", 3, "relu", gen),
                              0.25 * torch.eye(3, dtype=torch.float64))
        with pytest.raises(ValueError, match="already registered"):
            register_init("test_diag_half")(diag_half)
    finally:
        inits.INITS.unregister("test_diag_half")


def test_nonpositive_size_and_bad_nonlinearity(gen):
    with pytest.raises(ValueError, match="hidden size must be positive"):
        make_recurrent("identity", 0, "relu", gen)
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'; valid nonlinearities: linear, relu, tanh"):
        make_recurrent("identity", 3, "sigmoid", gen)


def test_same_coordinates_same_matrix():
    from rnn_dynamics.seeding import generator_for
    a = make_recurrent("he", 10, "relu", generator_for("recurrent", 0, "he", "relu", 0))
    b = make_recurrent("he", 10, "relu", generator_for("recurrent", 0, "he", "relu", 0))
    c = make_recurrent("he", 10, "relu", generator_for("recurrent", 1, "he", "relu", 0))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_every_init_is_described_with_its_parameters():
    described = {name: (params, doc) for name, params, doc in describe_inits()}
    assert set(described) == set(list_inits())
    assert described["orthogonal"][0] == "gain=1.0" and described["scaled_identity"][0] == "scale=0.01"
    assert all(doc for _, doc in described.values())
