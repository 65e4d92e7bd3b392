"""Shared pieces of the training-core tests: tiny synthetic configs, metrics reading, subprocess runs."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ssgan import config as C

# Timing fields differ between any two runs; everything else in a metrics record must be reproducible.
TIMING_FIELDS = ("epoch_time", "images_per_s", "elapsed")

# The smallest run that still exercises every part of the loop: 600 synthetic 16x16 images, 4 classes,
# 100 labels, the MLP pair (no batch norm, weight-normalised D with a data-dependent init).
TINY = {"data.dataset": "synthetic", "data.image_size": 16, "model.net": "mlp", "method.name": "fm",
        "train.batch_size": 20, "train.epochs": 2, "train.max_steps": 4, "train.device": "cpu",
        "optim.lr": 3e-3, "method.fm_distance": "l2", "train.report": False}  # report tests turn it on

# The BN networks: dcgan28 at an eighth of the recipe's width.
TINY_DCGAN = {**TINY, "data.image_size": 28, "model.net": "dcgan28", "model.width": 0.125,
              "method.name": "kplus1", "optim.lr": 2e-4}


def make_cfg(base: dict = TINY, **changes) -> C.Config:
    """A validated config: `base` plus changes given as keyword args with '__' for '.' (train__epochs=3)."""
    return C.build(overrides={**base, **{k.replace("__", "."): v for k, v in changes.items()}})


def cli_args(overrides: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in overrides.items()]


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


@contextlib.contextmanager
def torch_threads(n: int | None = None):
    """Run with `n` intra-op threads (None: leave as is) and give the old count back afterwards.

    The tests use one thread: their tensors are tiny, and on a busy machine with few cores several OpenMP
    threads spin-wait for each other, which made the suite four times slower.
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def ssgan_command() -> list[str]:
    """The installed console script if it sits beside this interpreter, else `python -m ssgan`."""
    script = Path(sys.executable).parent / "ssgan"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ssgan"]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    env["OMP_NUM_THREADS"] = "1"              # see torch_threads
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_ssgan(args: list[str], timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(ssgan_command() + args, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=subprocess_env())


def load_benchmark(name: str):
    """Import benchmarks/NAME.py (a script, not a package module) for its tests."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
