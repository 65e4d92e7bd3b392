"""Console lines and metrics files: metrics.jsonl (one JSON record per epoch) and metrics.csv."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from .io import atomic_write_text


def log(msg: str) -> None:
    print(msg, file=sys.stdout, flush=True)


class Metrics:
    """Epoch records, rewritten atomically each epoch so a crash never leaves half a line."""

    def __init__(self, folder: Path):
        self.jsonl, self.csv = folder / "metrics.jsonl", folder / "metrics.csv"
        self.records: list[dict] = []
        if self.jsonl.is_file():
            self.records = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def truncate(self, epochs_done: int) -> None:
        """On resume: drop records of epochs the checkpoint does not include."""
        self.records = [r for r in self.records if r["epoch"] <= epochs_done]
        self._write()

    def add(self, record: dict) -> None:
        self.records.append(record)
        self._write()

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
    parts.append(f"{r['epoch_time']:.1f}s, {r['images_per_s']:.0f} img/s")
    return " | ".join(parts)
