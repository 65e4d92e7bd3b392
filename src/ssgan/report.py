"""`ssgan evaluate`: a checkpoint's test-set report as JSON plus a confusion-matrix PNG."""
from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import load, resolve, restore_models
from .data.sources import load_source
from .evaluate import class_logits, report
from .io import atomic_write, atomic_write_text
from .runs import resolve_device


def evaluate_checkpoint(path: str, which: str = "last", use_ema: bool = True, data_root: str | None = None,
                        out: str | None = None, device: str = "auto") -> dict:
    ckpt_path = resolve(path, which)
    state = load(ckpt_path)
    cfg, algo, D, _ = restore_models(state, use_ema=use_ema)
    if data_root:
        cfg.data.root = data_root
    data = load_source(cfg.data)
    if data.test is None:
        raise FileNotFoundError(f"dataset {cfg.data.dataset} has no test set to evaluate on")
    dev = resolve_device(device)
    D.to(dev)
    pred = class_logits(D, algo, data.test.x, cfg.train.eval_batch_size, dev).argmax(1)
    result = {"checkpoint": str(ckpt_path), "dataset": data.name, "classes": state["classes"],
              "ema": bool(use_ema and state.get("ema")), "epoch": state["epoch"],
              **report(data.test.y, pred, len(state["classes"]))}
    run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    json_path = Path(out) if out else run_dir / f"evaluation-{ckpt_path.stem}.json"
    png_path = json_path.with_suffix(".png")
    result["json"], result["png"] = str(json_path), str(png_path)
    atomic_write_text(json_path, json.dumps(result, indent=1))
    plot_confusion(result["confusion"], state["classes"], png_path)
    return result


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path) -> None:
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
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
