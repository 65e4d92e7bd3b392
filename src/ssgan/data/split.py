"""The labeled / unlabeled / validation split: class-balanced, seeded on its own, saved with the run.

Protocol (Salimans et al. 2016; FixMatch-style reproducibility): every training image not held out
for validation is unlabeled data; the labeled images are a class-balanced draw from them. The split
seed is separate from the training seed, so methods and training seeds compare on identical splits.
A split saved in a run folder is reused, never silently redrawn.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..files import atomic_write_text


@dataclass
class Split:
    dataset: str
    split_seed: int
    num_train: int
    labeled: list[int]        # indices into the training set, class-balanced
    val: list[int]            # held out of training entirely (labels and images)
    labeled_per_class: list[int]
    val_per_class: list[int]
    request: str              # how the labels were asked for, e.g. "labels=100"
    # Sources whose files can change between runs (folders): the labeled and validation images by
    # name, so a resumed run finds them again however the listing moved. None: positions are names.
    files: dict[str, list[str]] | None = None

    def unlabeled_indices(self) -> np.ndarray:
        """All training images except the validation holdout (the labeled ones included)."""
        mask = np.ones(self.num_train, dtype=bool)
        mask[self.val] = False
        return np.flatnonzero(mask)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Split":
        try:
            split = cls(**json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a valid split file ({e})") from None
        for name in ("labeled", "val"):
            ix = getattr(split, name)
            bad = [i for i in ix if not isinstance(i, int) or not 0 <= i < split.num_train] \
                if isinstance(ix, list) else [ix]
            if bad or len(set(ix)) != len(ix):
                what = f"index {bad[0]!r} is outside 0..{split.num_train - 1}" if bad else "indices repeat"
                raise DataError(f"{path}: not a valid split file ('{name}': {what}); use a new run folder")
        return split

    def remap(self, ids: list[str]) -> tuple["Split", list[str]]:
        """This split on a listing of files that may have changed: the same files by name, at their
        new positions. Returns it and the names no longer there."""
        where = {name: i for i, name in enumerate(ids)}
        gone = [f for part in ("labeled", "val") for f in self.files[part] if f not in where]
        kept = {part: [f for f in self.files[part] if f in where] for part in ("labeled", "val")}
        return replace(self, num_train=len(ids), labeled=sorted(where[f] for f in kept["labeled"]),
                       val=sorted(where[f] for f in kept["val"]), files=kept), gone


def request_text(labels: int | None = None, labels_per_class: int | None = None,
                 labeled_rate: float | None = None) -> str:
    """How a label request is recorded in split.json, e.g. "labels=100"."""
    given = {"labels": labels, "labels_per_class": labels_per_class, "labeled_rate": labeled_rate}
    return ", ".join(f"{k}={v}" for k, v in given.items() if v is not None)


def per_class_request(counts: np.ndarray, labels: int | None, labels_per_class: int | None,
                      labeled_rate: float | None, class_names: list[str] | None = None) -> tuple[np.ndarray, str]:
    """How many labeled images to draw from each class, checked against what exists."""
    k = len(counts)
    if labels is not None:
        if labels < k:
            raise ConfigError(f"--labels {labels} is too few for {k} classes: at least {k} (one per class)")
        if labels % k:
            lo = labels // k * k
            raise ConfigError(f"--labels {labels} cannot be split evenly over {k} classes; "
                              f"nearest valid totals: {lo} or {lo + k}")
        want, request = np.full(k, labels // k), request_text(labels=labels)
    elif labels_per_class is not None:
        if labels_per_class <= 0:
            raise ConfigError(f"--labels-per-class {labels_per_class} must be >= 1")
        want, request = np.full(k, labels_per_class), request_text(labels_per_class=labels_per_class)
    elif labeled_rate is not None:
        if not 0.0 < labeled_rate <= 1.0:
            raise ConfigError(f"--labeled-rate {labeled_rate} must be in (0, 1]")
        want = np.array([max(1, math.floor(labeled_rate * c + 1e-9)) for c in counts])
        request = request_text(labeled_rate=labeled_rate)
    else:
        raise ConfigError("no label request: give --labels, --labels-per-class or --labeled-rate")
    short = [(c, int(w), int(n)) for c, (w, n) in enumerate(zip(want, counts)) if w > n]
    if short:
        c, w, n = short[0]
        name = f"'{class_names[c]}'" if class_names else str(c)
        raise ConfigError(f"{request}: class {name} has only {n} training images available, {w} requested "
                         f"(at most {int(counts.min())} per class here)")
    return want, request


def draw_split(y: np.ndarray, num_classes: int, dataset: str, split_seed: int, *, labels: int | None = None,
               labels_per_class: int | None = None, labeled_rate: float | None = None,
               val_size: int = 0, class_names: list[str] | None = None) -> Split:
    """Draw the validation holdout (stratified), then the labeled set from what remains."""
    y = np.asarray(y)
    rng = np.random.default_rng(split_seed)
    if not 0 <= val_size < len(y):
        raise ConfigError(f"--val-size {val_size} must be in [0, {len(y)})")
    order = rng.permutation(len(y))
    by_class = [order[y[order] == c] for c in range(num_classes)]
    sizes = np.array([len(ix) for ix in by_class])  # images with a label (folder data also has -1: none)
    if val_size > sizes.sum():
        raise ConfigError(f"--val-size {val_size} exceeds the {sizes.sum()} labeled images")
    n_val = val_counts(sizes, val_size)
    val = [ix[:n] for ix, n in zip(by_class, n_val)]
    rest = [ix[n:] for ix, n in zip(by_class, n_val)]
    try:
        want, request = per_class_request(np.array([len(r) for r in rest]), labels, labels_per_class, labeled_rate,
                                          class_names)
    except ConfigError as e:
        request = (labels, labels_per_class, labeled_rate)
        if not val_size or not _fits(sizes, 0, *request):
            raise  # the labels do not fit even without a holdout: not --val-size's doing
        lo, hi = 0, val_size  # the largest holdout that leaves room for the labels: lo fits, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _fits(sizes, mid, *request) else (lo, mid)
        raise ConfigError(f"--val-size {val_size} holds out so many images that the labels no longer fit ({e}); "
                          f"use --val-size {lo} at most") from None
    labeled = [r[:w] for r, w in zip(rest, want)]
    return Split(dataset=dataset, split_seed=split_seed, num_train=len(y),
                 labeled=sorted(int(i) for part in labeled for i in part),
                 val=sorted(int(i) for part in val for i in part),
                 labeled_per_class=[int(w) for w in want], val_per_class=[int(n) for n in n_val],
                 request=request)


def val_counts(sizes: np.ndarray, val_size: int) -> np.ndarray:
    """Validation images per class: a stratified share, largest remainders first, summing to val_size."""
    share = sizes * val_size / sizes.sum()
    n_val = np.floor(share).astype(int)
    for c in np.argsort(-(share - n_val), kind="stable")[: val_size - n_val.sum()]:
        n_val[c] += 1
    return n_val


def _fits(sizes: np.ndarray, val_size: int, *request) -> bool:
    try:
        per_class_request(sizes - val_counts(sizes, val_size), *request)
    except ConfigError:
        return False
    return True


def check_matches(split: Split, dataset: str, num_train: int, path: Path) -> None:
    """A saved split belongs to one dataset; reusing it on another would be silently wrong."""
    if split.dataset != dataset or split.num_train != num_train:
        raise DataError(f"{path} was drawn for {split.dataset} ({split.num_train} training images), "
                         f"not {dataset} ({num_train}); use a new run folder")
