"""Download files from a list of mirrors, verify their checksums, and publish them atomically.

torchvision's `download_url` writes straight to the final path and checks the md5 of the
compressed file; we verify the sha256 of the *decompressed* content instead (the gzip wrapper
of a re-packed copy differs, its content does not) and only rename a file into place once it
is complete and verified, so no partial file is ever left where a later run would trust it.
"""
from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError, DownloadError
from .idx import read_bytes, sha256


def fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) mirrors only)
        expected = response.headers.get("Content-Length")
        try:
            data = response.read()
        except http.client.IncompleteRead as e:  # connection closed before Content-Length bytes: checked below
            data = e.partial
    if expected is not None and len(data) != int(expected):
        raise DataError(f"{url}: truncated download ({len(data)} of {expected} bytes)")
    return data


def download_verified(filename: str, sha256_of_content: str, mirrors: list[str], folder: Path,
                      timeout: float = 20.0) -> Path:
    """Fetch `filename` from the first mirror that serves a copy whose decompressed sha256 matches."""
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(fetch(url, timeout))
            digest = sha256(read_bytes(tmp))
            if digest != sha256_of_content:
                raise DataError(f"checksum mismatch: sha256 of content {digest[:16]}..., "
                                    f"expected {sha256_of_content[:16]}...")
            target = folder / filename
            os.replace(tmp, target)
            return target
        # HTTPException: a server that answers with something other than HTTP (it is not an OSError)
        except (urllib.error.URLError, OSError, http.client.HTTPException, DataError, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {filename} ({'; '.join(failures)})")
