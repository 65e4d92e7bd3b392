"""DCGAN-style networks of the recipe: strided convolutions (no pooling), LeakyReLU, dropout, batch norm
except on the first and last layers, global average pooling and a dense head; G mirrors D with
transposed convolutions, ReLU, batch norm except at the output, and tanh.

`dcgan64` is the recipe's network at 64x64; `dcgan32` and `dcgan28` are the same design at
native resolution (one fewer upsampling stage is replaced by a stride-2 one), and `width`
scales every channel count so a CPU can train the recipe in minutes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .augment import augmentation
from .dropout import Dropout, LeakyReLUDropout
from .mlp import GaussianNoise

# Per input size: D's conv layers as (out_channels, kernel, stride, padding) and G's transposed
# conv layers as (out_channels, kernel, stride, padding), from the 1x1 latent up to the image.
D_LAYERS = {
    64: [(128, 4, 2, 1), (256, 4, 2, 1), (512, 4, 4, 0), (1024, 3, 1, 0)],   # 64 -> 32 -> 16 -> 4 -> 2
    32: [(128, 4, 2, 1), (256, 4, 2, 1), (512, 4, 2, 1), (1024, 3, 1, 0)],   # 32 -> 16 -> 8 -> 4 -> 2
    28: [(128, 4, 2, 1), (256, 4, 2, 1), (512, 3, 2, 1), (1024, 3, 1, 0)],   # 28 -> 14 -> 7 -> 4 -> 2
}
G_LAYERS = {
    64: [(512, 4, 1, 0), (256, 4, 4, 0), (128, 4, 2, 1)],                    # 1 -> 4 -> 16 -> 32 (-> 64)
    32: [(512, 4, 1, 0), (256, 4, 2, 1), (128, 4, 2, 1)],                    # 1 -> 4 -> 8 -> 16 (-> 32)
    28: [(512, 4, 1, 0), (256, 3, 2, 1), (128, 4, 2, 1)],                    # 1 -> 4 -> 7 -> 14 (-> 28)
}


def scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, num_logits: int, width: float = 1.0,
                 dropout: float = 0.3, input_noise: float = 0.0, layer_noise: float = 0.0, input_shift: int = 0,
                 input_flip: bool = False, input_cutout: int = 0):
        super().__init__()
        self.augment = augmentation(input_shift, input_flip, input_cutout)  # no weights: the same state dict
        # Gaussian noise on the input in training, in [0, 1] pixel units like the mlp's (its std on our
        # [-1, 1] scale is twice that): with few labels D's main regulariser in Salimans et al.'s code.
        # `layer_noise` adds Gaussian noise to every hidden block's output too, as their MNIST D does
        # (std 0.5 before each hidden layer); on MNIST-100 it did not keep D from winning (BN rescales past it).
        self.input_noise = GaussianNoise(2 * input_noise)
        layers: list[nn.Module] = []
        c_in = channels
        spec = D_LAYERS[image_size]
        for i, (c, k, s, p) in enumerate(spec):
            c = scaled(c, width)
            first, last = i == 0, i == len(spec) - 1
            # in place: the conv's backward does not need its output and LeakyReLU's needs only its own
            # output (which BN saves anyway), so one activation per layer is not kept: less memory, same numbers.
            # The first layer has no BN: its LeakyReLU is done by the dropout after it, fused, so its output is
            # not kept twice (dropout.py); nn.Identity holds the LeakyReLU's place, so the state-dict keys stay.
            fused = first and not last
            layers += [nn.Conv2d(c_in, c, k, s, p), nn.Identity() if fused else nn.LeakyReLU(0.2, inplace=True)]
            if not first and not last:
                layers.append(nn.BatchNorm2d(c))
            if not last:  # no dropout on the layer whose pooled output is matched by G
                # after BN the dropout runs in place (dropout.py says why)
                layers.append(LeakyReLUDropout(dropout, 0.2) if fused else Dropout(dropout, inplace=True))
                if layer_noise > 0:  # only when set, so the default net's state-dict keys stay as they were
                    layers.append(GaussianNoise(layer_noise))
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input_noise(self.augment(x))
        features = self.body(x).mean(dim=(2, 3))         # global average pooling: (B, F)
        return self.head(features), features           # (B, num_logits), (B, F)


class DCGANGenerator(nn.Module):
    def __init__(self, image_size: int, channels: int, z_dim: int = 100, width: float = 1.0,
                 dropout: float = 0.3):
        super().__init__()
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        c_in = z_dim
        for c, k, s, p in G_LAYERS[image_size]:
            c = scaled(c, width)
            layers += [nn.ConvTranspose2d(c_in, c, k, s, p), nn.ReLU(inplace=True),  # in place: as D's LeakyReLU
                       nn.BatchNorm2d(c), Dropout(dropout, inplace=True)]
            c_in = c
        layers += [nn.ConvTranspose2d(c_in, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def sample_z(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        return torch.randn(n, self.z_dim, device=device, generator=generator)   # (B, z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z[:, :, None, None])            # (B, C, H, W) in [-1, 1]
