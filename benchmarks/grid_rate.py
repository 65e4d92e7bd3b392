"""Protocol-grid throughput: runs per hour of one small `ssgan bench` grid with `--jobs 1` (one run
at a time, every core its threads) against `--jobs N` (N runs at once, each pinned to its share of
the cores), in one script run on this machine.

    python benchmarks/grid_rate.py [--jobs 2] [--steps 300] [--seeds 0-1] [--methods fm,supervised]

The grid is the same both ways (MNIST, 100 labels, the mlp pair, `--max-steps` steps of one epoch
per run, no report, no sample grids); wall time covers process start-up, data loading and the test
evaluation, as a real grid's does. Prints the CPU model, a table and the ratio; writes
benchmarks/results/grid_rate.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ssgan.files import atomic_write_text  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402


def grid(jobs: int, args) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"ssgan-grid-j{jobs}-"))
    cmd = [sys.executable, "-m", "ssgan", "bench", "--methods", args.methods, "--labels", "100",
           "--seeds", args.seeds, "--net", "mlp", "--epochs", "1", "--max-steps", str(args.steps),
           "--jobs", str(jobs), "--train.report=false", "--train.sample_every=0", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    runs = json.loads((out / "results.json").read_text())["runs"]
    return {"jobs": jobs, "runs": len(runs), "wall_s": wall, "runs_per_hour": 3600 * len(runs) / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once in the parallel grid")
    ap.add_argument("--steps", type=int, default=300, help="steps per run")
    ap.add_argument("--seeds", default="0-1")
    ap.add_argument("--methods", default="fm,supervised")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grid_rate.json"))
    args = ap.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs")
    rows = [grid(1, args), grid(args.jobs, args)]
    for r in rows:
        print(f"--jobs {r['jobs']}: {r['runs']} runs in {r['wall_s']:6.1f} s = {r['runs_per_hour']:6.1f} runs/hour")
    ratio = rows[1]["runs_per_hour"] / rows[0]["runs_per_hour"]
    print(f"--jobs {args.jobs} against --jobs 1: {ratio:.2f}x the runs per hour")
    atomic_write_text(Path(args.out), json.dumps({"cpu_model": cpu_model(), "cpus": os.cpu_count(),
                                                  "steps_per_run": args.steps, "methods": args.methods,
                                                  "seeds": args.seeds, "rows": rows, "ratio": ratio}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
