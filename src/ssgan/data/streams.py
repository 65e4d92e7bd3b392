"""Endless batch streams over resident tensors: labeled (images, labels) and unlabeled (images only).

A stream walks through successive random permutations of its pool, so a pool smaller than a batch
(100 labels, batch 100) is tiled and reshuffled, as in the Salimans et al. reference code. Each
stream owns its torch.Generator; its state (generator, permutation, position) goes into the
checkpoint, so a run resumed mid-epoch draws exactly the batches it would have drawn.

The unlabeled stream is built from images alone: it never receives labels, so no code path can
leak the labels of unlabeled images into training.
"""
from __future__ import annotations

from collections import deque

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .transforms import ResizedImages, to_unit_range


class IndexStream:
    """Endless indices into a pool, one permutation after another.

    With several processes every rank holds the same stream (same seed), draws the whole global
    batch and keeps its own slice: the union over ranks is exactly the single-process batch.
    """

    def __init__(self, pool: torch.Tensor, seed: int, rank: int = 0, world: int = 1):
        if len(pool) == 0:
            raise ValueError("cannot draw batches from an empty pool")
        self.pool, self.rank, self.world = pool, rank, world
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(pool), generator=self.gen)
        self.pos = 0

    def next(self, n: int) -> torch.Tensor:
        """The next n indices of this rank (n per rank; n * world are drawn)."""
        parts, need = [], n * self.world
        while need > 0:
            if self.pos == len(self.perm):
                self.perm = torch.randperm(len(self.pool), generator=self.gen)
                self.pos = 0
            take = min(need, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        drawn = parts[0] if len(parts) == 1 else torch.cat(parts)
        return self.pool[drawn[self.rank * n:(self.rank + 1) * n]]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def snapshot(self) -> dict:
        """state_dict without copying the permutation: cheap enough to take before every batch.
        Safe because a permutation is replaced by a new tensor, never changed in place."""
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


class _Gather(Dataset):
    """A 'dataset' whose items are whole batches: images[idx] for a tensor of indices."""

    def __init__(self, images):
        self.images = images

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.images[idx]


class _Batches(Sampler):
    """Endless index batches from a stream's IndexStream, remembering the state before each one.

    A DataLoader with workers draws batches ahead of use; the remembered states let the stream
    report (and checkpoint) the state of the next batch it will *hand out*, not the next one drawn.
    """

    def __init__(self, stream: "UnlabeledStream"):
        self.stream = stream

    def __iter__(self):
        while True:
            self.stream.pending.append(self.stream.index.snapshot())
            yield self.stream.index.next(self.stream.batch_size)


class UnlabeledStream:
    """Batches of unlabeled images, scaled to [-1, 1]. Takes images only, by design.

    Resident tensors are gathered in the main process; lazily read images (FileImages) go through
    a DataLoader with `workers` processes when workers > 0.
    """

    def __init__(self, images, pool: torch.Tensor, batch_size: int, seed: int, device: torch.device,
                 workers: int = 0, rank: int = 0, world: int = 1):
        self.images, self.batch_size, self.device, self.workers = images, batch_size, device, workers
        self.index = IndexStream(pool, seed, rank, world)
        self.pending: deque = deque()
        self._it = None

    def _next_uint8(self) -> torch.Tensor:
        if self.workers <= 0 or isinstance(self.images, (torch.Tensor, ResizedImages)):   # resident
            return self.images[self.index.next(self.batch_size)]
        if self._it is None:
            # Its own generator for the workers' base seed: drawn from the global RNG, it would shift every
            # later noise draw, and workers > 0 would train differently from workers = 0.
            loader = DataLoader(_Gather(self.images), batch_size=None, sampler=_Batches(self),
                                num_workers=self.workers, prefetch_factor=2,
                                generator=torch.Generator().manual_seed(int(self.index.gen.initial_seed())))
            self._it = iter(loader)
        batch = next(self._it)
        self.pending.popleft()
        return batch

    def next(self) -> torch.Tensor:
        return to_unit_range(self._next_uint8().to(self.device, non_blocking=True))  # (B, C, H, W)

    def state_dict(self) -> dict:
        if self.pending:
            return {**self.pending[0], "perm": self.pending[0]["perm"].clone()}
        return self.index.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._it = None  # drop batches prefetched from the old position
        self.pending.clear()
        self.index.load_state_dict(state)


class LabeledStream:
    """Batches of (images in [-1, 1], labels) from the few labeled images, held in memory."""

    def __init__(self, images, labels: torch.Tensor, pool: torch.Tensor, batch_size: int,
                 seed: int, device: torch.device, rank: int = 0, world: int = 1):
        # Labeled images are few: read them once (lazily read folders too), then index locally.
        self.images, self.labels = images[pool], labels[pool]
        self.batch_size, self.device = batch_size, device
        self.index = IndexStream(torch.arange(len(pool)), seed, rank, world)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.index.next(self.batch_size)
        x = to_unit_range(self.images[idx].to(self.device, non_blocking=True))  # (B, C, H, W)
        return x, self.labels[idx].to(self.device, non_blocking=True)            # (B,)

    def state_dict(self) -> dict:
        return self.index.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.index.load_state_dict(state)
