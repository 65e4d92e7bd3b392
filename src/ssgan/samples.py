"""Sample grids from the generator (torchvision's save_image), `ssgan sample`, and the run's
loss and accuracy plots (matplotlib)."""
from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

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


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid, about square."""
    nrow = nrow or max(1, int(len(images) ** 0.5))
    atomic_write(path, lambda tmp: save_image(images, tmp, nrow=nrow, normalize=True, value_range=(-1, 1),
                                              pad_value=1.0, format="png"))


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
