"""Your own images: `folder:PATH` with labeled/<class>/, unlabeled/**/ and optional test/<class>/.
A CIFAR-style folder, train/<class>/ and test/<class>/, is read with train/ as labeled/.

Images are read lazily, file by file, so an unlabeled folder larger than memory trains: only the
list of paths is resident. `FileImages` indexes like a uint8 tensor (`images[idx]` -> (B, C, H, W)),
so the training loop and streams treat it like resident data; the unlabeled stream reads it
through a DataLoader with workers when `data.workers > 0`.

Every file is checked when the data is opened, fully decoded (JPEGs at a reduced scale, which
still reads every byte), so a non-image, empty, truncated or oversized file fails the run before
training starts, naming the file; with `skip_bad_files` the bad files are skipped and listed in the
run folder (bad_files.txt). Nothing is ever written into the user's data folders.
"""
from __future__ import annotations

import os
import statistics
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .base import ImageSet, SourceData

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
SIZES = (28, 32, 64)  # sizes the DCGAN nets are built for; an inferred size snaps to the nearest
# Larger images (about 8000 x 8000) are refused: decoding one takes GBs. PIL's own guard only warns
# below 179 M pixels, and its error above names no file.
MAX_PIXELS = 64_000_000
BAD_IMAGE = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
TRAINING_HINT = "fix or remove it, or pass --data.skip_bad_files=true"


class FileImages:
    """Lazily read images, converted to one size and channel count on access."""

    def __init__(self, paths: list[Path], size: int, channels: int, hint: str = TRAINING_HINT):
        # One NumPy bytes buffer, not a list of Path objects: it is ~5x smaller, and forked DataLoader
        # workers reading a Python list write every item's refcount, so each worker slowly copies the
        # whole list (copy-on-write; PyTorch issue #13246). A buffer has no per-item objects.
        self._paths = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
        self.size, self.channels, self.hint = size, channels, hint  # hint: what to do about a bad file

    def path(self, i: int) -> Path:
        return Path(os.fsdecode(self._paths[i]))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, self.size, self.size)

    def __len__(self) -> int:
        return len(self._paths)

    def load(self, i: int) -> torch.Tensor:
        path = self.path(i)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # screened: see MAX_PIXELS
                im = Image.open(path)
            with im:
                if im.mode.startswith("I;16"):  # 16-bit gray: PIL's convert clips at 255 instead of scaling
                    im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
                im = im.convert("L" if self.channels == 1 else "RGB")
                # Squash to a square (no crop): a crop could cut off the object in a small image.
                im = im.resize((self.size, self.size), Image.BILINEAR)
                array = np.asarray(im, dtype=np.uint8)
        except BAD_IMAGE as e:
            raise DataError(f"{path}: cannot read image ({e}); {self.hint}") from None
        t = torch.from_numpy(array.copy())
        return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)

    def __getitem__(self, idx) -> torch.Tensor:
        # Index as a tensor would: a 0-d tensor or NumPy integer is one image, a bool mask selects
        # (iterating a mask would silently read images 0 and 1).
        if isinstance(idx, (int, np.integer)) or (isinstance(idx, torch.Tensor) and idx.ndim == 0):
            return self.load(int(idx))
        if isinstance(idx, torch.Tensor) and idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        if isinstance(idx, slice):
            idx = range(*idx.indices(len(self)))
        return torch.stack([self.load(int(i)) for i in idx]) if len(idx) else torch.empty(
            (0,) + self.shape[1:], dtype=torch.uint8)  # (B, C, H, W)


def inspect_image(path: Path) -> tuple[str | None, tuple[str, int] | None]:
    """(what is wrong with a file as an image, or None; and a good image's mode and shorter side).
    Decodes it whole: a truncated file whose header parses would otherwise stop a run mid-training."""
    if path.suffix.lower() not in IMAGE_EXTS:
        return f"not an image file (extension {path.suffix or 'none'}; expected {', '.join(sorted(IMAGE_EXTS))})", None
    if path.stat().st_size == 0:
        return "empty (zero-byte) file", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            (width, height), mode = im.size, im.mode
            if width * height > MAX_PIXELS:
                return f"too large ({width} x {height} pixels; at most {MAX_PIXELS:,} pixels are read)", None
            im.draft(im.mode, (64, 64))  # JPEG: decode at 1/8 scale; every byte is still read
            im.load()
    except Image.DecompressionBombError as e:
        return f"too large ({e})", None
    except BAD_IMAGE as e:
        return f"cannot be read as an image ({e})", None
    return None, (mode, min(width, height))


def check_image(path: Path) -> str | None:
    """What is wrong with a file as an image, or None."""
    return inspect_image(path)[0]


