"""The closed-form references against direct numerical experiments."""

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from rnn_dynamics import theory
from rnn_dynamics.inits import make_recurrent
from rnn_dynamics.nonlinearities import get_nonlinearity
from rnn_dynamics.seeding import generator_for
from rnn_dynamics.spectra import eigenvalues


@pytest.mark.parametrize("gain", [0.5, 1.5])
def test_circular_law(gain):
    n = 600
    w = make_recurrent(f"random_walk:gain={gain}", n, "tanh", generator_for("circular", gain))
    modulus = eigenvalues(w).abs().numpy()
    assert modulus.max() == pytest.approx(theory.circular_law_radius(gain), rel=0.05)
    assert (modulus**2).mean() == pytest.approx(theory.circular_law_mean_square_modulus(gain), rel=0.03)
    half = theory.circular_law_fraction_within(gain / 2, gain)
    assert half == 0.25 and abs((modulus <= gain / 2).mean() - half) < 0.03


def test_gaussian_product_formula_in_both_forms():
    n = 30
    i = np.arange(1, n + 1)
    design_form = (math.log(2 / n) + digamma((n - i + 1) / 2)) / 2
    np.testing.assert_allclose(theory.gaussian_product_exponents(n, 1 / math.sqrt(n)), design_form, atol=1e-12)
    shifted = theory.gaussian_product_exponents(n, 3 / math.sqrt(n))
    np.testing.assert_allclose(shifted - design_form, math.log(3), atol=1e-12)
    assert np.all(np.diff(design_form) < 0)


def test_variance_preserving_gain_keeps_relu_state_norm():
    # E||relu(W h)||^2 = g^2/2 * ||h||^2 for W_ij ~ N(0, g^2/N): g = sqrt 2 preserves it.
    gain = get_nonlinearity("relu").variance_preserving_gain()
    n = 400
    w = make_recurrent(f"random_walk:gain={gain}", n, "relu", generator_for("vp"))
    h = torch.randn(n, 200, generator=generator_for("vp-h"), dtype=torch.float64)  # many directions
    ratio = (torch.relu(w @ h).norm(dim=0) ** 2 / h.norm(dim=0) ** 2).mean().item()
    assert ratio == pytest.approx(1.0, abs=0.05)
    assert get_nonlinearity("tanh").variance_preserving_gain() == 1.0


def test_scaled_identity_exponents_and_errors():
    np.testing.assert_allclose(theory.scaled_identity_exponents(4, 0.01), math.log(0.01))
    np.testing.assert_allclose(theory.scaled_identity_exponents(4), 0.0)
    with pytest.raises(ValueError, match="std > 0"):
        theory.gaussian_product_exponents(5, 0.0)


def test_random_walk_drift_reproduces_sussillo_abbott_closed_forms():
    # linear units (mu2 = mu4 = 1): zero drift exactly at their exp(1/(2N))
    assert theory.random_walk_drift(100, theory.linear_random_walk_gain(100), 1.0, 1.0) == pytest.approx(0, abs=1e-12)
    # ReLU (mu2 = mu4 = 1/2): zero at sqrt(2) exp(1.25/N), within 0.2% of their fit sqrt(2) exp(1.2/(N - 2.4))
    zero = math.sqrt(2) * math.exp(1.25 / 100)
    assert theory.random_walk_drift(100, zero, 0.5, 0.5) == pytest.approx(0, abs=1e-12)
    assert zero == pytest.approx(theory.relu_random_walk_gain(100), rel=2e-3)


def _simulated_tanh_drift(n, gain, layers=2000, warmup=200, batch=32, seed=0):
    """Mean ln-growth per layer of a vector backpropagated through a deep random tanh network."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, batch))
    delta = rng.standard_normal((n, batch))
    total = 0.0
    for layer in range(warmup + layers):
        w = rng.standard_normal((n, n)) * gain / math.sqrt(n)
        pre = w @ h
        h = np.tanh(pre)
        back = w.T @ ((1 - h * h) * delta)
        growth = np.linalg.norm(back, axis=0) / np.linalg.norm(delta, axis=0)
        if layer >= warmup:
            total += np.log(growth).mean()
        delta = back / np.linalg.norm(back, axis=0)
    return total / layers


@pytest.mark.parametrize("n", [50, 100])
def test_tanh_random_walk_gain_makes_deep_tanh_networks_walk_unbiased(n):
    gain = theory.tanh_random_walk_gain(n)
    assert 1.05 < gain < 1.2
    assert abs(_simulated_tanh_drift(n, gain)) < 0.005  # nats per layer
    assert _simulated_tanh_drift(n, 1.5) > 0.02  # a clearly larger gain drifts up
