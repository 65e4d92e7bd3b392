"""Atomic writes: a file is either its old version or its complete new one, never half-written.

The new version is written to a temporary file beside the target (`.NAME.XXXXXXXX.tmp`), flushed to
disk, given the permissions the umask allows (as `open` would), then renamed into place. A process
killed mid-write leaves only such a temporary file, which `remove_stale_temps` clears.
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from .errors import OutputError

_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what tempfile.mkstemp makes with our prefix/suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot write {path}: {path.parent} is not a folder") from None
    except PermissionError:
        raise OutputError(f"cannot write {path}: permission denied in {path.parent}") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            kept = "its previous version is intact" if path.exists() else "nothing was written"
            raise OutputError(f"no space left on device while writing {path}; {kept}. Free some space and "
                              "run the command again") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write `data` atomically and durably (fsync before the rename)."""
    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while len(view):
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files a killed write left in `folder` and its subfolders; returns them.
    Call it only while holding the folder's lock, or another writer's temporary file could go."""
    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file() and _TEMP.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_figure(fig, path: str | Path) -> None:
    """A matplotlib figure as a PNG, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
