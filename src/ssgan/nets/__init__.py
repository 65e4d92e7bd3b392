"""The network registry: each entry builds a discriminator and, when asked, its generator.

Discriminators return `(logits, features)`; generators have `z_dim` and `sample_z(n, device)`.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..config import ModelConfig
from ..errors import ConfigError
from .dcgan import D_LAYERS, DCGANDiscriminator, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator

Pair = tuple[nn.Module, "nn.Module | None"]


def _dcgan(size: int) -> Callable[..., Pair]:
    def build(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
        if image_size != size:
            raise ConfigError(f"net dcgan{size} needs --data.image_size={size}, got {image_size} "
                              f"(or use net dcgan{image_size} if it exists: "
                              f"{', '.join(f'dcgan{s}' for s in D_LAYERS)})")
        return (DCGANDiscriminator(size, channels, num_logits, cfg.width, cfg.dropout),
                DCGANGenerator(size, channels, cfg.z_dim, cfg.width, cfg.dropout) if generator else None)
    return build


def _dcgan_any(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
    if image_size not in D_LAYERS:
        raise ConfigError(f"net dcgan is built for image sizes {', '.join(map(str, D_LAYERS))}, got {image_size}; "
                          "set --image-size or use --net mlp")
    return _dcgan(image_size)(cfg, channels, image_size, num_logits, generator)


def _mlp(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
    return (MLPDiscriminator(channels * image_size * image_size, num_logits),
            MLPGenerator((channels, image_size, image_size), cfg.z_dim) if generator else None)


NETS: dict[str, Callable[..., Pair]] = {"mlp": _mlp, "dcgan": _dcgan_any, **{f"dcgan{s}": _dcgan(s) for s in D_LAYERS}}


def build_nets(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool = True) -> Pair:
    """(D, G); G is None when `generator` is false (a method that trains none)."""
    if cfg.net not in NETS:
        raise ConfigError(f"unknown net '{cfg.net}'; valid: {', '.join(NETS)}")
    return NETS[cfg.net](cfg, channels, image_size, num_logits, generator)
