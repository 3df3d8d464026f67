"""The closed-form references against direct numerical experiments."""

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from rnn_dynamics import theory
from rnn_dynamics.inits import make_recurrent
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
    gain = theory.variance_preserving_gain("relu")
    n = 400
    w = make_recurrent(f"random_walk:gain={gain}", n, "relu", generator_for("vp"))
    h = torch.randn(n, 200, generator=generator_for("vp-h"), dtype=torch.float64)  # many directions
    ratio = (torch.relu(w @ h).norm(dim=0) ** 2 / h.norm(dim=0) ** 2).mean().item()
    assert ratio == pytest.approx(1.0, abs=0.05)
    assert theory.variance_preserving_gain("tanh") == 1.0


def test_scaled_identity_exponents_and_errors():
    np.testing.assert_allclose(theory.scaled_identity_exponents(4, 0.01), math.log(0.01))
    np.testing.assert_allclose(theory.scaled_identity_exponents(4), 0.0)
    with pytest.raises(ValueError, match="std > 0"):
        theory.gaussian_product_exponents(5, 0.0)
