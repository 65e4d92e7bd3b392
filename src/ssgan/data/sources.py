"""Data sources behind a registry: each returns train and test images with their labels.

A source yields uint8 images (N, C, H, W) already at the configured size, kept resident as
tensors so batches are drawn by indexing (no per-sample Python). Scaling to [-1, 1] happens per
batch (`to_unit_range`), which keeps memory at one byte per pixel.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .download import DownloadError, download_verified
from .idx import DataFileError, read_idx


@dataclass
class ImageSet:
    x: torch.Tensor  # (N, C, H, W) uint8
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class SourceData:
    name: str            # what the run records as the dataset (e.g. "mnist", "mnist-subset")
    train: ImageSet
    test: ImageSet | None
    classes: list[str]
    note: str = ""       # one line for the log when the source had to fall back or infer something
    bad_files: list[str] = field(default_factory=list)  # skipped with skip_bad_files: "path<TAB>why"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of the generator's tanh."""
    return x.float().div_(127.5).sub_(1.0)


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize (N, C, H, W) uint8 images to size x size (bilinear, antialiased), in chunks to bound memory."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        part = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)
        out[i:i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def default_root() -> Path:
    if os.environ.get("SSGAN_DATA"):
        return Path(os.environ["SSGAN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ssgan"


# ---------------------------------------------------------------------------------------------- MNIST
MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
# sha256 of the decompressed IDX content (the gzip wrappers of copies differ; their content must not).
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_COUNTS = {"train": 60000, "t10k": 10000}
SUBSET_COUNTS = {"train": 6000, "t10k": 1000}


def _find(folder_candidates: list[Path], stem: str) -> Path | None:
    for folder in folder_candidates:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def mnist_folders(root: Path) -> list[Path]:
    """Where the four files may lie under a data root (ours, flat, or torchvision's layout)."""
    return [root / "mnist", root, root / "MNIST" / "raw"]


def read_mnist_files(paths: dict[str, Path], counts: dict[str, int]) -> dict[str, ImageSet]:
    """Parse and cross-check the four IDX files: shapes, counts, label range."""
    sets = {}
    for part, count in counts.items():
        img_path, lab_path = paths[f"{part}-images-idx3-ubyte"], paths[f"{part}-labels-idx1-ubyte"]
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataFileError(f"{img_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1:
            raise DataFileError(f"{lab_path}: expected a vector of labels, got shape {labels.shape}")
        if len(images) != count or len(labels) != count:
            raise DataFileError(f"{img_path} / {lab_path}: wrong count: {len(images)} images and "
                                f"{len(labels)} labels, expected {count} of each")
        bad = labels[(labels < 0) | (labels > 9)]  # signed IDX types could hold negative labels
        if bad.size:
            raise DataFileError(f"{lab_path}: label {int(bad[0])} is out of range 0-9")
        sets[part] = ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return sets


def embedded_subset_paths() -> dict[str, Path]:
    folder = Path(str(resources.files("ssgan.data") / "embedded"))
    return {stem: folder / f"mnist-subset-{stem}.gz" for stem in MNIST_FILES}


def missing_mnist_message(root: Path) -> str:
    names = ", ".join(f"{s}.gz" for s in MNIST_FILES)
    return (f"MNIST not found and not downloadable. Put the four files {names} (gzip or raw) in "
            f"{root / 'mnist'} (or point --data-root or $SSGAN_DATA at a folder holding mnist/), "
            f"or allow the embedded 6,000-image subset with --data.allow_subset=true.")


def load_mnist(root: Path, download: bool = True, allow_subset: bool = False,
               mirrors: list[str] | None = None) -> SourceData:
    classes = [str(i) for i in range(10)]
    paths = {stem: _find(mnist_folders(root), stem) for stem in MNIST_FILES}
    note = ""
    if any(p is None for p in paths.values()) and download:
        try:
            for stem, digest in MNIST_FILES.items():
                if paths[stem] is None:
                    paths[stem] = download_verified(stem + ".gz", digest, mirrors or MNIST_MIRRORS, root / "mnist")
        except (DownloadError, OSError) as e:
            note = f"download failed: {e}"
    if all(p is not None for p in paths.values()):
        sets = read_mnist_files(paths, MNIST_COUNTS)
        return SourceData("mnist", sets["train"], sets["t10k"], classes)
    if not allow_subset:
        raise FileNotFoundError(missing_mnist_message(root) + (f" Last error: {note}" if note else ""))
    sets = read_mnist_files(embedded_subset_paths(), SUBSET_COUNTS)
    return SourceData("mnist-subset", sets["train"], sets["t10k"], classes,
                      note=f"full MNIST not found in {root} and not downloadable: training on the embedded "
                           f"6,000-image subset (put the four IDX files in {root / 'mnist'} or set $SSGAN_DATA)")


# ------------------------------------------------------------------------------------------ synthetic
def load_synthetic(n_train: int = 600, n_test: int = 200, num_classes: int = 4, size: int = 16,
                   seed: int = 0) -> SourceData:
    """Tiny, learnable, generated data for tests and smoke runs: one bright bar per class, plus noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> ImageSet:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        x = torch.rand((n, 1, size, size), generator=g) * 60
        for c in range(num_classes):
            rows = slice(c * size // num_classes, (c + 1) * size // num_classes)
            x[y == c, 0, rows, :] += 180
        return ImageSet(x.clamp(0, 255).to(torch.uint8), y)

    return SourceData("synthetic", make(n_train), make(n_test), [f"c{i}" for i in range(num_classes)])


# ------------------------------------------------------------------------------------------- registry
SOURCES: dict[str, Callable[..., SourceData]] = {}


def _mnist(cfg, root: Path) -> SourceData:
    return load_mnist(root, download=cfg.download, allow_subset=cfg.allow_subset)


def _synthetic(cfg, root: Path) -> SourceData:
    return load_synthetic()


SOURCES["mnist"] = _mnist
SOURCES["synthetic"] = _synthetic


def load_source(cfg) -> SourceData:
    """Load the configured source and bring its images to the configured size and channels."""
    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    kind, _, arg = cfg.dataset.partition(":")
    if kind == "folder":
        from .folder import load_folder  # the folder source is lazy and lives in its own module
        return load_folder(cfg, Path(arg))
    if cfg.dataset not in SOURCES:
        raise ValueError(f"unknown dataset '{cfg.dataset}'; valid: {', '.join(sorted(SOURCES))}, folder:PATH")
    data = SOURCES[cfg.dataset](cfg, root)
    for part in (data.train, data.test):
        if part is not None:
            part.x = adapt_channels(resize_uint8(part.x, cfg.image_size or part.x.shape[-1]), cfg.channels)
    return data


def adapt_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return x.float().mean(1, keepdim=True).round().to(torch.uint8)
    raise ValueError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
