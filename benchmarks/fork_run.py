"""Branch a run at its last checkpoint into a new folder with a few settings changed.

For probes that differ only after some epoch: a rate decay over the last epochs, or another EMA
decay for evaluation. Such a run is the same as the base run up to the fork, so training it again
from the start spends CPU on epochs already known. `ssgan train --resume` refuses a checkpoint
whose configuration differs (rightly: the weights would mean something else); this script writes a
copy whose checkpoint and config.yaml carry the new values, after which the copy is resumed as
usual:

    python benchmarks/fork_run.py RUN_DIR NEW_DIR optim.decay=linear optim.decay_epochs=24
    ssgan train --resume NEW_DIR

Only the keys in FORKABLE may change: they alter the rate schedule, what is evaluated, or a loss
term that starts after the fork (the entropy term, with `method.entropy_from_epoch`), never what
the saved weights, optimiser state or data split mean. The copy's metrics hold the base run's
epochs up to the fork, so its curves read from epoch 1; a fork of an `ssgan bench` run keeps its
clock (bench_time.json), so resuming it with `ssgan bench` adds the fork's time to its base's.
Resuming at an epoch boundary restores the RNG states and batch streams, so the fork trains on
exactly as a run started with the new values would (bit-identical on the CPU when the schedule
does not differ before the fork). A new `train.ema` changes the average from the fork on: it
starts from the base's average, so it differs slightly from that of a run started with it (with
the warm-up, the state at epoch 48 of 72 keeps about 3% of the weight at the end).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

from ssgan.config import apply, flatten, from_dict
from ssgan.files import atomic_write_text
from ssgan.tracking import Metrics
from ssgan.training import checkpoint

ENTROPY = {"method.entropy_weight", "method.entropy_from_epoch"}   # checked by check_entropy_fork
FORKABLE = {"optim.decay", "optim.decay_epochs", "train.ema", "train.epochs"} | ENTROPY
# bench_time: an `ssgan bench` run's clock, which the fork continues
COPIED = ("split.json", "bench_time.json", "metrics.jsonl")


def parse_change(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or key not in FORKABLE:
        raise SystemExit(f"fork_run: {text!r}: give KEY=VALUE with KEY one of {sorted(FORKABLE)}")
    return key, yaml.safe_load(value)


def check_entropy_fork(base, new, epoch: int) -> None:
    """The entropy term may change at a fork only where it was off in every epoch the base ran and
    starts after the fork, so the fork is the run that its settings would have made from the start."""
    if base.entropy_weight > 0 and base.entropy_from_epoch <= epoch:
        raise SystemExit(f"fork_run: the base run's entropy term was on (weight {base.entropy_weight} from epoch "
                         f"{base.entropy_from_epoch}) before the fork at epoch {epoch}; it cannot change now")
    if new.entropy_weight > 0 and new.entropy_from_epoch <= epoch:
        raise SystemExit(f"fork_run: method.entropy_from_epoch={new.entropy_from_epoch} is not after the fork at "
                         f"epoch {epoch}; set it to {epoch + 1} or later")


def fork(run_dir: Path, new_dir: Path, changes: dict) -> Path:
    """Copy `run_dir`'s last checkpoint and files into `new_dir` with `changes` applied; returns
    the new checkpoint's path."""
    if new_dir.exists():
        raise SystemExit(f"fork_run: {new_dir} exists; pick a new folder")
    state = checkpoint.load(run_dir, "last")
    if state.get("step", 0) != 0:
        raise SystemExit(f"fork_run: {run_dir}'s last checkpoint is mid-epoch; fork at an epoch's end")
    base = from_dict(state["config"])
    cfg = apply(from_dict(state["config"]), changes, source="fork_run")   # apply edits its argument
    if ENTROPY & set(changes):
        check_entropy_fork(base.method, cfg.method, state["epoch"])
    if cfg.train.epochs <= state["epoch"]:
        raise SystemExit(f"fork_run: the checkpoint is at epoch {state['epoch']}; train.epochs must exceed it")
    new_dir.mkdir(parents=True)
    for name in COPIED:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, new_dir / name)
    Metrics(new_dir).truncate(state["epoch"])   # as a resume does: the base may have logged epochs since
    state["config"] = cfg.to_dict()
    state.pop("format", None)
    checkpoint.save(state, new_dir / "checkpoints" / "last.pt")
    atomic_write_text(new_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    changed = {k: v for k, v in flatten(cfg.to_dict()).items() if k in changes}
    print(f"forked {run_dir} at epoch {state['epoch']} into {new_dir} with {changed}; "
          f"continue with: ssgan train --resume {new_dir}")
    return new_dir / "checkpoints" / "last.pt"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("new_dir", type=Path)
    ap.add_argument("changes", nargs="+", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    fork(args.run_dir, args.new_dir, dict(parse_change(c) for c in args.changes))


if __name__ == "__main__":
    main()
