"""Wall time until MNIST-100 test errors first reach <= 200 and <= 100 (fm / mlp).

Trains one run with the given config (default configs/mnist_fm_fast.yaml), evaluating the test set
every epoch for this report only (the configs were not chosen with it), and prints the elapsed
training time at which the test errors first reached each threshold, and the final error count.
Needs the full MNIST files (refuses the embedded subset).

    python benchmarks/time_to_accuracy.py [--config configs/mnist_fm_fast.yaml] [--seeds 0,1,2] [--epochs E]
    python benchmarks/time_to_accuracy.py --from-runs benchmarks/results/fm100/runs/*   # report finished runs

Times: `elapsed_s` is the wall time since the run started (training plus the per-epoch evaluation);
`train_s` counts the training steps only. A resumed run's `elapsed` restarts, so use train_s there.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ssgan import config as C
from ssgan.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def first_reaching(records: list[dict], threshold: int) -> dict | None:
    for r in records:
        if r["test_errors"] <= threshold:
            return {"epoch": r["epoch"], "train_s": sum(x["epoch_time"] for x in records[:r["epoch"]]),
                    "elapsed_s": r["elapsed"]}
    return None


def report(row: dict) -> None:
    fmt = lambda r: f"{r['elapsed_s']:6.0f} s (epoch {r['epoch']})" if r else "   not reached"  # noqa: E731
    print(f"seed {row['seed']}: <=200 errors at {fmt(row['reach_200'])}, <=100 at {fmt(row['reach_100'])}; "
          f"final {row['final_errors']} errors after {row['epochs']} epochs, {row['wall_s']:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "mnist_fm_fast.yaml"))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (split seed = training seed)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--from-runs", nargs="+", default=None, metavar="RUN_DIR",
                        help="report these finished run folders instead of training")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "time_to_accuracy.json"))
    args = parser.parse_args()
    rows = []
    for run in args.from_runs or []:
        run_dir = Path(run)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        row = {"run": str(run_dir), "seed": cfg["train"]["seed"], "epochs": records[-1]["epoch"],
               "final_errors": records[-1]["test_errors"], "wall_s": records[-1]["elapsed"],
               "reach_200": first_reaching(records, 200), "reach_100": first_reaching(records, 100),
               "errors_by_epoch": [r["test_errors"] for r in records]}
        rows.append(row)
        report(row)
    for seed in ([] if args.from_runs else [int(s) for s in args.seeds.split(",")]):
        overrides = {"train.seed": seed, "data.split_seed": seed, "data.allow_subset": False, "train.sample_every": 0}
        if args.epochs:
            overrides["train.epochs"] = args.epochs
        cfg = C.build([args.config], overrides)
        run_dir = Path(tempfile.mkdtemp(prefix="ssgan-tta-"))
        t0 = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            summary = train(cfg, run_dir)
        wall = time.time() - t0
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        row = {"seed": seed, "epochs": summary["epochs"], "final_errors": summary["test_errors"],
               "wall_s": wall, "reach_200": first_reaching(records, 200), "reach_100": first_reaching(records, 100),
               "errors_by_epoch": [r["test_errors"] for r in records]}
        rows.append(row)
        report(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finals = [r["final_errors"] for r in rows]
    print(f"final errors mean {statistics.fmean(finals):.1f}"
          + (f" +- {statistics.stdev(finals):.1f}" if len(finals) > 1 else "") + f"; peak RSS {peak:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"config": str(args.config), "command": " ".join(sys.argv),
                                          "runs": rows, "peak_rss_mb": peak}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
