"""Reading and writing IDX files (the MNIST format), gzip or raw, with errors that name the file.

torchvision's reader assumes a well-formed file; a truncated download or a wrong file must
instead fail with the file's name and what is wrong, never a numpy stack trace.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX type codes; MNIST uses only unsigned bytes.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes, not its name)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupted or truncated gzip data ({e})") from None
    return raw


def parse_idx(data: bytes, name: str | Path = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array, checking the magic number and that the length matches the header."""
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero1, zero2, code, ndim = struct.unpack(">BBBB", data[:4])
    if zero1 != 0 or zero2 != 0 or code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{name}: wrong magic number 0x{data[:4].hex()} (not an IDX file; expected "
                            "0x00000801 for labels or 0x00000803 for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[code])
    # math.prod, not np.prod: a corrupted header's dimensions would overflow int64 and misreport the error.
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{name}: {what}: {len(data)} bytes, but its header {tuple(shape)} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), path)


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array (used for the embedded subset and test fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.tobytes()


def write_idx_gz(array: np.ndarray, path: Path) -> None:
    # mtime=0 keeps the bytes identical from run to run, so the files in git only change with their content.
    Path(path).write_bytes(gzip.compress(encode_idx(array), compresslevel=9, mtime=0))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
