"""Test errors per epoch of `ssgan bench` folders, side by side: a table, JSON and a plot.

For issue #15's figures: for each folder (one method/config, several seeds) it reads every run's
metrics.jsonl and gives the mean and spread of the test errors at each epoch (EMA of D, and D
itself where logged), the first epoch at which each seed reached <= 200 and <= 100 errors, and
the final errors. The test set was only reported by these runs; nothing here chooses settings.

    python benchmarks/epoch_curves.py fm=benchmarks/results/fm100_30min_alone \\
        fm_g0=benchmarks/results/fm100_g0 --out benchmarks/results/epoch_curves_fm100_72ep
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ssgan.files import atomic_write_text

THRESHOLDS = (200, 100)  # issue #15's MNIST figures; --thresholds for other data (CIFAR-10: 4000, 3500)


def metrics_files(folder: Path) -> list[Path]:
    """A bench folder's per-run metrics: OUT/NAME.metrics.jsonl (copies of the runs' own files, kept
    in git, where OUT/runs/ is not) or else OUT/runs/NAME/metrics.jsonl (runs still on this disk)."""
    done = sorted(folder.glob("*.metrics.jsonl"))
    if done:
        return done
    return sorted(folder.glob("runs/*/metrics.jsonl"))


def read_run(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_epoch = {r["epoch"]: r for r in rows if r.get("test_errors") is not None}   # a resumed run repeats none
    return [by_epoch[e] for e in sorted(by_epoch)]


def first_epoch(errors: list[int], threshold: int) -> int | None:
    return next((i + 1 for i, e in enumerate(errors) if e <= threshold), None)


def summarise(name: str, folder: Path, thresholds=THRESHOLDS) -> dict:
    runs = {}
    for path in metrics_files(folder):
        rows = read_run(path)
        run = path.name.split(".")[0] if path.name != "metrics.jsonl" else path.parent.name
        runs[run] = {
            "test_errors": [r["test_errors"] for r in rows],
            "test_errors_raw": [r.get("test_errors_raw") for r in rows],
            "train_s": sum(r.get("epoch_time", 0.0) for r in rows),
        }
    if not runs:
        raise SystemExit(f"epoch_curves: no metrics.jsonl in {folder}")
    epochs = min(len(r["test_errors"]) for r in runs.values())        # epochs every seed has reached
    mean, std = [], []
    for e in range(epochs):
        vals = [r["test_errors"][e] for r in runs.values()]
        mean.append(statistics.mean(vals))
        std.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
    for r in runs.values():
        r["final"] = r["test_errors"][-1]
        for t in thresholds:
            r[f"first_le_{t}"] = first_epoch(r["test_errors"], t)
            raw = [v for v in r["test_errors_raw"] if v is not None]
            r[f"first_le_{t}_raw"] = first_epoch(raw, t) if len(raw) == len(r["test_errors"]) else None
    return {"name": name, "folder": str(folder), "seeds": len(runs), "epochs": epochs, "mean": mean, "std": std,
            "thresholds": list(thresholds), "runs": runs}


def markdown(curves: list[dict]) -> str:
    lines = ["Test errors out of 10,000 by epoch (EMA of D), mean +- std over the seeds each folder holds.", ""]
    lines += ["| epoch | " + " | ".join(f"{c['name']} (n={c['seeds']})" for c in curves) + " |",
              "|---|" + "---|" * len(curves)]
    for e in range(max(c["epochs"] for c in curves)):
        cells = [f"{c['mean'][e]:.1f} +- {c['std'][e]:.1f}" if e < c["epochs"] else "" for c in curves]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    ts = curves[0]["thresholds"]
    at_or_below = " and ".join(f"<= {t}" for t in ts)
    lines += ["", f"Per seed: final errors, first epoch with {at_or_below} errors (EMA of D; D itself in brackets "
              "where logged; - : not within the run), training time.", "",
              "| folder | run | final | " + " | ".join(f"<= {t}" for t in ts) + " | train min |",
              "|---|---|---|" + "---|" * len(ts) + "---|"]

    def at(r, t):
        ema = r[f"first_le_{t}"]
        raw = r[f"first_le_{t}_raw"]
        return (str(ema) if ema else "-") + (f" ({raw})" if raw else "")

    for c in curves:
        for run, r in sorted(c["runs"].items()):
            lines.append(f"| {c['name']} | {run} | {r['final']} | " + " | ".join(at(r, t) for t in ts) +
                         f" | {r['train_s'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def plot(curves: list[dict], path: Path, ylabel: str = "MNIST test errors") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c in curves:
        xs = range(1, c["epochs"] + 1)
        ax.plot(xs, c["mean"], label=f"{c['name']} (mean of {c['seeds']})")
        lo = [m - s for m, s in zip(c["mean"], c["std"])]
        hi = [m + s for m, s in zip(c["mean"], c["std"])]
        ax.fill_between(xs, lo, hi, alpha=0.2)
    for t in curves[0]["thresholds"]:
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{ylabel} (EMA of D, log scale)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="NAME=PATH of an ssgan bench folder")
    ap.add_argument("--out", type=Path, required=True, help="folder for curves.md, curves.json, curves.png")
    ap.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)),
                    help="errors for the first-epoch-at-or-below columns, comma-separated")
    ap.add_argument("--ylabel", default="MNIST test errors", help="the plot's y axis")
    args = ap.parse_args(argv)
    try:
        thresholds = tuple(int(t) for t in args.thresholds.split(","))
    except ValueError:
        raise SystemExit(f"epoch_curves: --thresholds '{args.thresholds}' is not a comma-separated list of integers")
    curves = []
    for spec in args.folders:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"epoch_curves: '{spec}' is not NAME=PATH")
        curves.append(summarise(name, Path(path), thresholds))
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(curves)
    atomic_write_text(args.out / "curves.md", md)
    atomic_write_text(args.out / "curves.json", json.dumps(curves, indent=1) + "\n")
    plot(curves, args.out / "curves.png", args.ylabel)
    print(md)


if __name__ == "__main__":
    main()
