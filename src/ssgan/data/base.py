"""What every data source returns: uint8 images with labels, the class names, and its label protocol."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageSet:
    x: torch.Tensor  # (N, C, H, W) uint8, or a stand-in indexed the same way: folder.FileImages (read lazily),
    #                  transforms.ResizedImages (resized batch by batch)
    y: torch.Tensor  # (N,) int64; -1 where an image has no label (a folder's unlabeled/)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class SourceData:
    name: str            # what the run records as the dataset (e.g. "mnist", "mnist-subset")
    train: ImageSet
    test: ImageSet | None
    classes: list[str]
    # The label request used when the config gives none (data.labels etc. all None): a benchmark's
    # protocol ({"labels": 100} for MNIST), or for a user's folder every image it labels.
    default_request: dict
    ids: list[str] | None = None  # stable names of the training images where files can change (folders)
    note: str = ""       # one line for the log when the source had to fall back or infer something
    bad_files: list[str] = field(default_factory=list)  # skipped with skip_bad_files: "path<TAB>why"

    @property
    def num_classes(self) -> int:
        return len(self.classes)
