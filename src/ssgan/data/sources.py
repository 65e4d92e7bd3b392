"""The data-source registry: `--data NAME` or `--data folder:PATH` -> train and test images.

A resident source yields uint8 images (N, C, H, W), brought here to the configured size and
channels and kept as tensors, so batches are drawn by indexing (no per-sample Python). A folder
is read lazily and converts each image as it is read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ..errors import ConfigError
from .base import SourceData
from .folder import load_folder
from .mnist import load_mnist
from .synthetic import load_synthetic
from .transforms import adapt_channels, resize_uint8


def default_root() -> Path:
    if os.environ.get("SSGAN_DATA"):
        return Path(os.environ["SSGAN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ssgan"


# name -> loader(data config, data root, the argument after "name:")
SOURCES: dict[str, Callable[..., SourceData]] = {
    "mnist": lambda cfg, root, arg: load_mnist(root, download=cfg.download, allow_subset=cfg.allow_subset),
    "synthetic": lambda cfg, root, arg: load_synthetic(),
    "folder": lambda cfg, root, arg: load_folder(cfg, Path(arg)),
}
TAKES_ARGUMENT = {"folder": "folder:PATH"}


def load_source(cfg) -> SourceData:
    """Load the configured source and bring resident images to the configured size and channels."""
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    kind, colon, arg = cfg.dataset.partition(":")
    valid = ", ".join(TAKES_ARGUMENT.get(k, k) for k in SOURCES)
    if kind not in SOURCES or bool(colon) != (kind in TAKES_ARGUMENT) or (colon and not arg):
        raise ConfigError(f"unknown dataset '{cfg.dataset}' (--data); valid: {valid}")
    data = SOURCES[kind](cfg, root, arg)
    for part in (data.train, data.test):
        if part is not None and isinstance(part.x, torch.Tensor):
            part.x = adapt_channels(resize_uint8(part.x, cfg.image_size or part.x.shape[-1]), cfg.channels)
    return data
