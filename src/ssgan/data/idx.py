"""IDX files (the MNIST format): reading the verified content (standard.py), and writing, with which
the embedded subset and the test fixtures are made.

ssgan reads IDX itself rather than through torchvision's MNIST class: importing torchvision imports
torch._dynamo, about 165 MB of resident memory that an MNIST run otherwise never needs."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array: magic 0x0000 08 NDIM, big-endian dimensions, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.tobytes()


def decode_idx(content: bytes, name: str) -> torch.Tensor:
    """A uint8 tensor from IDX bytes; `name` (the file) is named in the error when the header is not
    that of a uint8 IDX file or the dimensions disagree with the length."""
    if len(content) < 4 or content[:3] != b"\x00\x00\x08" or not 1 <= content[3] <= 4:
        raise ValueError(f"{name}: not a uint8 IDX file (header {content[:4].hex()})")
    ndim = content[3]
    dims = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim]) if len(content) >= 4 + 4 * ndim else None
    if dims is None or len(content) - 4 - 4 * ndim != int(np.prod(dims)):
        raise ValueError(f"{name}: its IDX header's dimensions {dims} do not match its length ({len(content)} bytes)")
    array = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(array.copy())


def write_idx_gz(array: np.ndarray, path: Path) -> None:
    # mtime=0 keeps the bytes identical from run to run, so the files in git only change with their content.
    Path(path).write_bytes(gzip.compress(encode_idx(array), compresslevel=9, mtime=0))
