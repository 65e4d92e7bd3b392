"""Scoring the discriminator's classes, and `ssgan evaluate`: a checkpoint's test-set report as
JSON (accuracy, errors, per-class accuracy, confusion matrix) plus a confusion-matrix PNG.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .data.sources import load_source
from .data.transforms import to_unit_range
from .errors import DataError
from .files import atomic_write_text, save_figure
from .training import checkpoint
from .training.distributed import resolve_device
from .training.run import restore_models

# Input values per evaluation chunk at most: 1,000 MNIST images (the default eval batch). At larger
# image sizes the chunk shrinks, so evaluation's activations stay near a training step's: at 64x64
# a chunk of 1,000 images held more memory than the recipe's training step.
EVAL_VALUES = 1000 * 28 * 28


def chunk_size(images, batch_size: int) -> int:
    """Images per evaluation chunk: `batch_size`, capped at EVAL_VALUES input values."""
    return max(1, min(batch_size, EVAL_VALUES // math.prod(images.shape[1:])))


@torch.no_grad()
def class_logits(D, algorithm, images: torch.Tensor, batch_size: int, device: torch.device,
                 amp: bool = False) -> torch.Tensor:
    """(N, K) class logits of uint8 images, D in eval mode (BN running statistics, no dropout)."""
    was_training = D.training
    D.eval()
    out = []
    batch_size = chunk_size(images, batch_size)
    for i in range(0, len(images), batch_size):
        x = to_unit_range(images[i:i + batch_size].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = D(x)
        out.append(algorithm.class_logits(logits.float()).cpu())
    D.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def error_counts(models: list, algorithm, images, labels: torch.Tensor, batch_size: int, device: torch.device,
                 amp: bool = False) -> list[int]:
    """Errors of each model, in eval mode, reading each batch of images once for all of them (a
    folder's images are read from disk)."""
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    errors = [0] * len(models)
    batch_size = chunk_size(images, batch_size)
    for i in range(0, len(images), batch_size):
        x, y = to_unit_range(images[i:i + batch_size].to(device)), labels[i:i + batch_size]
        for k, m in enumerate(models):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits, _ = m(x)
            errors[k] += int((algorithm.class_logits(logits.float()).argmax(1).cpu() != y).sum())
    for m, mode in zip(models, was_training):
        m.train(mode)
    return errors


def accuracy_and_errors(D, algorithm, images, labels, batch_size, device, amp=False) -> tuple[float, int]:
    errors = error_counts([D], algorithm, images, labels, batch_size, device, amp)[0]
    return 1.0 - errors / max(1, len(labels)), errors


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    return torch.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def scores(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> dict:
    cm = confusion(y_true, y_pred, num_classes)
    per_class = (cm.diag().float() / cm.sum(1).clamp_min(1).float()).tolist()
    errors = int(len(y_true) - cm.diag().sum())
    return {"n": len(y_true), "errors": errors, "accuracy": 1.0 - errors / max(1, len(y_true)),
            "per_class_accuracy": per_class, "confusion": cm.tolist()}


def checkpoint_test_logits(state: dict, use_ema: bool = True, data_root: str | None = None,
                           device: torch.device = torch.device("cpu")):
    """(data, class logits of its test set) for a loaded checkpoint's classifier, rebuilt from the
    checkpoint's own config; the logits are None when the dataset has no test set."""
    cfg, algo, D, _ = restore_models(state, use_ema=use_ema)
    if data_root:
        cfg.data.root = data_root
    data = load_source(cfg.data)
    if data.test is None:
        return data, None
    D.to(device)
    return data, class_logits(D, algo, data.test.x, cfg.train.eval_batch_size, device)


def evaluate_checkpoint(path: str, which: str = "last", use_ema: bool = True, data_root: str | None = None,
                        out: str | None = None, device: str = "auto") -> dict:
    """`ssgan evaluate`: score a checkpoint on its dataset's test set; writes the JSON and the PNG."""
    ckpt_path = checkpoint.resolve(path, which)
    state = checkpoint.load(ckpt_path)
    data, logits = checkpoint_test_logits(state, use_ema, data_root, resolve_device(device))
    if logits is None:
        raise DataError(f"dataset {data.name} has no test set to evaluate on (a folder needs test/<class>/)")
    pred = logits.argmax(1)
    result = {"checkpoint": str(ckpt_path), "dataset": data.name, "classes": state["classes"],
              "ema": bool(use_ema and state.get("ema")), "epoch": state["epoch"],
              **scores(data.test.y, pred, len(state["classes"]))}
    run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    json_path = Path(out) if out else run_dir / f"evaluation-{ckpt_path.stem}.json"
    png_path = json_path.with_suffix(".png")
    result["json"], result["png"] = str(json_path), str(png_path)
    atomic_write_text(json_path, json.dumps(result, indent=1))
    plot_confusion(result["confusion"], state["classes"], png_path)
    return result


def confusion_figure(cm: list[list[int]], classes: list[str]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * k, 1 + 0.5 * k))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i][j]), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(k), classes, rotation=90), ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path) -> None:
    save_figure(confusion_figure(cm, classes), path)
