"""The standard datasets: tiny files in each real format, written here; downloads through torchvision
from a server on 127.0.0.1 (good, checksum mismatch, truncated); every bad file named.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from ssgan.data import standard
from ssgan.data.idx import decode_idx, encode_idx, write_idx_gz
from ssgan.data.standard import IDX_STEMS, load_cifar10, load_idx, load_svhn
from ssgan.errors import DataError

from folder_fixtures import snapshot

COUNTS = {"train": 30, "t10k": 10}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def fake_idx(folder: Path, seed: int = 0, gz: bool = True) -> dict[str, bytes]:
    """The four files of a tiny MNIST-format set in `folder`; returns their decompressed content."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    content = {}
    for part, n in COUNTS.items():
        arrays = {f"{part}-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28)),
                  f"{part}-labels-idx1-ubyte": np.arange(n) % 10}
        for stem, a in arrays.items():
            content[stem] = encode_idx(a)
            if gz:
                write_idx_gz(a, folder / f"{stem}.gz")
            else:
                (folder / stem).write_bytes(content[stem])
    return content


@pytest.fixture
def tiny_idx(monkeypatch):
    """Make `mnist` expect the tiny set's sizes and sha256 (as it expects the official ones)."""
    def expect(content: dict[str, bytes], name: str = "mnist", md5s: dict[str, str] | None = None):
        spec = standard.IDX_SETS[name]
        sha = {s: hashlib.sha256(c).hexdigest() for s, c in content.items()} if spec.sha256 is not None else None
        monkeypatch.setitem(standard.IDX_SETS, name, replace(spec, sizes=tuple(len(content[s]) for s in IDX_STEMS),
                                                             sha256=sha))
        if md5s is not None:
            monkeypatch.setattr(spec.tv, "resources", [(f"{s}.gz", md5s[s]) for s in IDX_STEMS])
    return expect


# ------------------------------------------------------------------------------------ IDX: local files
def test_our_layout_is_verified_then_read_in_place(tmp_path, tiny_idx):
    root = tmp_path / "root"
    tiny_idx(fake_idx(root / "mnist"))
    before = snapshot(root)
    data = load_idx("mnist", root, download=False)
    assert data.name == "mnist" and data.train.x.shape == (30, 1, 28, 28) and data.test.x.shape == (10, 1, 28, 28)
    assert data.train.x.dtype == torch.uint8 and data.train.y.tolist() == [i % 10 for i in range(30)]
    assert data.default_request == {"labels": 100}
    assert snapshot(root) == before                                           # the data root is only read
    assert not standard.cache_dir().exists()                                 # and no copy is made elsewhere


def test_torchvision_s_layout_is_read_in_place(tmp_path, tiny_idx):
    root = tmp_path / "root"
    content = fake_idx(root / "MNIST" / "raw", gz=False)
    tiny_idx(content)
    data = load_idx("mnist", root, download=False)
    assert data.test.y.tolist() == [i % 10 for i in range(10)]
    assert not standard.cache_dir().exists()


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[:40]), "corrupted or truncated gzip"),
    (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-5])), "truncated: "),
    (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[::-1])), "not the official mnist file"),
    (lambda p: p.write_bytes(b"not gzip, not idx"), "truncated: 17 bytes"),
])
def test_a_damaged_file_is_named_with_what_to_do(tmp_path, tiny_idx, damage, words):
    root = tmp_path / "root"
    tiny_idx(fake_idx(root / "mnist"))
    victim = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    damage(victim)
    with pytest.raises(DataError, match=words) as info:
        load_idx("mnist", root, download=False)
    assert str(victim) in str(info.value) and "delete it" in str(info.value)


def test_missing_files_and_no_download_name_all_four_or_fall_back_to_the_subset(tmp_path, served):
    _, server = served
    with pytest.raises(DataError) as info:
        load_idx("mnist", tmp_path, download=False)
    assert all(f"{s}.gz" in str(info.value) for s in IDX_STEMS) and "--data.allow_subset=true" in str(info.value)
    data = load_idx("mnist", tmp_path, download=False, allow_subset=True)
    assert data.name == "mnist-subset" and len(data.train) == 6000 and len(data.test) == 1000
    assert data.train.y.bincount().min() > 500 and "6,000-image subset" in data.note
    assert server.served == []                                                # download=False: no request


