"""Peak resident memory (RSS) of real MNIST training runs: throughput.py's real-run child (`ssgan`'s
own `train`, data loading, test-set evaluation) for each MNIST row, alone.

Memory, unlike time, does not depend on what else runs on the machine, so this can be measured
while trainings use the cores (throughput.py needs a quiet machine). To compare code versions, run
it once per version with PYTHONPATH pointing at that version's src/ (the child inherits it):

    python benchmarks/peak_rss.py --out benchmarks/results/peak_rss.json
    PYTHONPATH=/path/to/old/src python benchmarks/peak_rss.py --out /tmp/old.json

The issue's targets (#16): <= 1.0 GB for 28-32 px runs, <= 2.0 GB for the 64x64 recipe.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ROWS, epoch_run  # noqa: E402

import ssgan  # noqa: E402
from ssgan.files import atomic_write_text  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402

TARGET_MB = {28: 1000, 32: 1000, 64: 2000}


def main() -> None:
    mnist_rows = [i for i, r in enumerate(ROWS) if r[8] == 1 and r[9]]  # one channel, channels-last: MNIST runs
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="0,2,4,5", help=f"rows of throughput.py's table (MNIST ones: {mnist_rows})")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (the recipe's take seconds each)")
    parser.add_argument("--data-root", default=os.environ.get("SSGAN_DATA"))
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    rows = [int(i) for i in args.rows.split(",")]
    bad = [i for i in rows if i not in mnist_rows]
    if bad:
        parser.error(f"--rows {bad}: not MNIST rows of throughput.py (those are {mnist_rows})")
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ssgan from {Path(ssgan.__file__).parent}")
    results = []
    for i in rows:
        label, method, net, size, width, batch, amp, lr, _, _ = ROWS[i]
        r = epoch_run(method, net, size, width, batch, amp, lr, args.steps, args.data_root)
        target = TARGET_MB[size]
        results.append({"row": label, "steps": args.steps, "peak_rss_mb": r["peak_rss_mb"], "target_mb": target})
        print(f"{label:40s} peak RSS {r['peak_rss_mb']:6.0f} MB  (target <= {target} MB: "
              f"{'met' if r['peak_rss_mb'] <= target else 'NOT met'})", flush=True)
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"cpu_model": cpu_model(), "torch": torch.__version__,
                                                      "threads": torch.get_num_threads(),
                                                      "ssgan_src": str(Path(ssgan.__file__).parent),
                                                      "rows": results}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
