"""The network registry: each entry builds a discriminator and, when asked, its generator, and says
what it trains with (its paper's learning rate and feature-matching distance).

Discriminators return `(logits, features)`; generators have `z_dim` and `sample_z(n, device)`.
`--net auto` (the default) picks the measured net for the data: `settle` fills in the choice and
the net's settings once the data's size and channels are known.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..config import Config, ModelConfig
from ..errors import ConfigError
from .cnn import CNNDiscriminator, CNNGenerator
from .dcgan import D_LAYERS, DCGANDiscriminator, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator

Pair = tuple[nn.Module, "nn.Module | None"]


@dataclass(frozen=True)
class NetSpec:
    build: Callable[..., Pair]  # (model config, channels, image size, num_logits, generator?) -> (D, G)
    size: int | None            # the image size it is built for; None: any
    lr: float                   # Adam's learning rate in its paper's code
    fm_distance: str            # feature matching in its paper's code: l2 (mean squared) or l1 (mean absolute)


def _needs(net: str, size: int, image_size: int) -> None:
    if image_size != size:
        raise ConfigError(f"net {net} needs --data.image_size={size}, got {image_size}; nets for any size: "
                          f"mlp, dcgan (28, 32 or 64), or --net auto")


def _mlp(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
    return (MLPDiscriminator(channels * image_size * image_size, num_logits, input_shift=cfg.input_shift,
                             input_flip=cfg.input_flip, input_cutout=cfg.input_cutout),
            MLPGenerator((channels, image_size, image_size), cfg.z_dim) if generator else None)


def _cnn32(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
    _needs("cnn32", 32, image_size)
    return (CNNDiscriminator(channels, num_logits, cfg.width, cfg.input_shift, cfg.input_flip, cfg.input_cutout),
            CNNGenerator(channels, cfg.z_dim, cfg.width) if generator else None)


def _dcgan(size: int | None) -> Callable[..., Pair]:
    def build(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool) -> Pair:
        if size is None and image_size not in D_LAYERS:
            raise ConfigError(f"net dcgan is built for image sizes {', '.join(map(str, D_LAYERS))}, got "
                              f"{image_size}; set --image-size or use --net mlp")
        if size is not None:
            _needs(f"dcgan{size}", size, image_size)
        g_dropout = cfg.dropout if cfg.g_dropout is None else cfg.g_dropout
        return (DCGANDiscriminator(image_size, channels, num_logits, cfg.width, cfg.dropout, cfg.input_noise,
                                   cfg.layer_noise, cfg.input_shift, cfg.input_flip, cfg.input_cutout),
                DCGANGenerator(image_size, channels, cfg.z_dim, cfg.width, g_dropout) if generator else None)
    return build


NETS: dict[str, NetSpec] = {
    "mlp": NetSpec(_mlp, None, 3e-3, "l2"),           # Salimans et al.'s MNIST code
    "cnn32": NetSpec(_cnn32, 32, 3e-4, "l1"),         # their CIFAR-10 and SVHN code
    "dcgan": NetSpec(_dcgan(None), None, 2e-4, "l2"),  # DCGAN's rate, as the recipe
    **{f"dcgan{s}": NetSpec(_dcgan(s), s, 2e-4, "l2") for s in D_LAYERS},
}


def choose_net(channels: int, image_size: int) -> str:
    """--net auto: cnn32 at 32 x 32 (colour photos, CIFAR-10, SVHN), dcgan64 at 64, else the mlp pair
    (28 x 28 digits and the like)."""
    return {32: "cnn32", 64: "dcgan64"}.get(image_size, "mlp")


def preferred_size(net: str, channels: int) -> int | None:
    """The image size to resize a folder to when none is set: the net's own, or for auto the one
    its choice is measured at (28 for grayscale, 32 for colour); None: infer from the images."""
    if net == "auto":
        return 28 if channels == 1 else 32
    return NETS[net].size if net in NETS else None


def settle(cfg: Config, channels: int, image_size: int) -> Config:
    """A copy of `cfg` with --net auto resolved and every None the net decides filled in, as the
    run folder records it."""
    cfg = copy.deepcopy(cfg)
    if cfg.model.net == "auto":
        cfg.model.net = choose_net(channels, image_size)
    if cfg.model.net not in NETS:
        raise ConfigError(f"unknown net '{cfg.model.net}'; valid: auto, {', '.join(NETS)}")
    spec = NETS[cfg.model.net]
    if cfg.optim.lr is None:
        cfg.optim.lr = spec.lr
    if cfg.method.fm_distance is None:
        cfg.method.fm_distance = spec.fm_distance
    cfg.data.image_size, cfg.data.channels = image_size, channels
    return cfg


def to_layout(net: nn.Module | None, channels_last: bool) -> nn.Module | None:
    """Conv weights (and so the activations they produce) in channels-last order when asked; 2-D
    weights, and so the mlp, are left as they are. Training and the benchmarks both call this."""
    if net is None or not channels_last:
        return net
    return net.to(memory_format=torch.channels_last)


def build_nets(cfg: ModelConfig, channels: int, image_size: int, num_logits: int, generator: bool = True) -> Pair:
    """(D, G); G is None when `generator` is false (a method that trains none)."""
    if cfg.net not in NETS:
        raise ConfigError(f"unknown net '{cfg.net}'; valid: auto, {', '.join(NETS)}")
    return NETS[cfg.net].build(cfg, channels, image_size, num_logits, generator)
