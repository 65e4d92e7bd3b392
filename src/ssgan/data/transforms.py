"""Pixel conversions shared by training, evaluation and prediction. Images stay uint8 (one byte per
pixel) until a batch is drawn; `to_unit_range` scales each batch to the generator's [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of the generator's tanh."""
    return x.float().div_(127.5).sub_(1.0)


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize (N, C, H, W) uint8 images to size x size (bilinear, antialiased), in chunks to bound memory."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        part = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


class ResizedImages:
    """uint8 images brought to `size` and `channels` batch by batch, as they are drawn.

    For a source smaller than what the net takes: MNIST at the recipe's 64x64 is 287 MB resident
    once resized, 55 MB as stored, and resizing a batch of 128 costs little beside a 64x64 step.
    `resize_uint8` treats each image on its own, so a batch gets the pixels the whole set resized at
    once would give (tests/test_transforms.py). Indexed as a tensor is: an index, a slice, an index
    tensor or a bool mask.
    """

    def __init__(self, x: torch.Tensor, size: int, channels: int | None):
        self.x, self.size, self.channels = x, size, channels

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.x), self.channels or self.x.shape[1], self.size, self.size)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx) -> torch.Tensor:
        picked = self.x[idx]
        one = picked.ndim == 3                     # a single image: (C, H, W)
        out = adapt_channels(resize_uint8(picked.unsqueeze(0) if one else picked, self.size), self.channels)
        return out[0] if one else out


def sized(x: torch.Tensor, size: int, channels: int | None):
    """`x` at `size` and `channels`: resized now when that is no larger than `x`, else a ResizedImages
    that resizes each batch as it is drawn (the resident copy stays the smaller one)."""
    bigger = size * size * (channels or x.shape[1]) > x.shape[-1] * x.shape[-2] * x.shape[1]
    return ResizedImages(x, size, channels) if bigger else adapt_channels(resize_uint8(x, size), channels)


def adapt_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Gray -> RGB by repetition, RGB -> gray by the channel mean; None keeps the source's channels."""
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return x.float().mean(1, keepdim=True).round().to(torch.uint8)
    raise ConfigError(f"--data.channels={channels}: cannot convert {x.shape[1]}-channel images to {channels}")
