"""Checkpoint files: written atomically (temp file + rename), read with `weights_only=True`, so a
checkpoint can never run code when loaded, and checked against the configuration that resumes it.

What a checkpoint holds (its layout) is defined in one place: `Run.state_dict` in run.py.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from ..config import flatten, saved_values
from ..errors import CheckpointError
from ..files import atomic_write_bytes

FORMAT = "ssgan-checkpoint-v1"


def save(state: dict, path: str | Path) -> None:
    """Serialised in memory first: torch's own file writer hides why a write failed (a full disk
    reads "unexpected pos"), a plain write names it."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def resolve(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file, or a run folder (its checkpoints/{which}.pt)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise CheckpointError(f"{path} holds no checkpoints/{which}.pt (is it an ssgan run folder?)")
        return candidate
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    return path


def load(path: str | Path, which: str = "last") -> dict:
    path = resolve(path, which)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # garbage input makes the unpickler raise almost anything (KeyError on text, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if "weights_only" in str(e):  # torch's own text suggests the unsafe load; we never do that
            first = "it holds objects other than tensors and plain data, which a safe load refuses"
        detail = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise CheckpointError(f"{path} is not a readable ssgan checkpoint ({detail})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ssgan checkpoint (format {FORMAT} expected)")
    return state


# Keys that may differ between a checkpoint and the run that resumes it: they change how long or
# where a run goes, not what the weights mean. train.batch_size is per process, so resuming with
# another number of processes may change it to keep the global batch.
RESUMABLE_CHANGES = {"train.epochs", "train.batch_size", "train.device", "train.threads", "train.eval_batch_size",
                     "train.sample_every", "data.root", "data.workers", "train.out", "data.download",
                     "data.allow_subset", "data.skip_bad_files", "train.report", "train.track"}


def check_compatible(saved: dict, current: dict, path: Path | str) -> None:
    """Refuse to load weights into a run whose configuration means something else.

    A key missing from the checkpoint's configuration (one added to ssgan after it was written)
    counts as its default, which is what that older run did.
    """
    a, b = saved_values(saved), flatten(current)
    diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]
    if diffs:
        shown = ", ".join(f"{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}" for k in diffs[:5])
        raise CheckpointError(f"{path} was made with another configuration ({shown}); "
                              "use a new run folder or the checkpoint's own settings")