def screen(paths: list[Path], skip: bool, bad: list[str], seen: dict | None = None) -> list[Path]:
    """The good image files of `paths`, checked in parallel (decoding releases the GIL). A bad one
    fails, naming it, or with `skip` is listed in `bad` and left out. `seen` collects each good
    image's (mode, shorter side), so nothing opens the files again to infer channels and size."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(inspect_image, paths))
    problems = [problem for problem, _ in results]
    if seen is not None:
        seen.update((p, facts) for p, (_, facts) in zip(paths, results) if facts is not None)
    for path, problem in zip(paths, problems):
        if problem is not None and not skip:
            raise DataError(f"{path}: {problem}; {TRAINING_HINT}")
        if problem is not None:
            bad.append(f"{path}\t{problem}")
    return [p for p, problem in zip(paths, problems) if problem is None]


def _visible(folder: Path):
    return lambda path: not any(part.startswith(".") for part in Path(path).relative_to(folder).parts)


def _class_files(root: Path, class_index: dict[str, int]) -> list[tuple[str, int]]:
    """(path, class index) of every visible file under root/<class>/, at any depth: classes by name,
    then folders and files in sorted order (torchvision's make_dataset's order, so the splits of runs
    made when it listed the files are the same; it is not imported, see standard.py)."""
    visible, samples = _visible(root), []
    for name in sorted(class_index):
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            samples += [(p, class_index[name]) for p in (os.path.join(folder, f) for f in sorted(files)) if visible(p)]
    return samples


def _by_class(root: Path, what: str, skip: bool, bad: list[str], classes: list[str] | None = None,
              seen: dict | None = None) -> tuple[list[str], list[Path], list[int]]:
    """Class names (sorted subfolders, or the given ones) and every good image with its class index."""
    if not root.is_dir():
        alias = " (or train/<class>/, the CIFAR-style layout)" if what == "labeled/" else ""
        raise DataError(f"{root} is missing: {what}{alias} needs one subfolder per class ({root}/<class_name>/*.png)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise DataError(f"{root} has no class subfolders ({root}/<class_name>/*.png)")
    unknown = [n for n in found if classes is not None and n not in classes]
    if unknown:
        raise DataError(f"{root}: classes {unknown} are not among the labeled classes {classes}")
    classes = classes or found
    samples = _class_files(root, {c: i for i, c in enumerate(classes) if c in found})
    good = set(screen([Path(p) for p, _ in samples], skip, bad, seen))
    paths, labels = zip(*[(Path(p), c) for p, c in samples if Path(p) in good]) if good else ((), ())
    empty = [c for c in found if classes.index(c) not in labels]
    if empty and what == "labeled/":
        raise DataError(f"{root / empty[0]}: class '{empty[0]}' has no usable images")
    return classes, list(paths), list(labels)


def load_folder(cfg, path: Path, size_for: Callable[[int], int | None] | None = None) -> SourceData:
    """`size_for(channels)`: the image size the chosen net wants when none is configured (None:
    infer it from the labeled images' sizes)."""
    path = path.expanduser()
    if not path.is_dir():
        raise DataError(f"folder:{path}: no such folder")
    bad: list[str] = []
    # A CIFAR-style folder (train/<class>/, test/<class>/, every training image labeled) reads as one
    # whose labeled/ is train/: --labels N then draws the labeled images, and all serve as unlabeled.
    labeled = path / "labeled" if (path / "labeled").is_dir() or not (path / "train").is_dir() else path / "train"
    seen: dict[Path, tuple[str, int]] = {}
    classes, lab_paths, lab_y = _by_class(labeled, "labeled/", cfg.skip_bad_files, bad, seen=seen)
    if len(classes) < 2:
        raise DataError(f"{labeled} has one class ('{classes[0]}'); a classifier needs at least two "
                        "classes, one subfolder each")
    unl_root = path / "unlabeled"
    unl_paths = screen(sorted(p for p in unl_root.rglob("*") if p.is_file() and _visible(unl_root)(p)),
                       cfg.skip_bad_files, bad) if unl_root.is_dir() else []

    notes = []
    channels, size = cfg.channels, cfg.image_size
    if channels is None or size is None:
        modes, sides = zip(*(seen[p] for p in lab_paths))
        if channels is None:
            channels = 1 if all(m in ("1", "L", "LA", "I", "I;16", "F") for m in modes) else 3
            notes.append(f"channels {channels} (inferred from the labeled images)")
        wanted = size_for(channels) if size is None and size_for is not None else None
        if wanted is not None:
            size = wanted
            notes.append(f"image size {size} (what the net is built for; --image-size changes it)")
        if size is None:
            median = statistics.median(sides)
            size = min(SIZES, key=lambda s: abs(s - median))
            notes.append(f"image size {size} (labeled images' median side {median:g}, nearest of {SIZES})")

    test = None
    if (path / "test").is_dir():
        _, test_paths, test_y = _by_class(path / "test", "test/", cfg.skip_bad_files, bad, classes)
        test = ImageSet(FileImages(test_paths, size, channels), torch.tensor(test_y, dtype=torch.long))

    # The training set is the labeled images followed by the unlabeled ones (label -1): the split
    # draws labeled images only where a label exists, and every image serves as unlabeled data.
    train = ImageSet(FileImages(lab_paths + unl_paths, size, channels),
                     torch.tensor(lab_y + [-1] * len(unl_paths), dtype=torch.long))
    note = f"folder {path}: {len(lab_paths)} labeled images in {len(classes)} classes, {len(unl_paths)} unlabeled"
    note += f", {len(test)} test" if test is not None else ", no test/ folder"
    if notes:
        note += "; " + "; ".join(notes)
    if bad:
        note += f"; skipped {len(bad)} bad files (listed in bad_files.txt)"
    # A user's labeled/ folder is the labeled set: all of it unless a label option subsamples it.
    ids = [p.relative_to(path).as_posix() for p in lab_paths + unl_paths]  # what split.json names them by
    return SourceData(f"folder:{path}", train, test, classes, {"labeled_rate": 1.0}, ids=ids, note=note,
                      bad_files=bad)
