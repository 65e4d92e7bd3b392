"""The field's datasets: MNIST, Fashion-MNIST, KMNIST, CIFAR-10 and SVHN.

torchvision supplies the download lists, the integrity checks of the downloads, and the readers of
CIFAR-10's and SVHN's files. It is imported only where those are needed (a download, KMNIST's md5
list, CIFAR-10, SVHN): importing it imports torch._dynamo, about 165 MB of resident memory, and an
MNIST run reads its IDX files itself (idx.py). This module adds what torchvision lacks: where to look
(the data root: --data-root, $SSGAN_DATA or the cache), errors that name the file and say what to
do, a timeout on downloads, checks of the decompressed IDX content (copies re-compressed by others
differ in their gzip wrappers, not in their content), and the embedded 6,000-image MNIST subset
for offline runs.

Layouts accepted under the data root, for each dataset: torchvision's own (ROOT/MNIST/raw/...,
ROOT/cifar-10-batches-py/, ROOT/train_32x32.mat) or a folder named after the dataset holding the
same files (ROOT/mnist/*.gz, ROOT/fashion-mnist/, ROOT/cifar10/cifar-10-batches-py/, ROOT/svhn/).
IDX files, raw or gzip-compressed, are verified and read where they are; nothing is written beside
them.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import socket
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import DataError
from .base import ImageSet, SourceData
from .idx import decode_idx

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def tv_datasets():
    """torchvision.datasets, imported on first use (see the module's docstring)."""
    import torchvision.datasets
    return torchvision.datasets


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class IdxSet:
    tv_name: str                   # the torchvision class: its mirrors, resources (md5 of the .gz), layout ROOT/<name>/raw
    folder: str                    # our folder name under the data root
    classes: list[str]
    sha256: dict[str, str] | None  # of the decompressed files, where known: any re-compressed copy passes
    sizes: tuple[int, ...] = (47040016, 60008, 7840016, 10008)  # decompressed bytes: 60,000 + 10,000 28 x 28

    @property
    def tv(self) -> type:
        return getattr(tv_datasets(), self.tv_name)


IDX_SETS = {
    "mnist": IdxSet("MNIST", "mnist", [str(i) for i in range(10)], dict(zip(IDX_STEMS, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")))),
    "fashion-mnist": IdxSet("FashionMNIST", "fashion-mnist", [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], dict(zip(IDX_STEMS, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34")))),
    "kmnist": IdxSet("KMNIST", "kmnist", ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"], None),  # checked by the .gz's md5
}
# The subset of MNIST shipped in the package (every tenth image), for offline runs.
SUBSET = IdxSet("MNIST", "mnist-subset", IDX_SETS["mnist"].classes, dict(zip(IDX_STEMS, (
    "2552e7ed83db49429bfbe826379a0d9d4332bc8baeab0bf6ac46314b61bbc940",
    "d57fd2c35c7d79943bbbdad853489a0fa992aee7fc28208cca2481eabbcc2d65",
    "7f2ba90f83cef36b1c915eaa41461af190f186f7ac6cc72d75136e4fbcdb64a5",
    "a6418679c72702ef42e5e405599252ef845d42cd933bb3d3013a2ffd1c9cc235"))), (4704016, 6008, 784016, 1008))
# Each benchmark's usual label count (Salimans et al.: 100 on MNIST, 4,000 on CIFAR-10, 1,000 on SVHN).
PROTOCOLS = {"mnist": 100, "fashion-mnist": 100, "kmnist": 100, "cifar10": 4000, "svhn": 1000}
DOWNLOAD_TIMEOUT_S = 30.0
FIX = "delete it to have it downloaded again, or replace it with the official file"


def cache_dir() -> Path:
    """The user's cache: the data root, and where downloads go, when neither --data-root nor $SSGAN_DATA is set."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ssgan"


@contextlib.contextmanager
def download_errors(what: str, root: Path, how_else: str):
    """torchvision's download with a timeout (it sets none) and its failures as one named error."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except (RuntimeError, OSError, http.client.HTTPException, ValueError) as e:
        detail = " ".join(str(e).split())[:600]
        raise DataError(f"could not download {what} into {root} ({detail}). {how_else}") from None
    finally:
        socket.setdefaulttimeout(old)


# ------------------------------------------------------------------------------------- IDX datasets
def _content(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupted or truncated gzip data ({e}); {FIX}") from None


def verified_idx(path: Path, stem: str, spec: IdxSet) -> bytes:
    """The decompressed content of one IDX file, checked: its length, then its sha256 where known
    (else, for a .gz, the md5 torchvision lists)."""
    data, size = _content(path), dict(zip(IDX_STEMS, spec.sizes))[stem]
    if len(data) != size:
        what = "truncated" if len(data) < size else "too long"
        raise DataError(f"{path}: {what}: {len(data)} bytes of content where {size} are expected; {FIX}")
    if spec.sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256[stem]:
            raise DataError(f"{path}: not the official {spec.folder} file (sha256 of its content {digest[:16]}..., "
                            f"expected {spec.sha256[stem][:16]}...); {FIX}")
    elif path.suffix == ".gz" and file_md5(path) != dict(spec.tv.resources)[stem + ".gz"]:
        raise DataError(f"{path}: not the official {spec.folder} file (its md5 differs from torchvision's list); {FIX}")
    return data


def _find_idx(folders: list[Path]) -> dict[str, Path] | None:
    """The four files, each raw or .gz, all in one of `folders`."""
    for folder in folders:
        found = {s: next((folder / n for n in (s, s + ".gz") if (folder / n).is_file()), None) for s in IDX_STEMS}
        if all(found.values()):
            return found
    return None


def _read_idx(files: dict[str, Path], spec: IdxSet) -> dict[str, ImageSet]:
    """Verify the four files, then decode their content: {"train", "test"} -> (N, 1, 28, 28) uint8 images."""
    arrays = {}
    for stem, path in files.items():  # one file's bytes at a time
        try:
            arrays[stem] = decode_idx(verified_idx(path, stem, spec), str(path))
        except ValueError as e:
            raise DataError(f"{e}; {FIX}") from None
    return {part: ImageSet(arrays[f"{prefix}-images-idx3-ubyte"].unsqueeze(1).contiguous(),
                           arrays[f"{prefix}-labels-idx1-ubyte"].long())
            for part, prefix in (("train", "train"), ("test", "t10k"))}


def load_idx(name: str, root: Path, download: bool = True, allow_subset: bool = False) -> SourceData:
    spec, protocol = IDX_SETS[name], {"labels": PROTOCOLS[name]}
    tv_raw = root / spec.tv_name / "raw"
    found = _find_idx([tv_raw, root / spec.folder, root])
    failed = None
    if found is None and download:
        try:
            with download_errors(name, root, _missing_idx(spec, root)):
                spec.tv(str(root), train=True, download=True)
        except DataError as e:
            if name != "mnist" or not allow_subset:
                raise
            failed = e  # offline: fall back to the embedded subset below, and say why
        found = _find_idx([tv_raw])
    if found is not None:
        sets = _read_idx(found, spec)
        return SourceData(name, sets["train"], sets["test"], spec.classes, protocol)
    if name != "mnist" or not allow_subset:
        raise DataError(_missing_idx(spec, root) + (" Or allow the embedded 6,000-image subset with "
                                                    "--data.allow_subset=true." if name == "mnist" else ""))
    folder = Path(str(resources.files("ssgan.data") / "embedded"))
    sets = _read_idx({s: folder / f"mnist-subset-{s}.gz" for s in IDX_STEMS}, SUBSET)
    note = (f"full MNIST not found in {root}{' and not downloadable' if failed else ''}: training on the embedded "
            f"6,000-image subset (put the four IDX files in {root / 'mnist'} or set $SSGAN_DATA)")
    return SourceData("mnist-subset", sets["train"], sets["test"], spec.classes, protocol, note=note)


def _missing_idx(spec: IdxSet, root: Path) -> str:
    names = ", ".join(f"{s}.gz" for s in IDX_STEMS)
    return (f"{spec.folder} not found: put the four files {names} (gzip or raw) in {root / spec.folder}, or point "
            f"--data-root or $SSGAN_DATA at a folder holding {spec.folder}/, or allow the download.")


# ------------------------------------------------------------------------------- CIFAR-10 and SVHN
def _check_files(folder: Path, listed: list[tuple[str, str]], name: str) -> None:
    """Every file torchvision will read, present and with its official md5 (it says only "corrupted")."""
    for filename, md5 in listed:
        path = folder / filename
        if not path.is_file():
            raise DataError(f"{path} is missing: {name} needs {', '.join(f for f, _ in listed)} in {folder}; "
                            "allow the download or copy the official files there")
        if file_md5(path) != md5:
            raise DataError(f"{path}: corrupted or not the official {name} file (its md5 differs); {FIX}")


def load_cifar10(root: Path, download: bool = True) -> SourceData:
    """CIFAR-10's python batches. They are pickles, unpickled by torchvision only after every file's
    md5 matched the official release, so no other content is ever unpickled."""
    tvd = tv_datasets()
    base = tvd.CIFAR10.base_folder
    tv_root = next((r for r in (root, root / "cifar10") if (r / base).is_dir()), None)
    if tv_root is None and download:
        with download_errors("CIFAR-10", root, f"Or put the extracted {base}/ folder in {root}."):
            tvd.CIFAR10(str(root), train=True, download=True)
        tv_root = root
    if tv_root is None:
        raise DataError(f"CIFAR-10 not found: put the extracted {base}/ folder (from {tvd.CIFAR10.filename}) in "
                        f"{root}, or point --data-root or $SSGAN_DATA at its parent, or allow the download")
    listed = tvd.CIFAR10.train_list + tvd.CIFAR10.test_list + [[tvd.CIFAR10.meta["filename"], tvd.CIFAR10.meta["md5"]]]
    _check_files(tv_root / base, [tuple(x) for x in listed], "CIFAR-10")
    sets = {}
    for part, train in (("train", True), ("test", False)):
        ds = tvd.CIFAR10(str(tv_root), train=train)
        sets[part] = ImageSet(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),   # (N, 3, 32, 32)
                              torch.tensor(ds.targets, dtype=torch.long))
        classes = list(ds.classes)
    return SourceData("cifar10", sets["train"], sets["test"], classes, {"labels": PROTOCOLS["cifar10"]})


def load_svhn(root: Path, download: bool = True) -> SourceData:
    """SVHN's train and test .mat files (not `extra`, as in Salimans et al.); the digit 0 is class 0."""
    try:
        import scipy.io  # noqa: F401  (torchvision reads .mat files with it)
    except ImportError:
        raise DataError("SVHN's .mat files need scipy: pip install scipy") from None
    tvd = tv_datasets()
    split = tvd.SVHN.split_list
    tv_root = next((r for r in (root / "svhn", root) if (r / split["train"][1]).is_file()), None)
    if tv_root is None and download:
        with download_errors("SVHN", root, f"Or put {split['train'][1]} and {split['test'][1]} in {root / 'svhn'}."):
            for part in ("train", "test"):
                tvd.SVHN(str(root / "svhn"), split=part, download=True)
        tv_root = root / "svhn"
    if tv_root is None:
        raise DataError(f"SVHN not found: put {split['train'][1]} and {split['test'][1]} in {root / 'svhn'}, or "
                        "point --data-root or $SSGAN_DATA at a folder holding svhn/, or allow the download")
    _check_files(tv_root, [(split[p][1], split[p][2]) for p in ("train", "test")], "SVHN")
    sets = {}
    for part in ("train", "test"):
        ds = tvd.SVHN(str(tv_root), split=part)
        sets[part] = ImageSet(torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels).long())
    return SourceData("svhn", sets["train"], sets["test"], [str(i) for i in range(10)],
                      {"labels": PROTOCOLS["svhn"]})
