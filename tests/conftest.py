"""Shared fixtures: seeded RNGs, no network beyond 127.0.0.1, the full MNIST files ($SSGAN_DATA)."""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

pytest_plugins = ["http_server"]  # the `served` fixture: a real HTTP server on 127.0.0.1

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True, scope="session")
def _cache_in_tmp(tmp_path_factory):
    """Decompressed copies and downloads go to a cache of the session's own, never the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


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
