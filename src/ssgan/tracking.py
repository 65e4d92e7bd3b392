"""Console lines, progress within an epoch, and the metrics files: metrics.jsonl (one JSON record
per epoch) and metrics.csv."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .errors import ConfigError
from .files import atomic_write_text


def log(msg: str) -> None:
    print(msg, file=sys.stdout, flush=True)


class Progress:
    """Steps through an epoch: a tqdm bar on a terminal; elsewhere (a log file, CI, nohup) a plain
    line every `every` of the epoch and at most one per `min_interval_s`, so that a slow epoch is
    never silent and a fast one does not flood the log."""

    def __init__(self, desc: str, first: int, total: int, enabled: bool = True, every: float = 0.05,
                 min_interval_s: float = 10.0):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.every, self.min_interval_s = max(1, round(every * total)), min_interval_s
        self.bar = tqdm(total=total, initial=first, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0) \
            if enabled and sys.stdout.isatty() else None
        self.last_step, self.last_time, self.t0, self.first = first, time.monotonic(), time.monotonic(), first

    def update(self, step: int, losses: dict[str, float]) -> None:
        shown = {k: f"{v:.3f}" for k, v in losses.items()}
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(shown)
            return
        now = time.monotonic()
        if not self.enabled or step - self.last_step < self.every or now - self.last_time < self.min_interval_s:
            return
        rate = (step - self.first) / max(now - self.t0, 1e-9)
        log(f"{self.desc}: step {step}/{self.total} ({100 * step / self.total:.0f}%), {rate:.1f} steps/s, "
            + ", ".join(f"{k} {v}" for k, v in shown.items()))
        self.last_step, self.last_time = step, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Metrics:
    """Epoch records, rewritten atomically each epoch so a crash never leaves half a line."""

    def __init__(self, folder: Path, tensorboard: bool = False):
        self.jsonl, self.csv = folder / "metrics.jsonl", folder / "metrics.csv"
        self.records: list[dict] = []
        self.tb = None
        if tensorboard:  # a mirror for TensorBoard users; the JSON lines stay the record
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("--train.track=tensorboard needs the tensorboard package: "
                                  "pip install 'ssgan[tensorboard]' (or pip install tensorboard)") from None
            self.tb = SummaryWriter(str(folder / "tb"))
        if self.jsonl.is_file():
            self.records = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def truncate(self, epochs_done: int) -> None:
        """On resume: drop records of epochs the checkpoint does not include."""
        self.records = [r for r in self.records if r["epoch"] <= epochs_done]
        self._write()

    def add(self, record: dict) -> None:
        self.records.append(record)
        self._write()
        if self.tb is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(key, value, record["epoch"])
            self.tb.flush()

    def add_images(self, tag: str, grid, epoch: int) -> None:
        """A (C, H, W) image grid in [0, 1], e.g. the epoch's samples, for TensorBoard."""
        if self.tb is not None:
            self.tb.add_image(tag, grid, epoch)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def _write(self) -> None:
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
        keys: list[str] = []
        for r in self.records:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.records)
        atomic_write_text(self.csv, buf.getvalue())


def epoch_line(r: dict) -> str:
    parts = [f"epoch {r['epoch']:>3}", f"D {r['d_loss']:.4f}"]
    if r.get("g_loss") is not None:
        parts.append(f"G {r['g_loss']:.4f}")
    parts.append(f"train acc {r['train_acc']:.4f}")
    if r.get("val_acc") is not None:
        parts.append(f"val acc {r['val_acc']:.4f}")
    if r.get("test_acc") is not None:
        parts.append(f"test acc {r['test_acc']:.4f} ({r['test_errors']} errors)")
    if r.get("test_acc_raw") is not None:
        parts.append(f"D itself {r['test_acc_raw']:.4f}")
    parts.append(f"{r['epoch_time']:.1f}s, {r['images_per_s']:.0f} img/s")
    return " | ".join(parts)


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides fp32/bf16 speed on x86


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (Linux /proc/cpuinfo, as lscpu shows it), its family and model numbers and
    the vector/bf16 extensions it has, else what platform knows. The numbers and flags matter because
    the machine changes between sessions and a VM may call every AMD chip "AMD EPYC": family 25 model
    1 (Zen 3, AVX2 only) and model 17 (Zen 4, AVX-512 and bf16) differ 2-3x in fp32 and bf16 speed."""
    import platform
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    extra = []
    if "cpu family" in fields and "model" in fields:
        extra.append(f"family {fields['cpu family']} model {fields['model']}")
    flags = set(fields.get("flags", "").split())
    if flags:
        extra.append(", ".join(f for f in ISA_FLAGS if f in flags) or "no AVX2")
    return fields["model name"] + (f" ({'; '.join(extra)})" if extra else "")


def machine(device) -> dict:
    """What a run's figures were measured on: CPU model, device, torch version and threads."""
    import torch
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "device": str(device), "torch": torch.__version__,
           "threads": torch.get_num_threads()}
    if getattr(device, "type", None) == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def write_summary(run_dir: Path, records: list[dict], wall_time: float, dataset: str, n_test: int,
                  cpu_time: float | None = None, machine: dict | None = None) -> dict:
    """summary.json: the last epoch's figures, and those of the best-validation epoch if any."""
    last = records[-1]
    summary = {"dataset": dataset, "epochs": last["epoch"], "n_test": n_test,
               "test_acc": last["test_acc"], "test_errors": last["test_errors"],
               "val_acc": last["val_acc"], "train_time_s": sum(r["epoch_time"] for r in records),
               "wall_time_s_this_session": wall_time, "cpu_time_s_this_session": cpu_time,
               "machine": machine, "images_per_s": sum(r["images_per_s"] for r in records) / len(records)}
    with_val = [r for r in records if r["val_acc"] is not None]
    if with_val:
        best = max(with_val, key=lambda r: r["val_acc"])  # first epoch with the highest val accuracy
        summary["best_val"] = {"epoch": best["epoch"], "val_acc": best["val_acc"], "test_acc": best["test_acc"],
                               "test_errors": best["test_errors"]}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary
