"""The method registry: a method is one file and one line here."""
from __future__ import annotations

from ..config import MethodConfig
from ..errors import ConfigError
from .bad_gan import BadGAN
from .base import Algorithm
from .consistency import Consistency
from .feature_matching import FeatureMatching
from .kplus1 import KPlus1
from .supervised import Supervised

ALGORITHMS: dict[str, type[Algorithm]] = {
    "kplus1": KPlus1,
    "fm": FeatureMatching,
    "ct": Consistency,
    "badgan": BadGAN,
    "supervised": Supervised,
}


def build_algorithm(cfg: MethodConfig) -> Algorithm:
    if cfg.name not in ALGORITHMS:
        raise ConfigError(f"unknown method '{cfg.name}'; valid: {', '.join(ALGORITHMS)}")
    algo = ALGORITHMS[cfg.name](cfg)
    if cfg.pseudo_threshold > 0 and algo.unl_views != 2:
        raise ConfigError(f"method.pseudo_threshold={cfg.pseudo_threshold} sets the form of a consistency term, and "
                          f"'{cfg.name}' has none here (use ct, or kplus1 with method.kplus1_consistency > 0)")
    return algo
