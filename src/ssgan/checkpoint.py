"""One checkpoint file holds everything needed to resume or to use a run.

G, D, both optimisers, the EMA, the step, the config, the split, the class names, the fixed noise
and every RNG state. Written atomically (temp file + rename); read with `weights_only=True`, so a
checkpoint can never run code when loaded.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .io import atomic_write

FORMAT = "ssgan-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that is not a usable ssgan checkpoint, or one made with an incompatible configuration."""


def save(state: dict, path: str | Path) -> None:
    state = {"format": FORMAT, **state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


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
                     "data.allow_subset"}


def check_compatible(saved: dict, current: dict, path: Path | str) -> None:
    """Refuse to load weights into a run whose configuration means something else.

    A key missing from the checkpoint's configuration (one added to ssgan after it was written)
    counts as its default, which is what that older run did.
    """
    from .config import Config, flatten
    a, b = {**flatten(Config().to_dict()), **flatten(saved)}, flatten(current)
    diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]
    if diffs:
        shown = ", ".join(f"{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}" for k in diffs[:5])
        raise CheckpointError(f"{path} was made with another configuration ({shown}); "
                              "use a new run folder or the checkpoint's own settings")


def restore_models(state: dict, use_ema: bool = True):
    """(config, algorithm, D, G) rebuilt from a checkpoint; D is the EMA copy when the run kept one.

    D and G are on the CPU in eval mode. The networks are rebuilt from the checkpoint's own
    config, so a checkpoint is usable without the run folder it came from.
    """
    from .algorithms import build_algorithm
    from .config import from_dict
    from .nets import build_nets
    cfg = from_dict(state["config"])
    algo = build_algorithm(cfg.method)
    classes = state["classes"]
    channels, size = _input_shape(state)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(len(classes)))
    weights = state["D"]
    if use_ema and state.get("ema"):
        prefix = "module."
        weights = {k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)}
    try:
        D.load_state_dict(weights)
        if state.get("G") is not None:
            G.load_state_dict(state["G"])
        else:
            G = None
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the networks its config describes: "
                              f"{str(e).splitlines()[0]}") from None
    D.eval()
    if G is not None:
        G.eval()
    return cfg, algo, D, G


def _input_shape(state: dict) -> tuple[int, int]:
    """(channels, image size) the networks were built for, as recorded at save time."""
    shape = state.get("input_shape")
    if shape is None:
        raise CheckpointError("checkpoint does not record its input shape")
    return int(shape[0]), int(shape[1])
