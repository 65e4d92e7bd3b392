"""Your own images: `folder:PATH` with labeled/<class>/, unlabeled/**/ and optional test/<class>/.

Images are read lazily, file by file, so an unlabeled folder larger than memory trains: only the
list of paths is resident. `FileImages` indexes like a uint8 tensor (`images[idx]` -> (B, C, H, W)),
so the training loop and streams treat it like resident data; the unlabeled stream reads it
through a DataLoader with workers when `data.workers > 0`.

Every file is checked when the data is opened (non-image files, zero-byte files, headers PIL
cannot parse), so a bad file fails the run before training starts, naming the file; with
`skip_bad_files` the bad files are skipped and listed in the run folder (bad_files.txt).
Nothing is ever written into the user's data folders.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .idx import DataFileError
from .sources import ImageSet, SourceData

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
SIZES = (28, 32, 64)  # sizes the DCGAN nets are built for; an inferred size snaps to the nearest


class FileImages:
    """Lazily read images, converted to one size and channel count on access."""

    def __init__(self, paths: list[Path], size: int, channels: int):
        # One NumPy bytes buffer, not a list of Path objects: it is ~5x smaller, and forked DataLoader
        # workers reading a Python list write every item's refcount, so each worker slowly copies the
        # whole list (copy-on-write; PyTorch issue #13246). A buffer has no per-item objects.
        self._paths = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
        self.size, self.channels = size, channels

    @property
    def paths(self) -> list[Path]:
        return [Path(os.fsdecode(p)) for p in self._paths]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, self.size, self.size)

    def __len__(self) -> int:
        return len(self._paths)

    def load(self, i: int) -> torch.Tensor:
        path = Path(os.fsdecode(self._paths[i]))
        try:
            with Image.open(path) as im:
                if im.mode.startswith("I;16"):  # 16-bit gray: PIL's convert clips at 255 instead of scaling
                    im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
                im = im.convert("L" if self.channels == 1 else "RGB")
                # Squash to a square (no crop): a crop could cut off the object in a small image.
                im = im.resize((self.size, self.size), Image.BILINEAR)
                array = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataFileError(f"{path}: cannot read image ({e}); fix or remove it, or pass "
                                "--data.skip_bad_files=true") from None
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


def _files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not any(part.startswith(".") for part in
                                                               p.relative_to(folder).parts))


def check_image(path: Path) -> str | None:
    """What is wrong with a file as an image, or None. Reads the header only (fast)."""
    if path.suffix.lower() not in IMAGE_EXTS:
        return f"not an image file (extension {path.suffix or 'none'}; expected {', '.join(sorted(IMAGE_EXTS))})"
    if path.stat().st_size == 0:
        return "empty (zero-byte) file"
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018  (parses the header)
    except (OSError, UnidentifiedImageError) as e:
        return f"cannot be read as an image ({e})"
    return None


def _screen(paths: list[Path], skip: bool, bad: list[str]) -> list[Path]:
    good = []
    for p in paths:
        problem = check_image(p)
        if problem is None:
            good.append(p)
        elif skip:
            bad.append(f"{p}\t{problem}")
        else:
            raise DataFileError(f"{p}: {problem}; fix or remove it, or pass --data.skip_bad_files=true")
    return good


def _class_folders(root: Path, what: str) -> dict[str, Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing: {what} needs one subfolder per class "
                                f"({root}/<class_name>/*.png)")
    classes = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not classes:
        raise FileNotFoundError(f"{root} has no class subfolders ({root}/<class_name>/*.png)")
    return classes


def load_folder(cfg, path: Path) -> SourceData:
    path = path.expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"folder:{path}: no such folder")
    bad: list[str] = []
    skip = cfg.skip_bad_files
    class_dirs = _class_folders(path / "labeled", "labeled/")
    classes = list(class_dirs)
    lab_paths, lab_y = [], []
    for c, (name, folder) in enumerate(class_dirs.items()):
        files = _screen(_files(folder, recursive=True), skip, bad)
        if not files:
            raise DataFileError(f"{folder}: class '{name}' has no usable images")
        lab_paths += files
        lab_y += [c] * len(files)
    unl_paths = _screen(_files(path / "unlabeled", recursive=True), skip, bad) if (path / "unlabeled").is_dir() else []

    notes = []
    channels, size = cfg.channels, cfg.image_size
    if channels is None or size is None:
        modes, sides = [], []
        for p in lab_paths:
            with Image.open(p) as im:
                modes.append(im.mode)
                sides.append(min(im.size))
        if channels is None:
            channels = 1 if all(m in ("1", "L", "LA", "I", "I;16", "F") for m in modes) else 3
            notes.append(f"channels {channels} (inferred from the labeled images)")
        if size is None:
            median = statistics.median(sides)
            size = min(SIZES, key=lambda s: abs(s - median))
            notes.append(f"image size {size} (labeled images' median side {median:g}, nearest of {SIZES})")

    test = None
    if (path / "test").is_dir():
        test_dirs = _class_folders(path / "test", "test/")
        unknown = [n for n in test_dirs if n not in class_dirs]
        if unknown:
            raise DataFileError(f"{path / 'test'}: classes {unknown} are not among the labeled classes {classes}")
        t_paths, t_y = [], []
        for name, folder in test_dirs.items():
            files = _screen(_files(folder, recursive=True), skip, bad)
            t_paths += files
            t_y += [classes.index(name)] * len(files)
        test = ImageSet(FileImages(t_paths, size, channels), torch.tensor(t_y, dtype=torch.long))

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
    return SourceData(f"folder:{path}", train, test, classes, note=note, bad_files=bad)
