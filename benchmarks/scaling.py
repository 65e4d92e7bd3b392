"""Images/s of one process against N processes (torchrun, gloo on the CPU) at the same global batch.

    python benchmarks/scaling.py [--steps 150] [--procs 2]

One process uses every core as threads; N processes use one thread each (torchrun's default) and
each takes 1/N of every global batch. fm / mlp on MNIST, 100 labels. Prints a table and writes
benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(nproc: int, steps: int, global_batch: int) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix="ssgan-scale-")) / "run"
    args = ["train", "--config", str(ROOT / "configs" / "mnist_fm.yaml"), "--run-dir", str(run_dir),
            "--epochs", "1", "--max-steps", str(steps), "--train.sample_every=0",
            "--batch-size", str(global_batch // nproc), "--data.allow_subset=false"]
    env = dict(os.environ)
    if nproc == 1:
        cmd = [sys.executable, "-m", "ssgan", *args]
    else:
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "ssgan", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    rec = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return {"processes": nproc, "global_batch": global_batch, "steps": steps,
            "images_per_s": rec["images_per_s"], "epoch_time_s": rec["epoch_time"], "d_loss": rec["d_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling.json"))
    args = parser.parse_args()
    rows = [run(1, args.steps, 100), run(args.procs, args.steps, 100)]
    for r in rows:
        print(f"{r['processes']} process(es), global batch {r['global_batch']}: {r['images_per_s']:7.0f} images/s "
              f"({r['steps']} steps in {r['epoch_time_s']:.1f} s)")
    print(f"speed-up of {args.procs} processes: {rows[1]['images_per_s'] / rows[0]['images_per_s']:.2f}x "
          f"on {os.cpu_count()} cores")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
