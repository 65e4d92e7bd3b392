"""Run folders: where a run keeps its resolved config, split, metrics, samples and checkpoints."""
from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml

from .config import Config, from_dict
from .data.sources import SourceData
from .data.split import Split, check_matches, draw_split
from .io import atomic_write_text


def new_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{cfg.data.dataset.replace(':', '-').replace('/', '_')}-{cfg.method.name}-{cfg.model.net}-{stamp}"
    path = Path(cfg.train.out) / name
    i = 1
    while path.exists():
        path = Path(cfg.train.out) / f"{name}-{i}"
        i += 1
    return path


def save_config(cfg: Config, run_dir: Path) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml (is it an ssgan run folder?)")
    return from_dict(yaml.safe_load(path.read_text()))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; an unavailable explicit device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--train.device={name}: CUDA is not available on this machine (use cpu or auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--train.device={name}: MPS is not available on this machine (use cpu or auto)")
    return device


def load_or_draw_split(cfg: Config, data: SourceData, run_dir: Path) -> Split:
    """The run's split.json if it has one (checked against the data), else a new draw saved there."""
    path = run_dir / "split.json"
    if path.is_file():
        split = Split.load(path)
        check_matches(split, data.name, len(data.train), path)
        return split
    d = cfg.data
    split = draw_split(data.train.y.numpy(), data.num_classes, data.name, d.split_seed, labels=d.labels,
                       labels_per_class=d.labels_per_class, labeled_rate=d.labeled_rate, val_size=d.val_size,
                       class_names=data.classes)
    split.save(path)
    return split
