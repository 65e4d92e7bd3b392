"""`ssgan predict` and `ssgan suggest`: class probabilities for image files, and the images the
classifier is least sure of (what to label next).

Images get the training preprocessing (same size, channels and [-1, 1] scaling, via FileImages)
and the discriminator's class outputs only, in eval mode (EMA weights when the run kept them).
"""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .data.folder import IMAGE_EXTS, FileImages, check_image
from .data.transforms import to_unit_range
from .errors import DataError, OutputError
from .files import atomic_write_text
from .training import checkpoint as ckpt
from .training.distributed import resolve_device
from .training.run import restore_models


def collect_images(paths: list[str]) -> list[Path]:
    """Image files named directly or found (recursively) in the folders named; bad files are errors."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    for f in files:
        problem = check_image(f)
        if problem:
            raise DataError(f"{f}: {problem}")
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {' '.join(paths)}")
    return files


@torch.no_grad()
def probabilities(path: str, files: list[Path], batch_size: int = 256, device: str = "cpu",
                  progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """(N, K) class probabilities of the files, and the class names."""
    state = ckpt.load(path)
    _, algo, D, _ = restore_models(state)
    channels, size = state["input_shape"]
    images = FileImages(files, size, channels, hint="fix or remove it, or leave it out of the paths given")
    device = resolve_device(device)
    D.to(device)
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress or None, leave=False):
        logits, _ = D(to_unit_range(images[i:i + batch_size].to(device)))
        out.append(algo.class_logits(logits.float()).softmax(1).cpu())
    return torch.cat(out), state["classes"]


def to_csv(rows: list[list], header: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_or_print(text: str, output: str | None) -> None:
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)


def predict(checkpoint: str, paths: list[str], output: str | None = None, batch_size: int = 256,
            device: str = "cpu") -> list[list]:
    files = collect_images(paths)
    probs, classes = probabilities(checkpoint, files, batch_size, device)
    conf, pred = probs.max(1)
    rows = [[str(f), classes[int(k)], f"{float(c):.6f}", *(f"{float(p):.6f}" for p in row)]
            for f, k, c, row in zip(files, pred, conf, probs)]
    write_or_print(to_csv(rows, ["path", "predicted", "confidence", *(f"p_{c}" for c in classes)]), output)
    return rows


def uncertainty_order(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices from least to most certain: smallest margin between the top two probabilities first,
    ties broken by higher entropy. Returns (order, margin, entropy)."""
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    margin = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
    keys = sorted(range(len(probs)), key=lambda i: (float(margin[i]), -float(entropy[i]), i))
    return torch.tensor(keys, dtype=torch.long), margin, entropy


def suggest(checkpoint: str, paths: list[str], n: int = 50, output: str | None = None,
            copy_to: str | None = None, batch_size: int = 256, device: str = "cpu") -> list[list]:
    files = collect_images(paths)
    probs, classes = probabilities(checkpoint, files, batch_size, device)
    order, margin, entropy = uncertainty_order(probs)
    rows = []
    for rank, i in enumerate(order[:n].tolist(), start=1):
        k = int(probs[i].argmax())
        rows.append([rank, str(files[i]), classes[k], f"{float(margin[i]):.6f}", f"{float(entropy[i]):.6f}"])
    if copy_to:
        dest = Path(copy_to)
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"--copy-to {dest} is a file, not a folder")
        # rank prefix: names stay unique and ordered. Checked first: never overwrite, never copy half the list.
        copies = [(Path(row[1]), dest / f"{row[0]:04d}_{Path(row[1]).name}") for row in rows]
        taken = [target for _, target in copies if target.exists()]
        if taken:
            raise OutputError(f"--copy-to: {taken[0]} already exists ({len(taken)} of the {len(copies)} names are "
                              "taken); nothing was copied. Use an empty or new folder")
        dest.mkdir(parents=True, exist_ok=True)
        for src, target in copies:
            shutil.copy2(src, target)
    write_or_print(to_csv(rows, ["rank", "path", "predicted", "margin", "entropy"]), output)
    return rows
