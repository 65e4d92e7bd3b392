"""Run folders: where a run keeps its resolved config, split, metrics, samples and checkpoints, and
the lock that keeps a second process from writing into the same folder."""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

import yaml

from ..config import LABEL_KEYS, Config, from_dict, read_yaml
from ..data.base import SourceData
from ..data.split import Split, check_matches, draw_split, request_text
from ..errors import CheckpointError, ConfigError, DataError, OutputError
from ..files import atomic_write_text

LOCK = ".lock"


def new_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{cfg.data.dataset.replace(':', '-').replace('/', '_')}-{cfg.method.name}-{cfg.model.net}-{stamp}"
    path = Path(cfg.train.out) / name
    i = 1
    while path.exists():
        path = Path(cfg.train.out) / f"{name}-{i}"
        i += 1
    return path


@contextlib.contextmanager
def locked(run_dir: Path, enabled: bool = True):
    """Hold the run folder's lock for the block (only the writing process needs it)."""
    lock = lock_run_dir(run_dir) if enabled else None
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


def lock_run_dir(run_dir: Path):
    """An exclusive lock on the run folder, held while the returned file is open.

    flock is released by the kernel when its process dies, however it dies, so a lock left by a
    killed run is simply taken over; the file only records who holds it, for the refusal message.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise OutputError(f"{run_dir} is in use by {holder}; wait for it to finish, or use another --run-dir") \
            from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    return f


def save_config(cfg: Config, run_dir: Path) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(run_dir: Path) -> Config:
    """The run's resolved config (read_yaml refuses a tagged YAML, never runs it)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no config.yaml (is it an ssgan run folder?)")
    try:
        return from_dict(read_yaml(path))
    except ConfigError as e:
        raise CheckpointError(f"{path}: not a usable ssgan config ({str(e).splitlines()[0]})") from None


def load_or_draw_split(cfg: Config, data: SourceData, run_dir: Path) -> tuple[Split, str]:
    """The run's split.json if it has one, else a new draw (not yet saved); and a note for the log.

    With no label option set, the source's own request applies: MNIST's 100 labels, or all of a
    folder's labeled images. A saved split must match the request: a run killed before its first
    checkpoint leaves one behind, and reusing it for another request would be silently wrong.
    """
    path = run_dir / "split.json"
    d = cfg.data
    asked = {k: getattr(d, k) for k in LABEL_KEYS if getattr(d, k) is not None} or data.default_request
    if not path.is_file():
        split = draw_split(data.train.y.numpy(), data.num_classes, data.name, d.split_seed, **asked,
                           val_size=d.val_size, class_names=data.classes)
        if data.ids is not None:
            split.files = {part: [data.ids[i] for i in getattr(split, part)] for part in ("labeled", "val")}
        return split, ""
    split = Split.load(path)
    wanted = f"{request_text(**asked)}, split seed {d.split_seed}, val size {d.val_size}"
    drawn = f"{split.request}, split seed {split.split_seed}, val size {sum(split.val_per_class)}"
    if wanted != drawn:
        raise DataError(f"{path} was drawn for {drawn}, but this run asks for {wanted}; use a new --run-dir, "
                        "or the options the split was drawn with")
    if split.files is None or data.ids is None:
        check_matches(split, data.name, len(data.train), path)
        return split, ""
    check_matches(split, data.name, split.num_train, path)
    split, gone = split.remap(data.ids)
    if not gone:
        return split, ""
    shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
    return split, (f"the data changed since {path} was drawn: {len(gone)} of its images are gone ({shown}); "
                   f"continuing with {len(split.labeled)} labeled and {len(split.val)} validation images")
