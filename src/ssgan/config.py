"""Typed configuration: dataclass defaults, then YAML changes, then dotted CLI overrides.

Every default is written once, here, with the reason in its `help`. YAML files and the CLI hold
only changes. Unknown keys and values of the wrong type are errors that name the key and the
nearest valid ones, because a silently ignored typo wastes a training run.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError


# Ranges of numeric keys: (check, how the error message says it). None always passes (not used).
POSITIVE = (lambda v: v > 0, "> 0")
AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
FRACTION = (lambda v: 0 <= v < 1, "in [0, 1)")
OPEN_UNIT = (lambda v: 0 < v < 1, "in (0, 1)")
RATE = (lambda v: 0 < v <= 1, "in (0, 1]")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None,
       valid: tuple[Callable[[Any], bool], str] | None = None):
    return field(default=default, metadata={"help": help, "choices": choices, "valid": valid})


@dataclass
class DataConfig:
    dataset: str = _f("mnist", "data source: a registered name (mnist) or folder:PATH for your own images")
    root: str | None = _f(None, "data root; None: $SSGAN_DATA, else ~/.cache/ssgan")
    image_size: int | None = _f(None, "side in pixels images are resized to; None: the source's own (MNIST 28; "
                                      "for folders the nearest of 28/32/64 to the labeled images' median)",
                                valid=(lambda v: v >= 8, ">= 8"))
    channels: int | None = _f(None, "image channels; None: the data source's own (1 for MNIST)",
                              valid=(lambda v: v in (1, 3), "1 or 3"))
    labels: int | None = _f(None, "labeled images in total, class-balanced; None (and no other label option): the "
                                  "dataset's own: 100 for MNIST (10 per class, the paper protocol), every image "
                                  "in labeled/ for a folder", valid=AT_LEAST_1)
    labels_per_class: int | None = _f(None, "labeled images per class (instead of --labels)", valid=AT_LEAST_1)
    labeled_rate: float | None = _f(None, "fraction of training images labeled, in (0, 1] (instead of --labels)",
                                    valid=RATE)
    split_seed: int = _f(0, "seed of the labeled/validation draw, separate from the training seed",
                         valid=NON_NEGATIVE)
    val_size: int = _f(0, "labeled validation images held out of training for model selection; 0: none",
                       valid=NON_NEGATIVE)
    download: bool = _f(True, "download missing files from the official mirrors")
    allow_subset: bool = _f(
        False, "fall back to the embedded 6,000-image MNIST subset when the full files are unavailable")
    skip_bad_files: bool = _f(False, "folder data: skip unreadable images and list them in the run folder")
    workers: int = _f(0, "DataLoader workers for lazily read folder data; 0 reads in the main process",
                      valid=NON_NEGATIVE)


@dataclass
class ModelConfig:
    net: str = _f("auto", "network pair from the NETS registry, or auto: the measured choice for the data (mlp "
                          "for 28 x 28 images, cnn32 for 32 x 32, dcgan64 for 64); mlp, cnn32, dcgan, dcgan28, "
                          "dcgan32, dcgan64")
    width: float = _f(1.0, "channel multiplier of the conv nets (cnn32, dcgan); below 1 trains them in minutes on "
                           "a CPU", valid=POSITIVE)
    dropout: float = _f(0.3, "dropout probability in the DCGAN nets (the recipe passed keep_prob 0.7)",
                        valid=FRACTION)
    input_noise: float = _f(0.0, "std of Gaussian noise added to D's input in training, in [0, 1] pixel units (the "
                                 "mlp has 0.3 built in, as Salimans et al.); DCGAN nets", valid=NON_NEGATIVE)
    layer_noise: float = _f(0.0, "std of Gaussian noise added to the output of each of D's hidden conv blocks in "
                                 "training (Salimans et al.'s MNIST D adds 0.5 before every hidden layer); DCGAN nets",
                            valid=NON_NEGATIVE)
    input_shift: int = _f(0, "random translation of D's input by up to N pixels in training, each image its own, "
                             "real and generated alike (DiffAugment's translation); every net",
                        valid=NON_NEGATIVE)
    input_flip: bool = _f(False, "random left-right flip of each of D's input images in training, real and "
                                 "generated alike (for photos, not digits); every net")
    input_cutout: int = _f(0, "side in pixels of a square blanked at a random place of each of D's input images in "
                              "training, real and generated alike (cutout, as DiffAugment); 0: off; every net",
                           valid=NON_NEGATIVE)
    g_dropout: float | None = _f(None, "dropout probability in the DCGAN generator; None: the same as dropout (the "
                                       "recipe's G has it)", valid=FRACTION)
    z_dim: int = _f(100, "latent size, as in the recipe and Salimans et al.", valid=AT_LEAST_1)


@dataclass
class MethodConfig:
    name: str = _f("fm", "method from the ALGORITHMS registry: fm (Salimans et al., the measured best), ct (fm "
                         "plus a consistency term), badgan (fm plus Bad GAN's pull-away and entropy terms), "
                         "kplus1, supervised")
    fm_distance: str | None = _f(None, "feature-matching distance: l2 (mean squared) or l1 (mean absolute); "
                                       "None: the net's paper's (l2 for mlp and dcgan, l1 for cnn32)", ("l2", "l1"))
    real_fake: str = _f("softmax", "kplus1: how real/fake is read from D's K+1 outputs: softmax over all K+1 (Salimans "
                                   "et al. eq. 2: the unlabeled term then shapes the class outputs too; 90.6% against "
                                   "85.1% validation accuracy on MNIST-100 after 5 epochs of dcgan28), or sigmoid of "
                                   "the extra output alone (the recipe's code)", ("softmax", "sigmoid"))
    unsup_weight: float = _f(1.0, "weight of the unsupervised real/fake term in the D loss", valid=NON_NEGATIVE)
    adv_weight: float = _f(1.0, "kplus1: weight of G's non-saturating 'looks real' term", valid=NON_NEGATIVE)
    fm_weight: float = _f(1.0, "weight of G's feature-matching term", valid=NON_NEGATIVE)
    consistency_weight: float = _f(1.0, "ct: weight of the consistency term (squared distance of D's class "
                                        "probabilities on two noisy passes of the same unlabeled images)",
                                   valid=NON_NEGATIVE)
    kplus1_consistency: float = _f(0.0, "kplus1: weight of the same consistency term on the K class outputs; 0: "
                                        "off, as the recipe", valid=NON_NEGATIVE)
    pull_away_weight: float = _f(0.8, "badgan: weight of G's pull-away term on D's features of generated images "
                                      "(Dai et al.'s 0.8)", valid=NON_NEGATIVE)
    entropy_weight: float = _f(0.0, "ct, kplus1 and badgan: weight of the conditional entropy of p(y | x) over the K "
                                    "classes on unlabeled images; 0: off",
                               valid=NON_NEGATIVE)
    entropy_from_epoch: int = _f(1, "the epoch (from 1) at which the entropy term starts; before it its weight is 0. "
                                    "From the start, it makes D confident in its early wrong class calls on "
                                    "unlabeled images (docs/results.md); later, D's calls are mostly right",
                                 valid=AT_LEAST_1)
    pseudo_threshold: float = _f(0.0, "ct and kplus1: 0: the consistency term is the squared distance of the two "
                                      "views' class probabilities; > 0: it is the cross-entropy of the first view "
                                      "against the second's arg-max class where that class's probability is at "
                                      "least this (pseudo-labels; FixMatch, Sohn et al. 2020, uses 0.95)",
                                 valid=FRACTION)
    teacher: str = _f("self", "ct and kplus1: where the consistency term's second view comes from: self (a second "
                              "noisy pass of D, the Pi-model) or ema (a noisy pass of the EMA of D, without "
                              "gradients: the mean teacher of Tarvainen & Valpola 2017; needs train.ema)",
                      ("self", "ema"))


@dataclass
class OptimConfig:
    lr: float | None = _f(None, "Adam learning rate of D and G; None: the net's paper's (mlp 3e-3, cnn32 3e-4, "
                                "dcgan 2e-4)", valid=POSITIVE)
    g_lr: float | None = _f(None, "G's learning rate; None: the same as lr", valid=POSITIVE)
    beta1: float = _f(0.5, "Adam beta1; 0.5 is the GAN standard since DCGAN", valid=FRACTION)
    g_beta1: float | None = _f(None, "G's Adam beta1; None: the same as beta1 (Dai et al.'s Bad GAN code for MNIST "
                                     "uses 0 for G, with G's rate a third of D's)", valid=FRACTION)
    beta2: float = _f(0.999, "Adam beta2", valid=FRACTION)
    eps: float = _f(1e-4, "Adam epsilon, added to sqrt(v): Salimans et al.'s Theano Adam put 1e-8 inside the "
                          "sqrt, which acts like ~1e-4 here; with torch's 1e-8 the mlp pair collapsed",
                    valid=POSITIVE)
    decay: str = _f("none", "learning-rate schedule: none, or linear to zero over the last decay_epochs",
                    ("none", "linear"))
    decay_epochs: int = _f(0, "epochs at the end over which 'linear' decays the rate to zero; 0: all",
                           valid=NON_NEGATIVE)
    g_steps: int = _f(1, "G updates per D update, each on a fresh generated batch (DCGAN's code used 2 to keep "
                         "D from winning outright)", valid=AT_LEAST_1)


@dataclass
class TrainConfig:
    epochs: int | None = _f(None, "passes over the unlabeled data; None: as many as make 6,000 steps (10 on MNIST): a "
                                  "small folder needs many passes before its unlabeled images help", valid=AT_LEAST_1)
    batch_size: int = _f(100, "images per batch in each stream (labeled, unlabeled, generated)", valid=AT_LEAST_1)
    seed: int = _f(0, "training seed (weights, batch order, noise); the split has its own", valid=NON_NEGATIVE)
    ema: float | None = _f(0.999, "decay of an exponential moving average of D's weights used for evaluation "
                                  "(Salimans et al.'s code); None: evaluate D itself", valid=OPEN_UNIT)
    ema_warmup: bool = _f(True, "EMA decay min(ema, (1 + n) / (10 + n)) after n steps, so the average follows D early "
                                "on; off, it keeps ~1/(1 - ema) steps of D's first weights (on the MNIST subset, "
                                "75% test accuracy for D against 24% for its plain EMA after 120 steps)")
    amp: str = _f("none", "mixed precision: none, bf16 autocast, or auto: bf16 where a start-up probe (a matmul and "
                          "a conv, both ways) finds it at least 1.3x faster than fp32 here; the choice is logged and "
                          "saved with the run", ("none", "bf16", "auto"))
    channels_last: bool = _f(True, "keep the conv nets' weights and activations channels-last (NHWC), the layout "
                                   "oneDNN's CPU kernels are fastest in (the recipe's step 1.22x, cnn32's 1.25x faster "
                                   "in benchmarks/results/throughput_session6.json); no effect on the mlp")
    device: str = _f("auto", "auto, cpu, cuda, cuda:K or mps")
    threads: int | None = _f(None, "torch intra-op threads; None: torch's default (one per core)", valid=AT_LEAST_1)
    sync_bn: bool = _f(False, "several processes: SyncBatchNorm (CUDA only); off, each process normalises its "
                              "own batch, as one process with that batch size would")
    eval_batch_size: int = _f(1000, "batch size of evaluation, large since it needs no gradients; at most "
                              "784,000 input values per batch (1,000 MNIST images, 191 at 64x64)", valid=AT_LEAST_1)
    sample_every: int = _f(1, "epochs between sample grids; 0: none", valid=NON_NEGATIVE)
    report: bool = _f(True, "write report.html (one self-contained page: curves, samples, confusion matrix, "
                            "errors) in the run folder at the end of the run and when stopped by a signal; "
                            "--no-report: off")
    track: str = _f("none", "also log per-epoch scalars and sample grids for TensorBoard in RUN_DIR/tb "
                            "(pip install 'ssgan[tensorboard]'); metrics.jsonl stays the record",
                    ("none", "tensorboard"))
    max_steps: int | None = _f(None, "stop after this many steps per epoch (tests and smoke runs); None: full",
                               valid=AT_LEAST_1)
    out: str = _f("runs", "folder where new run folders are made")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = typing.get_type_hints(Config)  # {"data": DataConfig, ...}
# The label request is one choice: setting one of these in a layer clears the others of the layer below.
LABEL_KEYS = ("labels", "labels_per_class", "labeled_rate")


def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(SECTIONS[s])]


def _field(key: str) -> dataclasses.Field:
    section, _, name = key.partition(".")
    if section in SECTIONS and name:
        for f in dataclasses.fields(SECTIONS[section]):
            if f.name == name:
                return f
    near = difflib.get_close_matches(key, all_keys(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; valid keys: {', '.join(all_keys())}"
    raise ConfigError(f"unknown config key '{key}'{hint}")


@functools.cache
def _hints(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])  # annotations are strings (postponed evaluation)


def _allowed_types(key: str) -> tuple[list[type], bool]:
    """The concrete types a field accepts and whether None is allowed: `int | None` -> ([int], True)."""
    section, _, name = key.partition(".")
    hint = _hints(section)[name]
    args = typing.get_args(hint) or (hint,)
    return [a for a in args if a is not type(None)], type(None) in args


def coerce(key: str, value: Any) -> Any:
    """Check (and, for strings from the command line, parse) a value against the field's type."""
    f = _field(key)
    kinds, nullable = _allowed_types(key)
    if isinstance(value, str) and value.lower() in ("none", "null", "~") and nullable:
        return None
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{key} cannot be None (expected {kinds[0].__name__})")
    for kind in kinds:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
        elif kind is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                value = str(value)
                choices = f.metadata.get("choices")
                if choices and value not in choices:
                    raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
                return value
    expected = " or ".join(k.__name__ for k in kinds) + (" or None" if nullable else "")
    raise ConfigError(f"{key}={value!r}: expected {expected}")


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}; a section given a non-mapping is an error."""
    flat = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if prefix or k not in SECTIONS:
                _field(key)  # raises with suggestions
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def apply(cfg: Config, changes: dict[str, Any], source: str = "overrides") -> Config:
    """Apply one layer of dotted changes (all checked before any is applied)."""
    checked = {}
    for key, value in changes.items():
        try:
            checked[key] = coerce(key, value)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    given = [k for k in LABEL_KEYS if f"data.{k}" in checked]
    if given:
        for k in LABEL_KEYS:
            if k not in given:
                checked[f"data.{k}"] = None
    for key, value in checked.items():
        section, _, name = key.partition(".")
        setattr(getattr(cfg, section), name, value)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's sections. safe_load: a tagged YAML (`!!python/...`) is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(tree).__name__}")
    return tree


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's changes as dotted keys, each checked to exist."""
    try:
        return flatten(read_yaml(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# Keys whose default changed after runs were saved without them: the value those runs used.
LEGACY = {"method.real_fake": "sigmoid", "train.ema_warmup": False, "train.channels_last": False}


def saved_values(tree: dict) -> dict[str, Any]:
    """A saved config's dotted values, with what it did for keys it predates (LEGACY, else the default)."""
    flat = flatten(tree)
    return {**flatten(Config().to_dict()), **{k: v for k, v in LEGACY.items() if k not in flat}, **flat}


def from_dict(tree: dict) -> Config:
    """Rebuild a saved (resolved) config; used when loading runs and checkpoints."""
    return apply(Config(), saved_values(tree), source="saved config")


def build(config_files: list[str] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    cfg = Config()
    for path in config_files or []:
        apply(cfg, load_yaml(path), source=str(path))
    if overrides:
        apply(cfg, overrides, source="command line")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Every numeric key against its range (NaN and infinity fail), then what a type cannot express."""
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            value, valid = getattr(getattr(cfg, section), f.name), f.metadata["valid"]
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{section}.{f.name}={value} must be a finite number")
            if valid is not None and value is not None and not valid[0](value):
                raise ConfigError(f"{section}.{f.name}={value!r} must be {valid[1]}")
    if sum(getattr(cfg.data, k) is not None for k in LABEL_KEYS) > 1:
        raise ConfigError("give the labels one way: data.labels, data.labels_per_class or data.labeled_rate")
    if cfg.method.teacher == "ema" and not cfg.train.ema:
        raise ConfigError("method.teacher=ema needs an EMA of D (train.ema, e.g. 0.999); got train.ema=None")


def help_lines() -> list[tuple[str, str, str]]:
    """(key, default, help) for every field: the source of `ssgan train --help`."""
    rows = []
    for section in SECTIONS:
        for f in dataclasses.fields(SECTIONS[section]):
            rows.append((f"{section}.{f.name}", repr(f.default), f.metadata["help"]))
    return rows