def test_a_failed_download_falls_back_to_the_subset_only_when_allowed(tmp_path, monkeypatch):
    """Offline, as `make demo` runs: every mirror refuses; with allow_subset the run goes on, saying so."""
    monkeypatch.setattr(tvd.MNIST, "mirrors", [closed_port_url()])
    with pytest.raises(DataError, match="could not download mnist"):
        load_idx("mnist", tmp_path, download=True)
    data = load_idx("mnist", tmp_path, download=True, allow_subset=True)
    assert data.name == "mnist-subset" and "not downloadable" in data.note


def test_the_embedded_subset_is_checked_like_any_file(monkeypatch, tmp_path):
    monkeypatch.setattr(standard, "SUBSET", replace(standard.SUBSET, sha256={s: "0" * 64 for s in IDX_STEMS}))
    with pytest.raises(DataError, match="not the official mnist-subset file"):
        load_idx("mnist", tmp_path, download=False, allow_subset=True)


def test_kmnist_gz_files_are_checked_by_torchvision_s_md5(tmp_path, tiny_idx):
    root = tmp_path / "root"
    content = fake_idx(root / "kmnist")
    md5s = {s: md5(root / "kmnist" / f"{s}.gz") for s in IDX_STEMS}
    tiny_idx(content, "kmnist", md5s)
    data = load_idx("kmnist", root, download=False)
    assert data.classes == list(tvd.KMNIST.classes) and len(data.train) == 30
    write_idx_gz(np.zeros((10, 28, 28)), root / "kmnist" / "t10k-images-idx3-ubyte.gz")  # same size, other content
    with pytest.raises(DataError, match="md5 differs"):
        load_idx("kmnist", root, download=False)


# ------------------------------------------------------------------------------------- IDX: downloads
@pytest.fixture
def served_idx(served, tiny_idx, monkeypatch):
    """The tiny set as .gz files on the loopback server, with torchvision's MNIST pointed at it."""
    folder, server = served
    content = fake_idx(folder)
    tiny_idx(content, md5s={s: md5(folder / f"{s}.gz") for s in IDX_STEMS})
    return folder, server, content


def test_a_good_download_lands_in_torchvision_s_layout(tmp_path, served_idx, monkeypatch):
    _, server, content = served_idx
    monkeypatch.setattr(tvd.MNIST, "mirrors", [closed_port_url(), server.url()])  # the first mirror is down
    data = load_idx("mnist", tmp_path / "root", download=True)
    assert len(data.train) == 30
    raw = tmp_path / "root" / "MNIST" / "raw"
    assert all((raw / s).read_bytes() == content[s] for s in IDX_STEMS)
    assert set(server.served) == {f"/ok/{s}.gz" for s in IDX_STEMS}  # (torchvision asks twice: redirects, then data)


def test_a_download_with_the_wrong_checksum_is_refused_naming_the_file(tmp_path, served_idx, monkeypatch):
    folder, server, _ = served_idx
    write_idx_gz(np.ones((30,)), folder / "train-labels-idx1-ubyte.gz")  # what the server now holds is not that
    monkeypatch.setattr(tvd.MNIST, "mirrors", [server.url()])
    with pytest.raises(DataError) as info:
        load_idx("mnist", tmp_path / "root", download=True)
    msg = str(info.value)
    assert "could not download mnist" in msg and "train-labels-idx1-ubyte.gz" in msg and "corrupted" in msg


@pytest.mark.parametrize("mode", ["short", "garbage"])
def test_a_truncated_or_broken_download_is_refused(tmp_path, served_idx, monkeypatch, mode):
    _, server, _ = served_idx
    monkeypatch.setattr(tvd.MNIST, "mirrors", [server.url(mode)])
    with pytest.raises(DataError, match="could not download mnist"):
        load_idx("mnist", tmp_path / "root", download=True)


# ---------------------------------------------------------------------------------------- full files
@pytest.mark.parametrize("name, counts", [
    ("mnist", [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]), ("fashion-mnist", [6000] * 10)])
def test_the_full_files_verify_and_load(mnist_root, name, counts):
    if not (mnist_root / name).is_dir():
        pytest.skip(f"{name}/ not under $SSGAN_DATA")
    data = load_idx(name, mnist_root, download=False)
    assert data.train.y.bincount().tolist() == counts and len(data.test) == 10000


