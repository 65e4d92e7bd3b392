"""MNIST from its four IDX files: found under the data root, downloaded from the official mirrors
(sha256 of the decompressed content verified), or, offline and only when allowed, the 6,000-image
subset embedded in the package.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, DownloadError
from .base import ImageSet, SourceData
from .download import download_verified
from .idx import read_idx

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
PROTOCOL = {"labels": 100}  # Salimans et al.'s headline setting: 10 labels per class
CLASSES = [str(i) for i in range(10)]


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
            raise DataError(f"{img_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1:
            raise DataError(f"{lab_path}: expected a vector of labels, got shape {labels.shape}")
        if len(images) != count or len(labels) != count:
            raise DataError(f"{img_path} / {lab_path}: wrong count: {len(images)} images and "
                            f"{len(labels)} labels, expected {count} of each")
        bad = labels[(labels < 0) | (labels > 9)]  # signed IDX types could hold negative labels
        if bad.size:
            raise DataError(f"{lab_path}: label {int(bad[0])} is out of range 0-9")
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
        return SourceData("mnist", sets["train"], sets["t10k"], CLASSES, PROTOCOL)
    if not allow_subset:
        raise DataError(missing_mnist_message(root) + (f" Last error: {note}" if note else ""))
    sets = read_mnist_files(embedded_subset_paths(), SUBSET_COUNTS)
    return SourceData("mnist-subset", sets["train"], sets["t10k"], CLASSES, PROTOCOL,
                      note=f"full MNIST not found in {root} and not downloadable: training on the embedded "
                           f"6,000-image subset (put the four IDX files in {root / 'mnist'} or set $SSGAN_DATA)")
