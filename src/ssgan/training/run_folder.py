"""Run folders: where a run keeps its resolved config, split, metrics, samples and checkpoints."""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from ..config import LABEL_KEYS, Config, from_dict
from ..data.base import SourceData
from ..data.split import Split, check_matches, draw_split
from ..errors import CheckpointError
from ..files import atomic_write_text


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
        raise CheckpointError(f"{run_dir} has no config.yaml (is it an ssgan run folder?)")
    return from_dict(yaml.safe_load(path.read_text()))


def load_or_draw_split(cfg: Config, data: SourceData, run_dir: Path) -> Split:
    """The run's split.json if it has one (checked against the data), else a new draw (not yet saved).

    With no label option set, the source's own request applies: MNIST's 100 labels, or all of a
    folder's labeled images.
    """
    path = run_dir / "split.json"
    if path.is_file():
        split = Split.load(path)
        check_matches(split, data.name, len(data.train), path)
        return split
    d = cfg.data
    request = {k: getattr(d, k) for k in LABEL_KEYS if getattr(d, k) is not None} or data.default_request
    return draw_split(data.train.y.numpy(), data.num_classes, data.name, d.split_seed, **request,
                      val_size=d.val_size, class_names=data.classes)