# ----------------------------------------------------------------------------------------- CIFAR-10
def write_cifar(base: Path, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10's python layout: pickled dicts of (n, 3072) uint8 rows (R, G, B planes) and labels."""
    rng = np.random.default_rng(seed)
    base.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, _ in tvd.CIFAR10.train_list + tvd.CIFAR10.test_list:
        rows[name] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(base / name, "wb") as f:
            pickle.dump({"data": rows[name], "labels": [int(v) for v in rng.integers(0, 10, n)]}, f)
    with open(base / tvd.CIFAR10.meta["filename"], "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return rows


@pytest.fixture
def cifar_md5(monkeypatch):
    def expect(base: Path):
        monkeypatch.setattr(tvd.CIFAR10, "train_list", [[n, md5(base / n)] for n, _ in tvd.CIFAR10.train_list])
        monkeypatch.setattr(tvd.CIFAR10, "test_list", [[n, md5(base / n)] for n, _ in tvd.CIFAR10.test_list])
        meta = tvd.CIFAR10.meta["filename"]
        monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5(base / meta)})
    return expect


def test_cifar10_batches_load_as_channels_first_uint8(tmp_path, cifar_md5):
    base = tmp_path / "root" / "cifar10" / "cifar-10-batches-py"
    rows = write_cifar(base)
    cifar_md5(base)
    data = load_cifar10(tmp_path / "root", download=False)
    assert data.train.x.shape == (40, 3, 32, 32) and data.test.x.shape == (8, 3, 32, 32)
    assert torch.equal(data.train.x[0].flatten(), torch.from_numpy(rows["data_batch_1"][0]))  # R, G, B planes
    assert data.classes == [f"class{k}" for k in range(10)] and data.default_request == {"labels": 4000}


def test_a_corrupt_cifar10_batch_is_named_before_it_is_unpickled(tmp_path, cifar_md5):
    base = tmp_path / "root" / "cifar-10-batches-py"
    write_cifar(base)
    cifar_md5(base)
    (base / "data_batch_3").write_bytes(pickle.dumps({"data": "anything"}))
    with pytest.raises(DataError, match="data_batch_3: corrupted or not the official CIFAR-10 file"):
        load_cifar10(tmp_path / "root", download=False)
    (base / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        load_cifar10(tmp_path / "root", download=False)


def test_cifar10_downloads_from_its_listed_url(tmp_path, served, cifar_md5, monkeypatch):
    folder, server = served
    base = tmp_path / "made" / "cifar-10-batches-py"
    write_cifar(base)
    cifar_md5(base)
    with tarfile.open(folder / "cifar.tar.gz", "w:gz") as tar:
        tar.add(base, arcname="cifar-10-batches-py")
    monkeypatch.setattr(tvd.CIFAR10, "url", server.url() + "cifar.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(DataError, match="could not download CIFAR-10"):
        load_cifar10(tmp_path / "root", download=True)                        # checksum mismatch
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(folder / "cifar.tar.gz"))
    data = load_cifar10(tmp_path / "root", download=True)
    assert len(data.train) == 40 and (tmp_path / "root" / "cifar-10-batches-py" / "test_batch").is_file()


# --------------------------------------------------------------------------------------------- SVHN
def write_svhn(folder: Path, url: str = "unused-url") -> dict:
    """SVHN's .mat files (X: 32 x 32 x 3 x N uint8, y: N x 1 with 10 for the digit 0); their split_list."""
    sio = pytest.importorskip("scipy.io")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    split = {}
    for part, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1)                             # SVHN writes the digit 0 as 10
        buf = io.BytesIO()
        sio.savemat(buf, {"X": x, "y": y})
        (folder / f"{part}_32x32.mat").write_bytes(buf.getvalue())
        split[part] = [url + f"{part}_32x32.mat", f"{part}_32x32.mat", md5(folder / f"{part}_32x32.mat")]
    return split


def test_svhn_downloads_from_its_listed_urls(tmp_path, served, monkeypatch):
    folder, server = served
    split = write_svhn(folder, server.url())
    monkeypatch.setattr(tvd.SVHN, "split_list", {**tvd.SVHN.split_list, **split})
    data = load_svhn(tmp_path / "root", download=True)
    assert len(data.train) == 12 and (tmp_path / "root" / "svhn" / "test_32x32.mat").is_file()
    monkeypatch.setattr(tvd.SVHN, "split_list", {**tvd.SVHN.split_list, "train": [server.url("short") +
                        "train_32x32.mat", "train_32x32.mat", split["train"][2]]})
    with pytest.raises(DataError, match="could not download SVHN"):
        load_svhn(tmp_path / "other", download=True)


