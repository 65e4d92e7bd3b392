"""Endless batch streams over resident tensors: labeled (images, labels) and unlabeled (images only).

A stream walks through successive random permutations of its pool, so a pool smaller than a batch
(100 labels, batch 100) is tiled and reshuffled, as in the Salimans et al. reference code. Each
stream owns its torch.Generator; its state (generator, permutation, position) goes into the
checkpoint, so a run resumed mid-epoch draws exactly the batches it would have drawn.

The unlabeled stream is built from images alone: it never receives labels, so no code path can
leak the labels of unlabeled images into training.
"""
from __future__ import annotations

import torch

from .sources import to_unit_range


class IndexStream:
    """Endless indices into a pool, one permutation after another."""

    def __init__(self, pool: torch.Tensor, seed: int):
        if len(pool) == 0:
            raise ValueError("cannot draw batches from an empty pool")
        self.pool = pool
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(pool), generator=self.gen)
        self.pos = 0

    def next(self, n: int) -> torch.Tensor:
        parts, need = [], n
        while need > 0:
            if self.pos == len(self.perm):
                self.perm = torch.randperm(len(self.pool), generator=self.gen)
                self.pos = 0
            take = min(need, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return self.pool[parts[0] if len(parts) == 1 else torch.cat(parts)]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


class UnlabeledStream:
    """Batches of unlabeled images, scaled to [-1, 1]. Takes images only, by design."""

    def __init__(self, images: torch.Tensor, pool: torch.Tensor, batch_size: int, seed: int,
                 device: torch.device):
        self.images, self.batch_size, self.device = images, batch_size, device
        self.index = IndexStream(pool, seed)

    def next(self) -> torch.Tensor:
        idx = self.index.next(self.batch_size)
        return to_unit_range(self.images[idx].to(self.device, non_blocking=True))  # (B, C, H, W)

    def state_dict(self) -> dict:
        return self.index.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.index.load_state_dict(state)


class LabeledStream:
    """Batches of (images in [-1, 1], labels) from the few labeled images."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, batch_size: int,
                 seed: int, device: torch.device):
        self.images, self.labels, self.batch_size, self.device = images, labels, batch_size, device
        self.index = IndexStream(pool, seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.index.next(self.batch_size)
        x = to_unit_range(self.images[idx].to(self.device, non_blocking=True))  # (B, C, H, W)
        return x, self.labels[idx].to(self.device, non_blocking=True)            # (B,)

    def state_dict(self) -> dict:
        return self.index.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.index.load_state_dict(state)
