import math

import torch

from rnn_dynamics.spectra import eigenvalues, singular_values, spectral_radius


def test_rotation_eigenvalues_are_a_conjugate_pair_on_the_unit_circle():
    theta = 0.3
    rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    eig = eigenvalues(rot)
    assert torch.allclose(eig, torch.tensor([complex(math.cos(theta), math.sin(theta)),
                                             complex(math.cos(theta), -math.sin(theta))], dtype=torch.complex128))


def test_sorted_by_modulus_and_batched():
    w = torch.diag(torch.tensor([0.5, -3.0, 2.0])).expand(4, 3, 3)
    eig = eigenvalues(w)
    assert eig.shape == (4, 3)
    assert torch.allclose(eig[2].real, torch.tensor([-3.0, 2.0, 0.5], dtype=torch.float64))
    assert torch.allclose(spectral_radius(w), torch.full((4,), 3.0, dtype=torch.float64))


def test_singular_values_of_scaled_orthogonal_are_the_gain():
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64))
    assert torch.allclose(singular_values(1.5 * q), torch.full((20,), 1.5, dtype=torch.float64))
