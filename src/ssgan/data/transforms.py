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


def adapt_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Gray -> RGB by repetition, RGB -> gray by the channel mean; None keeps the source's channels."""
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return x.float().mean(1, keepdim=True).round().to(torch.uint8)
    raise ConfigError(f"--data.channels={channels}: cannot convert {x.shape[1]}-channel images to {channels}")
