"""Writing IDX files (the MNIST format): the embedded subset and test fixtures are made with it.
Reading is torchvision's (standard.py), after the content is verified."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array: magic 0x0000 08 NDIM, big-endian dimensions, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.tobytes()


def write_idx_gz(array: np.ndarray, path: Path) -> None:
    # mtime=0 keeps the bytes identical from run to run, so the files in git only change with their content.
    Path(path).write_bytes(gzip.compress(encode_idx(array), compresslevel=9, mtime=0))
