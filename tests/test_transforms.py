"""Resident images brought to the net's size: eagerly when that shrinks them, batch by batch when
it would enlarge them (ResizedImages), with the same pixels either way."""
from __future__ import annotations

import pytest
import torch

from ssgan import config as C
from ssgan.data.sources import load_source
from ssgan.data.streams import UnlabeledStream
from ssgan.data.transforms import ResizedImages, adapt_channels, resize_uint8, sized


@pytest.fixture
def small():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (37, 1, 28, 28), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("size,channels", [(64, None), (32, 3), (28, 3)])
def test_a_batch_has_the_pixels_of_the_whole_set_resized_at_once(small, size, channels):
    eager = adapt_channels(resize_uint8(small, size), channels)
    lazy = ResizedImages(small, size, channels)
    assert lazy.shape == eager.shape and len(lazy) == len(eager)
    idx = torch.tensor([5, 0, 36, 5, 17])
    mask = torch.arange(37) % 3 == 0
    for key in (idx, mask, slice(3, 30, 4), 7, torch.tensor(9)):
        got = lazy[key]
        assert got.dtype == torch.uint8
        assert torch.equal(got, eager[key]), f"index {key!r} differs"


def test_only_an_enlarging_conversion_is_deferred(small):
    assert isinstance(sized(small, 64, None), ResizedImages)        # 28 -> 64: 5x the bytes
    assert isinstance(sized(small, 28, 3), ResizedImages)           # gray -> RGB: 3x
    rgb = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    for shrunk in (sized(rgb, 28, None), sized(rgb, 32, 1), sized(small, 28, None)):
        assert isinstance(shrunk, torch.Tensor)
    assert sized(small, 28, None) is small                          # nothing to do: the same tensor


def test_mnist_at_64_stays_resident_at_28_and_streams_the_same_batches():
    cfg = C.build(overrides={"data.dataset": "synthetic", "data.image_size": 64})
    data = load_source(cfg.data)
    assert isinstance(data.train.x, ResizedImages) and data.train.x.x.shape[-1] < 64
    eager = resize_uint8(data.train.x.x, 64)
    pool = torch.arange(len(eager))
    lazy_batches = UnlabeledStream(data.train.x, pool, 16, seed=3, device=torch.device("cpu"))
    eager_batches = UnlabeledStream(eager, pool, 16, seed=3, device=torch.device("cpu"))
    for _ in range(3):
        a = lazy_batches.next()
        assert a.shape[-1] == 64 and torch.equal(a, eager_batches.next())
