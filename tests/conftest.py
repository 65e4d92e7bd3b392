"""Shared fixtures: seeded RNGs, no network beyond 127.0.0.1, the full MNIST files ($SSGAN_DATA), tiny MNIST files."""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from ssgan.data.idx import write_idx_gz

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """A test that tries to reach a real host fails at once, instead of hanging or needing the internet."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"tests may only connect to 127.0.0.1, not {address}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def mnist_root() -> Path:
    """The data root $SSGAN_DATA holding mnist/ (the full files); tests that need it skip where it is absent."""
    root = Path(os.environ.get("SSGAN_DATA", "")).expanduser()
    if not os.environ.get("SSGAN_DATA") or not (root / "mnist" / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip("full MNIST files not found: set $SSGAN_DATA to a folder holding mnist/")
    return root


def make_fake_mnist(folder: Path, counts: dict[str, int], size: int = 28, seed: int = 0) -> dict[str, Path]:
    """The four MNIST files under their standard names, tiny and random, gzip IDX."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, n in counts.items():
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for stem, array in ((f"{part}-images-idx3-ubyte", images), (f"{part}-labels-idx1-ubyte", labels)):
            paths[stem] = folder / f"{stem}.gz"
            write_idx_gz(array, paths[stem])
    return paths


@pytest.fixture
def make_mnist():
    """The factory itself, for tests that need other counts or a folder of their own."""
    return make_fake_mnist


@pytest.fixture
def fake_mnist(tmp_path) -> dict[str, Path]:
    """Four valid fake MNIST files: 20 training and 10 test images."""
    return make_fake_mnist(tmp_path / "fake", {"train": 20, "t10k": 10})
