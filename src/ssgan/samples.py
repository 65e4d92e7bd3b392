"""Sample grids from the generator (torchvision.utils) and loss/accuracy plots (matplotlib)."""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from .io import atomic_write


@torch.no_grad()
def generate(G, z: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] from noise `z`, G in eval mode (BN running statistics, no dropout)."""
    was_training = G.training
    G.eval()
    x = G(z).float().cpu()
    G.train(was_training)
    return x


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid."""
    from PIL import Image
    nrow = nrow or max(1, int(len(images) ** 0.5))
    grid = make_grid(images, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    array = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def plot_curves(records: list[dict], folder: str | Path) -> None:
    """loss.png (every D and G term per epoch) and accuracy.png (train/val/test)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not records:
        return
    folder = Path(folder)
    epochs = [r["epoch"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in [k for k in records[0] if k in ("d_loss", "g_loss") or k.startswith(("d/", "g/"))]:
        ax.plot(epochs, [r.get(key) for r in records], label=key)
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(folder / "loss.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("train_acc", "val_acc", "test_acc"):
        if records[0].get(key) is not None:
            ax.plot(epochs, [r[key] for r in records], label=key)
    ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(folder / "accuracy.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
