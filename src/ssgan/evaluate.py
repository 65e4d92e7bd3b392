"""Accuracy, error count, per-class accuracy and confusion matrix of the discriminator's classes."""
from __future__ import annotations

import torch

from .data.sources import to_unit_range


@torch.no_grad()
def class_logits(D, algorithm, images: torch.Tensor, batch_size: int, device: torch.device,
                 amp: bool = False) -> torch.Tensor:
    """(N, K) class logits of uint8 images, D in eval mode (BN running statistics, no dropout)."""
    was_training = D.training
    D.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit_range(images[i:i + batch_size].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = D(x)
        out.append(algorithm.class_logits(logits.float()).cpu())
    D.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    return torch.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def report(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> dict:
    cm = confusion(y_true, y_pred, num_classes)
    per_class = (cm.diag().float() / cm.sum(1).clamp_min(1).float()).tolist()
    errors = int(len(y_true) - cm.diag().sum())
    return {"n": len(y_true), "errors": errors, "accuracy": 1.0 - errors / max(1, len(y_true)),
            "per_class_accuracy": per_class, "confusion": cm.tolist()}


def accuracy_and_errors(D, algorithm, images, labels, batch_size, device, amp=False) -> tuple[float, int]:
    pred = class_logits(D, algorithm, images, batch_size, device, amp).argmax(1)
    errors = int((pred != labels).sum())
    return 1.0 - errors / max(1, len(labels)), errors
