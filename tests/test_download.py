"""Downloads against a real HTTP server on 127.0.0.1: verified files land, bad ones leave nothing behind.

The server serves a tmp folder under a few URL prefixes that choose its behaviour:
/ok/NAME serves the file, /lying/NAME claims a Content-Length larger than the body it sends,
/garbage/NAME answers with something that is not HTTP, anything else is a 404. No test reaches a real
host (conftest refuses other addresses).
"""
from __future__ import annotations

import gzip
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from ssgan.data import mnist
from ssgan.data.download import download_verified
from ssgan.errors import DataError, DownloadError
from ssgan.data.idx import encode_idx, read_idx, sha256, write_idx_gz

NAME = "train-labels-idx1-ubyte.gz"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.served.append(self.path)  # on arrival, before the client can see any reply
        mode, _, name = self.path.lstrip("/").partition("/")
        path = self.server.folder / name
        if mode not in ("ok", "lying", "garbage") or "/" in name or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if mode == "garbage":  # not an HTTP reply at all
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n" + body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (100 if mode == "lying" else 0)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


class Server:
    def __init__(self, folder: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.folder, self.httpd.served = folder, []
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, mode: str = "ok") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/"

    @property
    def served(self) -> list[str]:
        return self.httpd.served

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path):
    """A folder of files to serve, and the server serving it (shut down at the end)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = Server(folder)
    yield folder, server
    server.close()
    assert not server.thread.is_alive()


@pytest.fixture
def labels_file(served):
    """A small IDX labels file on the server; returns its decompressed content."""
    folder, _ = served
    labels = (np.arange(50) % 10).astype(np.uint8)
    write_idx_gz(labels, folder / NAME)
    return encode_idx(labels)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------- download_verified
def test_good_download(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    path = download_verified(NAME, sha256(labels_file), [server.url()], target, timeout=5)
    assert path == target / NAME
    assert gzip.decompress(path.read_bytes()) == labels_file
    np.testing.assert_array_equal(read_idx(path), np.arange(50) % 10)
    assert _listing(target) == [NAME]  # no .part file beside it
    assert server.served == [f"/ok/{NAME}"]


def test_checksum_mismatch_leaves_nothing(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_verified(NAME, "0" * 64, [server.url()], target, timeout=5)
    assert "checksum mismatch" in str(info.value) and NAME in str(info.value)
    assert _listing(target) == []


def test_short_body_for_its_content_length_leaves_nothing(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"truncated download \(\d+ of \d+ bytes\)") as info:
        download_verified(NAME, sha256(labels_file), [server.url("lying")], target, timeout=5)
    assert NAME in str(info.value)
    assert _listing(target) == []


def test_reply_that_is_not_http_leaves_nothing(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match=NAME):
        download_verified(NAME, sha256(labels_file), [server.url("garbage")], target, timeout=5)
    assert _listing(target) == []


def test_truncated_gzip_leaves_nothing(served, labels_file, tmp_path):
    folder, server = served
    (folder / NAME).write_bytes((folder / NAME).read_bytes()[:-8])  # served with a correct Content-Length
    target = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_verified(NAME, sha256(labels_file), [server.url()], target, timeout=5)
    assert "gzip" in str(info.value)
    assert _listing(target) == []


def test_existing_good_file_is_not_replaced_by_a_bad_download(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    target.mkdir()
    (target / NAME).write_bytes(b"previous")
    with pytest.raises(DownloadError):
        download_verified(NAME, "0" * 64, [server.url()], target, timeout=5)
    assert (target / NAME).read_bytes() == b"previous"
    assert _listing(target) == [NAME]


def test_first_mirror_down_second_good(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    path = download_verified(NAME, sha256(labels_file), [closed_port_url(), server.url()], target, timeout=5)
    assert gzip.decompress(path.read_bytes()) == labels_file
    assert _listing(target) == [NAME]


def test_bad_mirror_then_good_mirror(served, labels_file, tmp_path):
    _, server = served
    target = tmp_path / "data"
    mirrors = [server.url("lying"), server.url("missing"), server.url()]
    path = download_verified(NAME, sha256(labels_file), mirrors, target, timeout=5)
    assert path == target / NAME
    assert server.served == [f"/lying/{NAME}", f"/missing/{NAME}", f"/ok/{NAME}"]


def test_all_mirrors_fail_lists_every_attempt(served, labels_file, tmp_path):
    _, server = served
    down = closed_port_url()
    with pytest.raises(DownloadError) as info:
        download_verified(NAME, sha256(labels_file), [down, server.url("missing")], tmp_path / "data",
                          timeout=5)
    msg = str(info.value)
    assert down + NAME in msg and server.url("missing") + NAME in msg
    assert "Not Found" in msg


def test_real_mnist_file_verified_through_the_server(served, mnist_root, tmp_path):
    folder, server = served
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / name).write_bytes((mnist_root / "mnist" / name).read_bytes())
    digest = mnist.MNIST_FILES["t10k-labels-idx1-ubyte"]
    path = download_verified(name, digest, [server.url()], tmp_path / "d", timeout=5)
    assert read_idx(path).shape == (10000,)


# ---------------------------------------------------------------------------------------------- load_mnist
def test_nothing_downloadable_names_all_four_files(served, tmp_path):
    _, server = served
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        mnist.load_mnist(root, download=True, allow_subset=False, mirrors=[server.url()])
    msg = str(info.value)
    for stem in mnist.MNIST_FILES:
        assert f"{stem}.gz" in msg
    assert "allow_subset" in msg and "Not Found" in msg
    assert _listing(root / "mnist") == []


def test_nothing_downloadable_falls_back_to_the_subset(served, tmp_path):
    _, server = served
    data = mnist.load_mnist(tmp_path / "root", download=True, allow_subset=True, mirrors=[server.url()])
    assert data.name == "mnist-subset"
    assert len(data.train) == 6000 and len(data.test) == 1000
    assert data.train.x.shape[1:] == (1, 28, 28)
    assert "subset" in data.note and str(tmp_path / "root") in data.note


def test_no_download_does_not_touch_the_network(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        mnist.load_mnist(tmp_path, download=False, mirrors=["http://127.0.0.1:9/"])
    assert not (tmp_path / "mnist").exists()


def test_missing_files_downloaded_into_root(served, make_mnist, tmp_path, monkeypatch):
    """The whole path: find what is missing, download it verified, parse the four files."""
    folder, server = served
    paths = make_mnist(folder, {"train": 30, "t10k": 10})
    digests = {stem: sha256(gzip.decompress(p.read_bytes())) for stem, p in paths.items()}
    monkeypatch.setattr(mnist, "MNIST_FILES", digests)
    monkeypatch.setattr(mnist, "MNIST_COUNTS", {"train": 30, "t10k": 10})
    root = tmp_path / "root"
    (root / "mnist").mkdir(parents=True)
    raw = gzip.decompress(paths["t10k-labels-idx1-ubyte"].read_bytes())
    (root / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(raw)  # already there, uncompressed
    data = mnist.load_mnist(root, download=True, mirrors=[server.url()])
    assert data.name == "mnist" and not data.note
    assert len(data.train) == 30 and len(data.test) == 10
    assert sorted(server.served) == sorted(f"/ok/{s}.gz" for s in digests if s != "t10k-labels-idx1-ubyte")
    assert _listing(root / "mnist") == sorted([f"{s}.gz" for s in digests if s != "t10k-labels-idx1-ubyte"]
                                              + ["t10k-labels-idx1-ubyte"])
