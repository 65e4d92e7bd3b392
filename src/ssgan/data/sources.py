"""The data-source registry: `--data NAME` or `--data folder:PATH` -> train and test images.

A resident source yields uint8 images (N, C, H, W), brought here to the configured size and
channels and kept as tensors, so batches are drawn by indexing (no per-sample Python). A folder
is read lazily and converts each image as it is read.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import torch

from ..errors import ConfigError
from .base import SourceData
from .folder import load_folder
from .standard import IDX_SETS, cache_dir, load_cifar10, load_idx, load_svhn
from .synthetic import load_synthetic
from .transforms import sized


def default_root() -> Path:
    """--data-root unset: $SSGAN_DATA, else the user's cache (where downloads go)."""
    return Path(os.environ["SSGAN_DATA"]).expanduser() if os.environ.get("SSGAN_DATA") else cache_dir()


def _idx(name: str, cfg, root: Path, arg: str, size_for) -> SourceData:
    return load_idx(name, root, cfg.download, cfg.allow_subset)


# name -> loader(data config, data root, the argument after "name:", size_for); a lazily read source
# (folder) sizes its images itself, the others are resized below.
SOURCES: dict[str, Callable[..., SourceData]] = {
    **{name: functools.partial(_idx, name) for name in IDX_SETS},
    "cifar10": lambda cfg, root, arg, size_for: load_cifar10(root, cfg.download),
    "svhn": lambda cfg, root, arg, size_for: load_svhn(root, cfg.download),
    "synthetic": lambda cfg, root, arg, size_for: load_synthetic(),
    "folder": lambda cfg, root, arg, size_for: load_folder(cfg, Path(arg), size_for),
}
TAKES_ARGUMENT = {"folder": "folder:PATH"}


def load_source(cfg, size_for: Callable[[int], int | None] | None = None) -> SourceData:
    """Load the configured source and bring resident images to the configured size and channels.
    `size_for(channels)`: the size a folder is resized to when none is configured (the net's)."""
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    kind, colon, arg = cfg.dataset.partition(":")
    valid = ", ".join(TAKES_ARGUMENT.get(k, k) for k in SOURCES)
    if kind not in SOURCES or bool(colon) != (kind in TAKES_ARGUMENT) or (colon and not arg):
        raise ConfigError(f"unknown dataset '{cfg.dataset}' (--data); valid: {valid}")
    data = SOURCES[kind](cfg, root, arg, size_for)
    for part in (data.train, data.test):
        if part is not None and isinstance(part.x, torch.Tensor):
            channels = cfg.channels or part.x.shape[1]
            size = cfg.image_size or (size_for(channels) if size_for else None) or part.x.shape[-1]
            part.x = sized(part.x, size, cfg.channels)
    return data
