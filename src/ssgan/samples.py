"""Sample grids from the generator, `ssgan sample`, and the run's loss and accuracy plots (matplotlib).

The grid is drawn here rather than by torchvision's save_image: importing torchvision imports
torch._dynamo, about 165 MB of resident memory in every training run (see data/standard.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import CheckpointError
from .files import atomic_write, save_figure
from .training import checkpoint
from .training.run import restore_models


@torch.no_grad()
def generate(G, z: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] from noise `z`, G in eval mode (BN running statistics, no dropout)."""
    was_training = G.training
    G.eval()
    x = G(z).float().cpu()
    G.train(was_training)
    return x


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> one (C, H', W') image in [0, 1]: rows of `nrow` images,
    `padding` pixels of `pad_value` (white) around each; values outside [-1, 1] are clipped."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    n, c, h, w = x.shape
    cols, rows = min(nrow, n), -(-n // min(nrow, n))
    grid = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid, about square (gray images as gray PNGs)."""
    grid = make_grid(images, nrow or max(1, int(len(images) ** 0.5)))
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    atomic_write(path, lambda tmp: picture.save(tmp, format="png"))


def sample_checkpoint(path: str, n: int, output: str, seed: int = 0, which: str = "last") -> None:
    """`ssgan sample`: a grid of n images from a checkpoint's generator, noise seeded by `seed`."""
    state = checkpoint.load(path, which)
    _, _, _, G = restore_models(state)
    if G is None:
        raise CheckpointError(f"{path} has no generator (method {state['config']['method']['name']!r})")
    z = G.sample_z(n, "cpu", torch.Generator().manual_seed(seed))
    save_grid(generate(G, z), output)


def curve_figures(records: list[dict]):
    """(loss figure: every D and G term per epoch, accuracy figure: train/val/test per epoch)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [r["epoch"] for r in records]
    loss, ax = plt.subplots(figsize=(7, 4))
    for key in [k for k in records[0] if k in ("d_loss", "g_loss") or k.startswith(("d/", "g/"))]:
        ax.plot(epochs, [r.get(key) for r in records], label=key)
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss.tight_layout()
    acc, ax = plt.subplots(figsize=(7, 4))
    for key in ("train_acc", "val_acc", "test_acc", "test_acc_raw"):
        if records[0].get(key) is not None:
            ax.plot(epochs, [r[key] for r in records], label=key.replace("_raw", " (D itself)"))
    ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.legend(), ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc.tight_layout()
    return loss, acc


def plot_curves(records: list[dict], folder: str | Path) -> None:
    """loss.png (every D and G term per epoch) and accuracy.png (train/val/test)."""
    if not records:
        return
    loss, acc = curve_figures(records)
    save_figure(loss, Path(folder) / "loss.png")
    save_figure(acc, Path(folder) / "accuracy.png")