def test_svhn_mat_files_load_with_zero_as_class_zero(tmp_path, monkeypatch):
    folder = tmp_path / "root" / "svhn"
    split = write_svhn(folder)
    monkeypatch.setattr(tvd.SVHN, "split_list", {**tvd.SVHN.split_list, **split})
    data = load_svhn(tmp_path / "root", download=False)
    assert data.train.x.shape == (12, 3, 32, 32) and data.train.y.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert data.default_request == {"labels": 1000}
    (folder / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_32x32.mat: corrupted"):
        load_svhn(tmp_path / "root", download=False)


def test_idx_writer_and_reader_agree_with_torchvision_s_reader(tmp_path):
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    a = np.random.default_rng(0).integers(0, 256, (3, 5, 7)).astype(np.uint8)
    (tmp_path / "a").write_bytes(encode_idx(a))
    theirs = read_sn3_pascalvincent_tensor(str(tmp_path / "a"))
    assert torch.equal(theirs, torch.from_numpy(a)) and torch.equal(decode_idx(encode_idx(a), "a"), theirs)
    write_idx_gz(a, tmp_path / "b.gz")
    first = (tmp_path / "b.gz").read_bytes()
    write_idx_gz(a, tmp_path / "b.gz")
    assert (tmp_path / "b.gz").read_bytes() == first                         # byte-identical across runs


@pytest.mark.parametrize("content, words", [
    (b"\x00\x00\x0d\x01" + bytes(8), "not a uint8 IDX file"),            # float32 data
    (b"\x00\x00\x08\x03" + bytes(4), "dimensions None"),                 # the header cut short
    (encode_idx(np.zeros((2, 3), np.uint8))[:-1], "do not match its length"),
])
def test_a_bad_idx_header_is_named(content, words):
    with pytest.raises(ValueError, match=words) as info:
        decode_idx(content, "some/file")
    assert "some/file" in str(info.value)


def test_the_full_mnist_reads_as_torchvision_reads_it():
    """The reader on the real files, against torchvision's MNIST class (the reader ssgan used before)."""
    root = Path(os.environ.get("SSGAN_DATA", "")) if os.environ.get("SSGAN_DATA") else None
    if root is None or not (root / "mnist").is_dir():
        pytest.skip("the shared MNIST files are absent ($SSGAN_DATA/mnist)")
    data = load_idx("mnist", root, download=False)
    cache = standard.cache_dir() / "tv" / "MNIST" / "raw"
    cache.mkdir(parents=True)
    for stem in IDX_STEMS:
        (cache / stem).write_bytes(gzip.decompress((root / "mnist" / f"{stem}.gz").read_bytes()))
    for part, train in ((data.train, True), (data.test, False)):
        ds = tvd.MNIST(str(standard.cache_dir() / "tv"), train=train, download=False)
        assert torch.equal(part.x, ds.data.unsqueeze(1)) and torch.equal(part.y, ds.targets)


def test_a_training_run_on_mnist_imports_neither_torchvision_nor_torch_dynamo(tmp_path):
    """Each costs about 150 MB of resident memory (torchvision imports torch._dynamo, and so does
    torch.optim): a run on MNIST, from loading to its report, never loads them (a download does)."""
    import subprocess
    import sys
    code = ("import sys; from ssgan import cli; "
            f"rc = cli.main(['train', '--run-dir', {str(tmp_path / 'run')!r}, '--data-root', {str(tmp_path)!r}, "
            "'--data.allow_subset=true', '--data.download=false', '--model.net=dcgan28', '--model.width=0.125', '--method.name=kplus1', "
            "'--train.epochs=1', '--train.max_steps=2', '--train.sample_every=1', '--train.batch_size=20']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith(('torchvision', 'torch._dynamo'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout[-2000:] + out.stderr[-2000:]
    assert (tmp_path / "run" / "samples" / "epoch_001.png").is_file() and (tmp_path / "run" / "report.html").is_file()


def test_svhn_without_scipy_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # `import scipy.io` now raises ImportError
    with pytest.raises(DataError, match="pip install scipy"):
        load_svhn(tmp_path, download=False)
