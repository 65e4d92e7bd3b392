"""The MLP pair of Salimans et al.'s MNIST code (improved-gan, train_mnist_feature_matching.py).

D: Gaussian noise 0.3 on the input (in [0, 1] pixel units, as the reference), then weight-normalised dense 1000, 500, 250, 250, 250 (ReLU,
Gaussian noise 0.5 after each), and a weight-normalised dense K head with a trained scale. Its
features for feature matching are the last 250-unit layer, before its noise.
G: uniform z (100) -> dense 500 -> dense 500 (softplus, batch norm without scale) -> weight-normalised
dense to the image, sigmoid, mapped to [-1, 1] to match our data range.

Weight normalisation follows the reference: w = g * v / ||v||; hidden scales are fixed after a
data-dependent initialisation (only the head's scale trains), which `data_init` performs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import augmentation
from .weightnorm import WNLinear


def to_reference_scale(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], the pixel scale of the reference code: its input noise (sigma 0.3) is
    relative to that scale, and on [-1, 1] it would be half as strong a regulariser."""
    return (x + 1) * 0.5


class GaussianNoise(nn.Module):
    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sigma > 0:
            return x + torch.randn_like(x) * self.sigma
        return x


class MLPDiscriminator(nn.Module):
    def __init__(self, in_dim: int, num_logits: int, hidden=(1000, 500, 250, 250, 250), input_shift: int = 0,
                 input_flip: bool = False, input_cutout: int = 0):
        super().__init__()
        # not in the reference: optional augmentation of the image in training (off by default)
        self.augment = augmentation(input_shift, input_flip, input_cutout)
        self.input_noise = GaussianNoise(0.3)
        dims = (in_dim,) + tuple(hidden)
        self.hidden = nn.ModuleList(WNLinear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.noise = GaussianNoise(0.5)
        self.head = WNLinear(dims[-1], num_logits, train_scale=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.input_noise(to_reference_scale(self.augment(x)).flatten(1))
        for i, layer in enumerate(self.hidden):
            if i:
                h = self.noise(h)
            h = F.relu(layer(h))
        features = h                                   # (B, 250): matched by G
        return self.head(self.noise(h)), features      # (B, num_logits), (B, F)

    @torch.no_grad()
    def data_init(self, x: torch.Tensor) -> None:
        """Initialise each layer on a batch passed through the noisy network, as the reference does
        (its init pass runs with the Gaussian-noise layers on, which the scales must absorb)."""
        h = self.input_noise(to_reference_scale(self.augment(x)).flatten(1))
        for i, layer in enumerate(self.hidden):
            if i:
                h = self.noise(h)
            h = F.relu(layer.data_init(h))
        self.head.data_init(self.noise(h))


class MLPGenerator(nn.Module):
    def __init__(self, out_shape: tuple[int, int, int], z_dim: int = 100, hidden: int = 500):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, out_shape
        self.fc1 = nn.Linear(z_dim, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden, affine=False)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden, affine=False)
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.out = WNLinear(hidden, math.prod(out_shape), train_scale=True, init_std=0.05)

    def sample_z(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        return torch.rand(n, self.z_dim, device=device, generator=generator)   # uniform, as the reference

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.softplus(self.bn1(self.fc1(z)) + self.b1)
        h = F.softplus(self.bn2(self.fc2(h)) + self.b2)
        x = torch.sigmoid(self.out(h)) * 2 - 1          # the reference's sigmoid, on our [-1, 1] scale
        return x.view(-1, *self.out_shape)             # (B, C, H, W)
