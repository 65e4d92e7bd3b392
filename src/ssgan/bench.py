"""`ssgan bench`: the paper protocol. Every method x label count x seed on identical splits.

Each combination is one run folder under OUT/runs/; the split seed is the listed seed, so every
method sees the same labeled images for a given (labels, seed). Finished runs (summary.json
present for the requested epochs) are skipped, unfinished ones resumed, so a long grid can be
stopped and started again. Results: OUT/results.{csv,json,md}, the test errors of the last epoch
(the test set is never used to pick a checkpoint).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import csv
import io
import json
import multiprocessing
import os
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


def cpu_sets(jobs: int) -> list[tuple[list[int], int]]:
    """(CPUs, torch threads) for each of `jobs` simultaneous runs: this process's CPUs dealt out in
    contiguous blocks, one thread per CPU. With more jobs than CPUs every run gets all of them and
    one thread, and the OS balances the runs: pinned round-robin, two runs would share one CPU for
    their whole length while a CPU whose single run ended first stood idle."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if jobs > len(cpus):
        return [(cpus, 1)] * jobs
    per = len(cpus) // jobs
    return [(cpus[i * per:(i + 1) * per], per) for i in range(jobs)]


def _run_one(cfg: C.Config, run_dir: Path, resume: bool, cpus: tuple[list[int], int] | None = None) -> None:
    """One run of the grid, timed (its bench_time.json). With `cpus` (CPUs, threads) it is one of
    several at once, in its own process: pinned to those CPUs where the OS allows, with that many
    torch threads unless --train.threads says, and its log written to OUT/runs/NAME.log rather than
    interleaved with the others'."""
    if cpus is not None:
        cpu_list, threads = cpus
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpu_list)
        cfg.train.threads = cfg.train.threads or threads
    t0, c0 = time.time(), cpu_seconds()
    try:
        if cpus is None:
            train(cfg, run_dir, resume=resume)
        else:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            with open(run_dir.parent / f"{run_dir.name}.log", "a") as f, \
                    contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                train(cfg, run_dir, resume=resume)
    finally:  # an interrupted run's time counts too: its next session adds to it
        add_time(run_dir / "bench_time.json", time.time() - t0, cpu_seconds() - c0)


def run_grid(base: C.Config, methods: list[str], labels: list[int], seeds: list[int], out: Path,
             allow_subset: bool = False, jobs: int = 1) -> list[dict]:
    """Run (or skip, or resume) every combination, `jobs` at a time; returns one row per run."""
    for m in methods:
        if m not in ALGORITHMS:
            raise ConfigError(f"--methods: unknown method '{m}'; valid: {', '.join(ALGORITHMS)}")
    grid = []
    for n_labels in labels:
        for method in methods:
            for seed in seeds:
                cfg = copy.deepcopy(base)
                C.apply(cfg, {"method.name": method, "data.labels": n_labels, "data.split_seed": seed,
                              "train.seed": seed, "data.allow_subset": allow_subset}, source="bench")
                C.validate(cfg)
                grid.append((method, n_labels, seed, cfg, out / "runs" / run_name(method, n_labels, seed)))
    todo = []
    for method, n_labels, seed, cfg, run_dir in grid:
        summary_path = run_dir / "summary.json"
        done = summary_path.is_file() and (cfg.train.epochs is None or  # None: the run's own step budget
                                           json.loads(summary_path.read_text())["epochs"] >= cfg.train.epochs)
        if done:
            log(f"bench: {run_dir.name} finished, skipped")
            continue
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        log(f"bench: {'resuming' if resume else 'running'} {run_dir.name}"
            + (f" (log: {run_dir.parent / (run_dir.name + '.log')})" if jobs > 1 else ""))
        todo.append((cfg, run_dir, resume))
    if jobs <= 1:
        for cfg, run_dir, resume in todo:
            _run_one(cfg, run_dir, resume)
    elif todo:
        _run_parallel(todo, jobs)
    return [_row(method, n_labels, seed, run_dir, allow_subset) for method, n_labels, seed, _, run_dir in grid]


def _run_parallel(todo: list, jobs: int) -> None:
    """`jobs` runs at a time, each in a fresh process (spawned: no state shared with this one) on
    its own block of CPUs; the first failure is raised once the runs under way have finished."""
    sets = cpu_sets(jobs)
    free = list(range(jobs))
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        pending, error = {}, None
        queue = list(todo)
        while queue or pending:
            while queue and free and error is None:
                slot = free.pop(0)
                cfg, run_dir, resume = queue.pop(0)
                pending[pool.submit(_run_one, cfg, run_dir, resume, sets[slot])] = (slot, run_dir)
            if not pending:
                break
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                slot, run_dir = pending.pop(fut)
                free.append(slot)
                if fut.exception() is None:
                    log(f"bench: {run_dir.name} done")
                elif error is None:
                    error = fut.exception()
        if error is not None:
            raise error


def _row(method: str, n_labels: int, seed: int, run_dir: Path, allow_subset: bool) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["dataset"].endswith("-subset") and not allow_subset:
        raise DataError(f"{run_dir} was trained on {summary['dataset']}; benchmarks need the full set")
    timing = json.loads((run_dir / "bench_time.json").read_text())
    return {"method": method, "labels": n_labels, "seed": seed, "epochs": summary["epochs"],
            "test_errors": summary["test_errors"], "test_acc": summary["test_acc"],
            "n_test": summary["n_test"], "train_s": round(summary["train_time_s"], 1),
            "wall_s": round(timing["wall_s"], 1), "cpu_s": round(timing["cpu_s"], 1), "run": str(run_dir)}


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
                    # results.json files written before train_s existed have only the bench clock
                    "train_s_mean": statistics.fmean(r.get("train_s", r["wall_s"]) for r in rs),
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
             "min/run: the training epochs' time, summed over every session of a resumed run (evaluation not "
             "included); results.json also has the bench processes' wall and CPU seconds, which miss a session "
             "killed without warning.", "",
             "| method | " + " | ".join(f"{n} labels" for n in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for m in methods:
        parts = []
        for n in labels:
            a = cell.get((m, n))
            parts.append("" if a is None else
                         f"{a['errors_mean']:.1f} +- {a['errors_std']:.1f} ({a['error_pct_mean']:.2f}%, n={a['n']}, "
                         f"{a['epochs']} ep, {a['train_s_mean'] / 60:.1f} min/run)")
        lines.append(f"| {m} | " + " | ".join(parts) + " |")
    for name, figures in (PUBLISHED.items() if meta.get("dataset") == "mnist" else ()):
        lines.append(f"| {name}, published | " + " | ".join(
            f"{figures[n][0]} +- {figures[n][1]}" if n in figures else "" for n in labels) + " |")
    return "\n".join(lines) + "\n"
