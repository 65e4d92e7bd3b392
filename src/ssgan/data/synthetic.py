"""Tiny, learnable, generated data for tests and smoke runs: one bright bar per class, plus noise."""
from __future__ import annotations

import torch

from .base import ImageSet, SourceData


def load_synthetic(n_train: int = 600, n_test: int = 200, num_classes: int = 4, size: int = 16,
                   seed: int = 0) -> SourceData:
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> ImageSet:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        x = torch.rand((n, 1, size, size), generator=g) * 60
        for c in range(num_classes):
            rows = slice(c * size // num_classes, (c + 1) * size // num_classes)
            x[y == c, 0, rows, :] += 180
        return ImageSet(x.clamp(0, 255).to(torch.uint8), y)

    return SourceData("synthetic", make(n_train), make(n_test), [f"c{i}" for i in range(num_classes)],
                      {"labels": 100})
