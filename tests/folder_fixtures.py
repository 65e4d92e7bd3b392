"""Small image folders built on the fly for the folder-source, predict and export tests.

`make_folder_dataset` writes PATH/labeled/<class>/, PATH/unlabeled/ (nested) and PATH/test/<class>/
with learnable content: class k lights up the k-th horizontal band of the image, plus noise. Sizes,
file formats (PNG, JPEG) and colour modes (L, RGB) vary from file to file unless fixed, so the
loader's resizing and channel conversion are exercised. Everything is drawn from one seed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "owl")


def band_image(k: int, num_classes: int, side: int, rgb: bool, rng: np.random.Generator) -> Image.Image:
    """Class k: a bright band over rows [k/K, (k+1)/K) of the image, on a dark noisy background."""
    a = rng.integers(0, 60, size=(side, side)).astype(np.int32)
    a[k * side // num_classes:(k + 1) * side // num_classes, :] += 180
    a = a.clip(0, 255).astype(np.uint8)
    if rgb:
        tint = rng.integers(0, 30, size=3)
        rgb = np.stack([a.clip(0, 255 - int(t)) + int(t) for t in tint], -1)
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    return Image.fromarray(a, "L")


def save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=95)
    else:
        img.save(path, compress_level=1)
    return path


def make_folder_dataset(root: Path, classes=CLASSES, labeled: int = 4, unlabeled: int = 60, test: int = 4,
                        sides=(24, 28, 30, 36), rgb: float = 0.5, jpeg: float = 0.3, seed: int = 0) -> Path:
    """Write a folder dataset under `root`: `labeled` and `test` images per class, `unlabeled` in all.

    `rgb` and `jpeg` are the shares of RGB and JPEG files (0 or 1 to make all files one kind);
    unlabeled files are spread over nested subfolders. Returns `root`.
    """
    rng = np.random.default_rng(seed)
    K = len(classes)

    def one(k: int, folder: Path, stem: str) -> Path:
        side = int(rng.choice(sides))
        is_rgb = rng.random() < rgb
        ext = ".jpg" if rng.random() < jpeg else ".png"
        return save(band_image(k, K, side, is_rgb, rng), folder / f"{stem}{ext}")

    for k, name in enumerate(classes):
        for i in range(labeled):
            one(k, root / "labeled" / name, f"{name}_{i:02d}")
        for i in range(test):
            one(k, root / "test" / name, f"{name}_t{i:02d}")
    nests = [Path("."), Path("batch1"), Path("batch1/deeper"), Path("batch2")]
    for i in range(unlabeled):
        one(i % K, root / "unlabeled" / nests[i % len(nests)], f"u{i:04d}")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its size and mtime: what a run must leave unchanged."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def train_args(data: Path, run_dir: Path, *extra: str, size: int | None = 16) -> list[str]:
    """`ssgan train` on a folder: MLP nets, all labeled images (the default for a folder), 2 short epochs,
    CPU; images resized to `size` (small keeps the runs fast), or the inferred size when None."""
    return ["train", "--data", f"folder:{data}", "--run-dir", str(run_dir), "--net", "mlp", "--method", "fm",
            "--epochs", "2", "--max-steps", "3", "--batch-size", "16",
            "--device", "cpu", "--lr", "3e-3", "--train.sample_every=0",
            *(["--image-size", str(size)] if size else []), *extra]
