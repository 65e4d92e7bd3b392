"""Weight-normalised layers (Salimans & Kingma 2016), as Salimans et al.'s SSL-GAN code uses them:
w = g * v / ||v|| per output unit, with a data-dependent initialisation that gives each unit's
outputs on a batch zero mean and a chosen standard deviation. The norm is applied to the output
(one multiply per unit), which is cheaper than rebuilding w each step.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class WeightNormed(nn.Module):
    """Shared parameters and initialisation; subclasses say how v is applied and normed."""

    def __init__(self, v_shape: tuple[int, ...], n_out: int, train_scale: bool, init_std: float,
                 init_scale: float):
        super().__init__()
        self.v = nn.Parameter(torch.randn(v_shape) * init_std)
        self.g = nn.Parameter(torch.ones(n_out), requires_grad=train_scale)  # hidden layers: fixed after init
        self.b = nn.Parameter(torch.zeros(n_out))
        self.init_scale = init_scale  # the outputs' standard deviation after data_init

    def apply_v(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def v_norm(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)  # per output unit: dimension 1
        return self.apply_v(x) * (self.g / self.v_norm()).view(shape) + self.b.view(shape)

    @torch.no_grad()
    def data_init(self, x: torch.Tensor) -> torch.Tensor:
        """Set g and b from a batch (per unit: zero mean, std init_scale); returns the new outputs."""
        self.g.fill_(1.0)
        self.b.zero_()
        a = self(x)
        dims = [d for d in range(a.ndim) if d != 1]
        mean, std = a.mean(dims), a.std(dims, unbiased=False).clamp_min(1e-8)
        self.g.div_(std).mul_(self.init_scale)
        self.b.copy_(-mean / std * self.init_scale)
        return self(x)


class WNLinear(WeightNormed):
    def __init__(self, n_in: int, n_out: int, train_scale: bool = False, init_std: float = 0.1,
                 init_scale: float = 1.0):
        super().__init__((n_out, n_in), n_out, train_scale, init_std, init_scale)

    def apply_v(self, x):
        return F.linear(x, self.v)

    def v_norm(self):
        return self.v.norm(dim=1)


class WNConv2d(WeightNormed):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 train_scale: bool = False, init_std: float = 0.05, init_scale: float = 1.0):
        super().__init__((c_out, c_in, kernel, kernel), c_out, train_scale, init_std, init_scale)
        self.stride, self.padding = stride, padding

    def apply_v(self, x):
        return F.conv2d(x, self.v, stride=self.stride, padding=self.padding)

    def v_norm(self):
        return self.v.flatten(1).norm(dim=1)


class WNConvTranspose2d(WeightNormed):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 output_padding: int = 0, train_scale: bool = False, init_std: float = 0.05,
                 init_scale: float = 1.0):
        super().__init__((c_in, c_out, kernel, kernel), c_out, train_scale, init_std, init_scale)
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def apply_v(self, x):
        return F.conv_transpose2d(x, self.v, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)

    def v_norm(self):
        return self.v.transpose(0, 1).flatten(1).norm(dim=1)
