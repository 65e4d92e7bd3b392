"""IDX files: good ones round-trip; each broken one fails with DataError naming the file and the fault."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ssgan.data import mnist
from ssgan.errors import DataError
from ssgan.data.idx import encode_idx, parse_idx, read_bytes, read_idx, sha256, write_idx_gz

COUNTS = {"train": 20, "t10k": 10}


def _idx(code: int, array: np.ndarray, dtype: str) -> bytes:
    """IDX bytes of any type code, for the non-uint8 types encode_idx does not write."""
    return (struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.astype(dtype).tobytes())


def _fails(path: Path, *phrases: str) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert path.name in message
    for phrase in phrases:
        assert phrase in message
    return message


# ------------------------------------------------------------------------------------------- good files
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 3, 4, 5), (0, 28, 28)])
def test_encode_parse_round_trip(shape):
    a = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    b = parse_idx(encode_idx(a))
    assert b.dtype == np.uint8 and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_read_idx_gzip_and_raw(tmp_path):
    a = np.random.default_rng(2).integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    write_idx_gz(a, tmp_path / "a.gz")
    (tmp_path / "a.raw").write_bytes(encode_idx(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.raw"), a)
    # gzip is recognised by its magic bytes, not its name
    (tmp_path / "misnamed").write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "misnamed"), a)
    assert read_bytes(tmp_path / "a.gz") == encode_idx(a)


def test_write_idx_gz_is_byte_identical_across_runs(tmp_path):
    a = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    write_idx_gz(a, tmp_path / "1.gz")
    write_idx_gz(a, tmp_path / "2.gz")
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


def test_big_endian_types_are_read_in_native_order():
    a = np.array([[1, -2, 300], [70000, 0, -1]], dtype=np.int64)
    b = parse_idx(_idx(0x0C, a, ">i4"))
    assert b.dtype == np.dtype("int32") and b.dtype.isnative
    np.testing.assert_array_equal(b, a)
    f = np.array([0.5, -1.25], dtype=np.float64)
    np.testing.assert_array_equal(parse_idx(_idx(0x0E, f, ">f8")), f)


# ------------------------------------------------------------------------------------------ bad files
@pytest.fixture
def good_bytes() -> bytes:
    return encode_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


def test_wrong_magic_number(tmp_path, good_bytes):
    magics = [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00", b"\x00\x00\x08\x05",
              b"PK\x03\x04"]
    for i, magic in enumerate(magics):
        path = tmp_path / f"bad{i}-idx3-ubyte"
        path.write_bytes(magic + good_bytes[4:])
        _fails(path, "wrong magic number", "0x" + magic.hex())


def test_too_short_for_any_header(tmp_path):
    for n in range(4):
        path = tmp_path / f"short{n}"
        path.write_bytes(b"\x00\x00\x08"[:n])
        _fails(path, "too short")


def test_truncated_header(tmp_path, good_bytes):
    path = tmp_path / "header-idx3-ubyte"
    path.write_bytes(good_bytes[:10])  # 3 dimensions need a 16-byte header
    _fails(path, "truncated header", "need 16")


def test_truncated_body(tmp_path, good_bytes):
    path = tmp_path / "body-idx3-ubyte"
    path.write_bytes(good_bytes[:-5])
    msg = _fails(path, "truncated", "(2, 3, 4)")
    assert "header" not in msg.split(":")[1]  # a body fault, not reported as a header fault


def test_trailing_bytes(tmp_path, good_bytes):
    path = tmp_path / "trailing-idx3-ubyte"
    path.write_bytes(good_bytes + b"\x00")
    _fails(path, "trailing bytes")


def test_absurd_header_dimensions_are_reported_as_truncation(tmp_path):
    # four dimensions of 2**32-1 overflow an int64 product; the fault is still a too-short file
    path = tmp_path / "huge-idx"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", *[0xFFFFFFFF] * 4) + b"xx")
    msg = _fails(path, "truncated")
    assert "-" not in msg.split("needs")[1]


def test_corrupted_gzip_stream(tmp_path, good_bytes):
    gz = bytearray(gzip.compress(good_bytes, mtime=0))
    gz[15] ^= 0xFF  # inside the deflate stream
    path = tmp_path / "corrupt-idx3-ubyte.gz"
    path.write_bytes(bytes(gz))
    _fails(path, "gzip")


def test_truncated_gzip_stream(tmp_path, good_bytes):
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(good_bytes, mtime=0)[:-6])
    _fails(path, "gzip")


def test_every_truncation_fails_cleanly(tmp_path, good_bytes):
    """However a download is cut short, the reader says DataError, never a numpy/zlib traceback."""
    gz = gzip.compress(good_bytes, mtime=0)
    for data, suffix in ((good_bytes, ""), (gz, ".gz")):
        for n in range(len(data)):
            path = tmp_path / f"cut{n}{suffix}"
            path.write_bytes(data[:n])
            with pytest.raises(DataError, match=path.name):
                read_idx(path)


def test_random_byte_flips_never_escape_as_other_errors(tmp_path, good_bytes):
    rng = np.random.default_rng(0)
    gz = gzip.compress(good_bytes, mtime=0)
    failures = 0
    for trial in range(200):
        data = bytearray(gz)
        data[rng.integers(len(data))] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{trial}.gz"
        path.write_bytes(bytes(data))
        try:
            read_idx(path)  # a flip in the gzip header's mtime/flags may be harmless
        except DataError as e:
            assert path.name in str(e)
            failures += 1
    assert failures > 100  # most flips must be caught (the CRC guards the content)


# ------------------------------------------------------------------------------- the four MNIST files
def test_read_mnist_files_good(fake_mnist):
    sets = mnist.read_mnist_files(fake_mnist, COUNTS)
    assert sets["train"].x.shape == (20, 1, 28, 28) and sets["t10k"].x.shape == (10, 1, 28, 28)
    assert sets["train"].x.dtype.is_floating_point is False
    assert str(sets["train"].y.dtype) == "torch.int64"
    np.testing.assert_array_equal(sets["train"].y.numpy(), np.arange(20) % 10)
    images = read_idx(fake_mnist["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(sets["train"].x[:, 0].numpy(), images)


def test_images_and_labels_count_mismatch(fake_mnist):
    write_idx_gz(np.zeros(19, dtype=np.uint8), fake_mnist["train-labels-idx1-ubyte"])
    with pytest.raises(DataError) as info:
        mnist.read_mnist_files(fake_mnist, COUNTS)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "20 images and 19 labels" in msg


def test_not_the_expected_count(fake_mnist):
    with pytest.raises(DataError, match=r"t10k-images.*wrong count.*expected 11"):
        mnist.read_mnist_files(fake_mnist, {"train": 20, "t10k": 11})


@pytest.mark.parametrize("bad", [10, 255])
def test_label_out_of_range(fake_mnist, bad):
    labels = np.arange(20, dtype=np.uint8) % 10
    labels[7] = bad
    write_idx_gz(labels, fake_mnist["train-labels-idx1-ubyte"])
    with pytest.raises(DataError, match=rf"train-labels-idx1-ubyte.gz: label {bad} is out of range 0-9"):
        mnist.read_mnist_files(fake_mnist, COUNTS)


def test_negative_label_in_a_signed_file(fake_mnist):
    labels = np.arange(20) % 10
    labels[3] = -1
    fake_mnist["train-labels-idx1-ubyte"].write_bytes(gzip.compress(_idx(0x09, labels, ">i1")))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: label -1 is out of range"):
        mnist.read_mnist_files(fake_mnist, COUNTS)


def test_swapped_files(fake_mnist):
    paths = dict(fake_mnist)
    paths["train-images-idx3-ubyte"], paths["train-labels-idx1-ubyte"] = \
        fake_mnist["train-labels-idx1-ubyte"], fake_mnist["train-images-idx3-ubyte"]
    with pytest.raises(DataError, match="expected uint8 images"):
        mnist.read_mnist_files(paths, COUNTS)


def test_broken_file_inside_the_set_is_named(fake_mnist):
    path = fake_mnist["t10k-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        mnist.read_mnist_files(fake_mnist, COUNTS)


def test_embedded_subset_is_valid():
    sets = mnist.read_mnist_files(mnist.embedded_subset_paths(), mnist.SUBSET_COUNTS)
    assert len(sets["train"]) == 6000 and len(sets["t10k"]) == 1000
    assert sorted(set(sets["train"].y.tolist())) == list(range(10))


def test_real_mnist_labels_match_published_content(mnist_root):
    folder = mnist_root / "mnist"
    for stem, count in (("train-labels-idx1-ubyte", 60000), ("t10k-labels-idx1-ubyte", 10000)):
        data = read_bytes(folder / f"{stem}.gz")
        assert sha256(data) == mnist.MNIST_FILES[stem]
        assert parse_idx(data, stem).shape == (count,)
    y = read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
