"""`cnn32`: the conv pair of Salimans et al.'s CIFAR-10 and SVHN code (improved-gan,
train_cifar_feature_matching.py), at 32 x 32, with a `width` multiplier on every channel count.

D: dropout 0.2 on the input; weight-normalised 3x3 convs 96, 96, 96 (stride 2); dropout 0.5; 192,
192, 192 (stride 2); dropout 0.5; 192 (3x3, no padding); two 1x1 (network-in-network) layers of
192; LeakyReLU 0.2 after each; global average pooling (the features G matches); a weight-normalised
dense K head with a trained scale, initialised to outputs of std 0.1. Their SVHN D is the same at
64/128 channels (width 2/3). Hidden scales are fixed after the data-dependent initialisation.
G: uniform z (100) -> dense 4x4x512 -> 5x5 transposed convs to 256 (8x8) and 128 (16x16), each
with batch norm (no scale) and ReLU -> weight-normalised 5x5 transposed conv to C channels (32x32),
initialised to outputs of std 0.1 -> tanh.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import augmentation
from .dropout import Dropout
from .weightnorm import WeightNormed, WNConv2d, WNConvTranspose2d, WNLinear


def scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


class CNNDiscriminator(nn.Module):
    def __init__(self, channels: int, num_logits: int, width: float = 1.0, input_shift: int = 0,
                 input_flip: bool = False, input_cutout: int = 0):
        super().__init__()
        # optional augmentation in training (not in their code; no weights, so the state dict is the same)
        self.augment = augmentation(input_shift, input_flip, input_cutout)
        c1, c2 = scaled(96, width), scaled(192, width)
        spec = [(c1, 3, 1, 1), (c1, 3, 1, 1), (c1, 3, 2, 1), "dropout",
                (c2, 3, 1, 1), (c2, 3, 1, 1), (c2, 3, 2, 1), "dropout",
                (c2, 3, 1, 0), (c2, 1, 1, 0), (c2, 1, 1, 0)]
        layers: list[nn.Module] = [Dropout(0.2)]
        c_in = channels
        for s in spec:
            if s == "dropout":
                layers.append(Dropout(0.5))
                continue
            c, k, stride, pad = s
            layers += [WNConv2d(c_in, c, k, stride, pad), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = WNLinear(c_in, num_logits, train_scale=True, init_std=0.05, init_scale=0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(self.augment(x)).mean(dim=(2, 3))   # global average pooling: (B, F)
        return self.head(features), features          # (B, num_logits), (B, F)

    @torch.no_grad()
    def data_init(self, x: torch.Tensor) -> None:
        """Initialise each weight-normalised layer on a batch passing through the network as in
        training (dropout on), as the reference does."""
        h = x
        for layer in self.body:
            h = layer.data_init(h) if isinstance(layer, WeightNormed) else layer(h)
        self.head.data_init(h.mean(dim=(2, 3)))


class CNNGenerator(nn.Module):
    def __init__(self, channels: int, z_dim: int = 100, width: float = 1.0):
        super().__init__()
        self.z_dim = z_dim
        c0, c1, c2 = scaled(512, width), scaled(256, width), scaled(128, width)
        self.c0 = c0
        self.fc = nn.Linear(z_dim, 4 * 4 * c0, bias=False)
        self.bn0 = nn.BatchNorm1d(4 * 4 * c0, affine=False)
        self.b0 = nn.Parameter(torch.zeros(4 * 4 * c0))
        self.up1 = nn.ConvTranspose2d(c0, c1, 5, 2, padding=2, output_padding=1, bias=False)   # 4 -> 8
        self.bn1 = nn.BatchNorm2d(c1, affine=False)
        self.b1 = nn.Parameter(torch.zeros(c1))
        self.up2 = nn.ConvTranspose2d(c1, c2, 5, 2, padding=2, output_padding=1, bias=False)   # 8 -> 16
        self.bn2 = nn.BatchNorm2d(c2, affine=False)
        self.b2 = nn.Parameter(torch.zeros(c2))
        self.out = WNConvTranspose2d(c2, channels, 5, 2, padding=2, output_padding=1,           # 16 -> 32
                                     train_scale=True, init_scale=0.1)
        for m in (self.fc, self.up1, self.up2):
            nn.init.normal_(m.weight, std=0.05)

    def sample_z(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        return torch.rand(n, self.z_dim, device=device, generator=generator)   # uniform, as the reference

    def hidden(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn0(self.fc(z)) + self.b0).view(-1, self.c0, 4, 4)
        h = F.relu(self.bn1(self.up1(h)) + self.b1[:, None, None])
        return F.relu(self.bn2(self.up2(h)) + self.b2[:, None, None])             # (B, c2, 16, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.hidden(z)))                                 # (B, C, 32, 32)

    @torch.no_grad()
    def data_init(self, z: torch.Tensor) -> None:
        self.out.data_init(self.hidden(z))
