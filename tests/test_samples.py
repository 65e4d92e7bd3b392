"""Sample grids: drawn by ssgan (torchvision is not imported in training), checked against
torchvision's make_grid and save_image, which drew them before."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.utils as tvu
from PIL import Image

from ssgan.samples import make_grid, save_grid


@pytest.mark.parametrize("n, nrow, channels", [(16, 4, 3), (10, 4, 3), (3, 8, 3), (7, 3, 1)])
def test_the_grid_is_torchvision_s(n, nrow, channels):
    images = torch.randn(n, channels, 6, 5, generator=torch.Generator().manual_seed(n)) * 1.3  # some beyond [-1, 1]
    ours = make_grid(images, nrow)
    theirs = tvu.make_grid(images, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    assert torch.allclose(ours, theirs[:channels], atol=1e-6)  # (torchvision repeats a gray channel to 3)


@pytest.mark.parametrize("channels", [3, 1])
def test_the_png_has_torchvision_s_pixels(tmp_path, channels):
    images = torch.rand(9, channels, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_grid(images, tmp_path / "ours.png")
    tvu.save_image(images, tmp_path / "theirs.png", nrow=3, normalize=True, value_range=(-1, 1), pad_value=1.0)
    ours, theirs = (np.asarray(Image.open(tmp_path / f"{w}.png")) for w in ("ours", "theirs"))
    assert np.array_equal(ours, theirs if channels == 3 else theirs[:, :, 0])
    assert Image.open(tmp_path / "ours.png").mode == ("RGB" if channels == 3 else "L")
