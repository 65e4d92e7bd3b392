"""`ssgan bench`: the paper protocol. Every method x label count x seed on identical splits.

Each combination is one run folder under OUT/runs/; the split seed is the listed seed, so every
method sees the same labeled images for a given (labels, seed). Finished runs (summary.json
present for the requested epochs) are skipped, unfinished ones resumed, so a long grid can be
stopped and started again. Results: OUT/results.{csv,json,md}, the test errors of the last epoch
(the test set is never used to pick a checkpoint).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import resource
import statistics
import time
from pathlib import Path

from . import config as C
from .algorithms import ALGORITHMS
from .errors import ConfigError, DataError
from .files import atomic_write_text
from .tracking import log
from .training.loop import train

# Published MNIST test errors (out of 10,000), mean +- std, for the README table.
PUBLISHED = {
    "Salimans et al. 2016 (FM)": {20: (1677, 452), 50: (221, 136), 100: (93, 6.5), 200: (90, 4.2)},
}


def parse_int_list(text: str, flag: str) -> list[int]:
    """'0-4' -> [0..4]; '20,50,100' -> [20, 50, 100]."""
    out = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-")
                out += list(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected integers like 0-4 or 20,50,100") from None
    if not out:
        raise ConfigError(f"{flag} is empty")
    return out


def run_name(method: str, labels: int, seed: int) -> str:
    return f"{method}-L{labels}-s{seed}"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def add_time(path: Path, wall_s: float, cpu_s: float) -> None:
    old = json.loads(path.read_text()) if path.is_file() else {"wall_s": 0.0, "cpu_s": 0.0, "sessions": 0}
    atomic_write_text(path, json.dumps({"wall_s": old["wall_s"] + wall_s, "cpu_s": old["cpu_s"] + cpu_s,
                                        "sessions": old.get("sessions", 0) + 1}))


def run_grid(base: C.Config, methods: list[str], labels: list[int], seeds: list[int], out: Path,
             allow_subset: bool = False) -> list[dict]:
    """Run (or skip, or resume) every combination; returns one row per run."""
    for m in methods:
        if m not in ALGORITHMS:
            raise ConfigError(f"--methods: unknown method '{m}'; valid: {', '.join(ALGORITHMS)}")
    rows = []
    for n_labels in labels:
        for method in methods:
            for seed in seeds:
                cfg = copy.deepcopy(base)
                C.apply(cfg, {"method.name": method, "data.labels": n_labels, "data.split_seed": seed,
                              "train.seed": seed, "data.allow_subset": allow_subset}, source="bench")
                C.validate(cfg)
                run_dir = out / "runs" / run_name(method, n_labels, seed)
                summary_path = run_dir / "summary.json"
                done = summary_path.is_file() and (cfg.train.epochs is None or  # None: the run's own step budget
                                                   json.loads(summary_path.read_text())["epochs"] >= cfg.train.epochs)
                if not done:
                    resume = (run_dir / "checkpoints" / "last.pt").is_file()
                    log(f"bench: {'resuming' if resume else 'running'} {run_dir.name}")
                    t0, c0 = time.time(), cpu_seconds()
                    try:
                        train(cfg, run_dir, resume=resume)
                    finally:  # an interrupted run's time counts too: its next session adds to it
                        add_time(run_dir / "bench_time.json", time.time() - t0, cpu_seconds() - c0)
                else:
                    log(f"bench: {run_dir.name} finished, skipped")
                summary = json.loads(summary_path.read_text())
                if summary["dataset"].endswith("-subset") and not allow_subset:
                    raise DataError(f"{run_dir} was trained on {summary['dataset']}; benchmarks need the full set")
                timing = json.loads((run_dir / "bench_time.json").read_text())
                rows.append({"method": method, "labels": n_labels, "seed": seed, "epochs": summary["epochs"],
                             "test_errors": summary["test_errors"], "test_acc": summary["test_acc"],
                             "n_test": summary["n_test"], "wall_s": round(timing["wall_s"], 1),
                             "cpu_s": round(timing["cpu_s"], 1), "run": str(run_dir)})
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean +- sample std of test errors per (method, labels)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["labels"]), []).append(r)
    out = []
    for (method, labels), rs in groups.items():
        errs = [r["test_errors"] for r in rs]
        n_test = rs[0]["n_test"] or 10000
        out.append({"method": method, "labels": labels, "seeds": [r["seed"] for r in rs], "n": len(rs),
                    "errors_mean": statistics.fmean(errs), "errors_std": statistics.stdev(errs) if len(errs) > 1 else 0.0,
                    "error_pct_mean": 100 * statistics.fmean(errs) / n_test, "n_test": n_test,
                    "wall_s_mean": statistics.fmean(r["wall_s"] for r in rs), "epochs": rs[0]["epochs"]})
    return out


def write_results(rows: list[dict], out: Path, meta: dict) -> None:
    agg = aggregate(rows)
    atomic_write_text(out / "results.json", json.dumps({"meta": meta, "runs": rows, "summary": agg}, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", markdown_table(agg, meta))


def markdown_table(agg: list[dict], meta: dict) -> str:
    labels = sorted({a["labels"] for a in agg})
    methods = list(dict.fromkeys(a["method"] for a in agg))
    cell = {(a["method"], a["labels"]): a for a in agg}
    n_test = agg[0]["n_test"] if agg else 0
    lines = [f"Test errors out of {n_test:,} (mean +- std over seeds; last epoch, EMA D if enabled). "
             f"{meta.get('budget', '')}", "",
             "| method | " + " | ".join(f"{n} labels" for n in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for m in methods:
        parts = []
        for n in labels:
            a = cell.get((m, n))
            parts.append("" if a is None else
                         f"{a['errors_mean']:.1f} +- {a['errors_std']:.1f} ({a['error_pct_mean']:.2f}%, n={a['n']}, "
                         f"{a['epochs']} ep, {a['wall_s_mean'] / 60:.1f} min/run)")
        lines.append(f"| {m} | " + " | ".join(parts) + " |")
    for name, figures in (PUBLISHED.items() if meta.get("dataset") == "mnist" else ()):
        lines.append(f"| {name}, published | " + " | ".join(
            f"{figures[n][0]} +- {figures[n][1]}" if n in figures else "" for n in labels) + " |")
    return "\n".join(lines) + "\n"
