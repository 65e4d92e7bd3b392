"""The MNIST table of the README: every `ssgan bench` result folder, side by side with the published figures.

Each row is one label count at one per-run budget (one bench folder), so every method in a row had
the same budget, splits and seeds; the budget is read from the folder's results.json (epochs, batch
size, threads per run, mean training time), never written by hand. The time is `train_s`, the sum of
the run's epoch times: it survives a run resumed across sessions, where the bench clock (`wall_s`)
misses whatever a session's end cut off. Rows from shortened budgets are
marked as such: only the paper's 300 epochs are the full protocol.

    python benchmarks/paper_table.py        # the README's folders; prints the table, writes .md and .json
    python benchmarks/paper_table.py --source benchmarks/results/short_grid --out /tmp/table
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssgan.bench import PUBLISHED, aggregate
from ssgan.files import atomic_write_text
from ssgan.nets import choose_net
from ssgan.training.run import decay_span

RESULTS = Path(__file__).resolve().parent / "results"
# Most-trained first: the README's rows, in this order within each label count.
DEFAULT_SOURCES = ["fm100_300ep", "fm100_30min_alone", "badgan100_72ep", "badgan100_ema9999", "badgan100_g2_ema9999",
                   "badgan100_g4_ema9999", "badgan100_g2_ent03",
                   "mnist_kplus1_dcgan_ent33_bf16", "fm100_30min", "fm100", "short_grid"]
# Column order; a table shows only the methods some row has.
METHODS = ["fm", "badgan", "ct", "kplus1", "supervised"]
PAPER_EPOCHS = 300


def load(folder: Path) -> dict:
    path = folder / "results.json"
    if not path.is_file():
        raise SystemExit(f"paper_table: {path} not found (run `ssgan bench ... --out {folder}` first)")
    try:
        data = json.loads(path.read_text())
        return {"name": folder.name, "config": data["meta"]["config"], "summary": aggregate(data["runs"]),
                "cpu_s": sum(r["cpu_s"] for r in data["runs"]), "n_runs": len(data["runs"])}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SystemExit(f"paper_table: {path} is not a results.json of `ssgan bench` ({type(e).__name__}: {e}); "
                         "rerun the bench command to rewrite it") from None


def budget(source: dict, cell: dict) -> str:
    """Epochs, batch and threads; then, where the folder's config records them, the net (and its
    width), G's own Adam beta1 and steps, the entropy term, the rate schedule, an EMA decay other than 0.999 and bf16:
    rows of one label count differ in these too."""
    c = source["config"]
    t = c["train"]
    parts = [f"{cell['epochs']} ep", f"batch {t['batch_size']}"]
    if t.get("threads"):
        parts.append(f"{t['threads']} thread{'s' if t['threads'] != 1 else ''}")
    model, optim = c.get("model", {}), c.get("optim", {})
    net = model.get("net")
    if net == "auto":
        net = choose_net(channels=1, image_size=28)         # as training resolves it: the table is MNIST's
    if net is not None:
        width = model.get("width", 1.0)
        parts.append(net + (f" w{width:g}" if width != 1.0 else ""))
    if optim.get("g_beta1") is not None:
        parts.append(f"G's Adam beta1 {optim['g_beta1']:g}")
    if optim.get("g_steps", 1) != 1:
        parts.append(f"{optim['g_steps']} G steps per D step")
    method = c.get("method", {})
    if method.get("entropy_weight", 0) > 0:                       # a loss term, but rows differ by it too
        start = method.get("entropy_from_epoch", 1)
        parts.append(f"entropy term {method['entropy_weight']:g}" + (f" from epoch {start}" if start > 1 else ""))
    if optim.get("decay") == "linear":
        n = decay_span(optim["decay_epochs"], cell["epochs"])      # as training counts it
        parts.append(f"rate decayed over the last {n}" if n < cell["epochs"] else f"rate decayed over all {n}")
    elif optim.get("decay") == "none":
        parts.append("constant rate")
    if "ema" in t and t["ema"] != 0.999:                          # the evaluated average, where not the default
        parts.append("D itself (no EMA)" if t["ema"] is None else f"EMA {t['ema']:g}")
    if t.get("amp") == "bf16":
        parts.append("bf16")
    return ", ".join(parts)


def build_rows(sources: list[dict]) -> list[dict]:
    rows = []
    for labels in sorted({a["labels"] for s in sources for a in s["summary"]}):
        for s in sources:
            cells = {a["method"]: a for a in s["summary"] if a["labels"] == labels}
            if not cells:
                continue
            first = next(iter(cells.values()))
            rows.append({"labels": labels, "source": s["name"], "budget": budget(s, first),
                         "full_protocol": first["epochs"] >= PAPER_EPOCHS,
                         "cells": {m: {k: cells[m][k] for k in ("errors_mean", "errors_std", "n", "seeds",
                                                                 "train_s_mean", "epochs")}
                                   for m in METHODS if m in cells}})
    return rows


def cpu_lines(sources: list[dict]) -> list[str]:
    """What the table cost: CPU time summed over every run of every folder (bench_time.json)."""
    lines = [f"- {s['name']}: {s['n_runs']} run{'s' if s['n_runs'] != 1 else ''}, {s['cpu_s'] / 3600:.2f} CPU-hours"
             for s in sources]
    return lines + [f"- total: {sum(s['cpu_s'] for s in sources) / 3600:.2f} CPU-hours"]


def cell_text(c: dict) -> str:
    """Mean +- std over seeds; one seed has no spread to show, so its cell gives the figure alone."""
    spread = f" +- {c['errors_std']:.1f}" if c["n"] > 1 else ""
    return f"{c['errors_mean']:.1f}{spread} (n={c['n']}, {c['train_s_mean'] / 60:.1f} min)"


def markdown(rows: list[dict]) -> str:
    paper = next(iter(PUBLISHED.items()))
    methods = [m for m in METHODS if any(m in r["cells"] for r in rows)]
    lines = ["MNIST test errors out of 10,000 (mean +- std over split seeds, last epoch, EMA D where the "
             "config has it; n = seeds; min = mean training time per run, the sum of its epoch times). "
             f"Rows marked *short* are not the paper's {PAPER_EPOCHS}-epoch protocol.", "",
             "| labels | budget per run (folder) | " + " | ".join(f"`{m}`" for m in methods)
             + f" | {paper[0]}, published |",
             "|---|---|" + "---|" * (len(methods) + 1)]
    for r in rows:
        cells = []
        for m in methods:
            c = r["cells"].get(m)
            cells.append("" if c is None else cell_text(c))
        pub = paper[1].get(r["labels"])
        mark = "" if r["full_protocol"] else " *short*"
        lines.append(f"| {r['labels']} | {r['budget']}{mark} ({r['source']}) | " + " | ".join(cells)
                     + f" | {f'{pub[0]} +- {pub[1]}' if pub else ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", help="a bench --out folder (repeatable; default: the README's)")
    parser.add_argument("--out", default=str(RESULTS / "mnist_table"), help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    folders = [Path(s) for s in args.source] if args.source else [RESULTS / s for s in DEFAULT_SOURCES]
    sources = [load(f) for f in folders]
    rows = build_rows(sources)
    text = markdown(rows) + "\nCPU time of these runs:\n" + "\n".join(cpu_lines(sources)) + "\n"
    print(text)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_text(out.with_suffix(".json"), json.dumps({"rows": rows, "cpu_s": {
        s["name"]: s["cpu_s"] for s in sources}, "published": {
        name: {str(k): v for k, v in figs.items()} for name, figs in PUBLISHED.items()}}, indent=1))
    print(f"wrote {out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
