"""Differentiable augmentation of D's input in training.

`RandomShift` translates each image by its own random offset of up to `max_shift` pixels in each
direction, filling with the background value: the translation of DiffAugment (Zhao et al. 2020),
which is applied to real and generated images alike inside D, so that G's gradients pass through
it and D cannot win by memorising exact pixel positions. Two passes of the same images get different
shifts, which also makes a consistency term compare translated views (the usual perturbation of
the Pi-model on digits). `RandomFlip` mirrors each image left-right with probability 1/2: the
usual augmentation of photos (CIFAR-10's Pi-model and mean-teacher runs use both), wrong for digits.
`RandomCutout` blanks one square of each image at a random place (DeVries & Taylor 2017; DiffAugment's
cutout, whose squares may reach past the border): D must recognise a digit or an object from part of
it, and two passes of the same image blank different parts.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RandomShift(nn.Module):
    def __init__(self, max_shift: int, fill: float = -1.0):
        super().__init__()
        self.max_shift = max_shift
        self.fill = fill  # the background of our [-1, 1] images (black)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return x
        s = self.max_shift
        B, _, H, W = x.shape
        padded = F.pad(x, (s, s, s, s), value=self.fill)                       # (B, C, H + 2s, W + 2s)
        dy = torch.randint(0, 2 * s + 1, (B, 1, 1), device=x.device)          # top-left corner of each crop
        dx = torch.randint(0, 2 * s + 1, (B, 1, 1), device=x.device)
        rows = (torch.arange(H, device=x.device).view(1, H, 1) + dy).expand(B, H, W)
        cols = (torch.arange(W, device=x.device).view(1, 1, W) + dx).expand(B, H, W)
        b = torch.arange(B, device=x.device).view(B, 1, 1).expand(B, H, W)
        return padded.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W), each crop


class RandomFlip(nn.Module):
    def __init__(self, enabled: bool):
        super().__init__()
        self.enabled = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.enabled:
            return x
        flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5         # each image its own coin
        return torch.where(flip, x.flip(3), x)


class RandomCutout(nn.Module):
    def __init__(self, size: int, fill: float = -1.0):
        super().__init__()
        self.size = size
        self.fill = fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.size == 0:
            return x
        B, _, H, W = x.shape
        cy = torch.randint(0, H, (B, 1, 1, 1), device=x.device)                # centre of each square
        cx = torch.randint(0, W, (B, 1, 1, 1), device=x.device)
        top, left = cy - self.size // 2, cx - self.size // 2
        rows = torch.arange(H, device=x.device).view(1, 1, H, 1)
        cols = torch.arange(W, device=x.device).view(1, 1, 1, W)
        inside = (rows >= top) & (rows < top + self.size) & (cols >= left) & (cols < left + self.size)
        return x.masked_fill(inside, self.fill)                                 # (B, C, H, W)


def augmentation(max_shift: int, flip: bool, cutout: int = 0) -> nn.Sequential:
    """D's optional input augmentation in training (flip, shift, then cutout); no weights, so a net's
    state dict is the same with or without it."""
    return nn.Sequential(RandomFlip(flip), RandomShift(max_shift), RandomCutout(cutout))
