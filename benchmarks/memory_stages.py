"""Where a training run's memory goes: resident set size (RSS) after each stage of a run, and the
peak within it, sampled every 5 ms from /proc/self/status (Linux).

Stages: import torch, import ssgan's training loop (torchvision with it), load MNIST at the net's
size, build the run (nets, optimisers, EMA), a few D and G steps, one test-set evaluation. The
pieces are training's own (`load_source`, `build_run`, `d_step`, `g_step`, the loop's `score`).

    python benchmarks/memory_stages.py                        # the recipe: kplus1 + dcgan64, batch 128
    python benchmarks/memory_stages.py --net dcgan32 --size 32 --width 0.5 --batch 100

Prints the CPU model and a table, writes JSON. Needs MNIST ($SSGAN_DATA or --data-root).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class Sampler:
    """The highest RSS seen since the last `mark`, sampled by a background thread."""

    def __init__(self):
        self.peak, self.rows = rss_mb(), []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.005)

    def mark(self, stage: str) -> None:
        time.sleep(0.02)  # one more sample after the stage
        now = rss_mb()
        row = {"stage": stage, "rss_mb": now, "peak_mb": max(self.peak, now)}
        self.rows.append(row)
        print(f"{stage:28s} RSS after {row['rss_mb']:7.0f} MB   peak within {row['peak_mb']:7.0f} MB", flush=True)
        self.peak = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="kplus1")
    parser.add_argument("--net", default="dcgan64")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-root", default=os.environ.get("SSGAN_DATA"))
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/memory_stages_NET.json)")
    args = parser.parse_args()
    s = Sampler()
    import torch
    s.mark("import torch")
    from ssgan.training import loop
    s.mark("import ssgan (torchvision)")
    from ssgan import config as C
    from ssgan.data.sources import load_source
    from ssgan.files import atomic_write_text
    from ssgan.nets import preferred_size
    from ssgan.tracking import cpu_model
    from ssgan.training.run import build_run
    from ssgan.training.run_folder import load_or_draw_split
    from ssgan.training.step import d_step, g_step
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"method.name": args.method, "model.net": args.net, "model.width": args.width,
                 "data.image_size": args.size, "train.batch_size": args.batch, "data.labels": 100}
    if args.data_root:
        overrides["data.root"] = args.data_root
    cfg = C.build(overrides=overrides)
    data = load_source(cfg.data, size_for=lambda c: preferred_size(cfg.model.net, c))
    s.mark(f"load {data.name} at {args.size}x{args.size}")
    split, _ = load_or_draw_split(cfg, data, Path(tempfile.mkdtemp(prefix="ssgan-mem-")))
    run = build_run(cfg, data, split, torch.device("cpu"))
    s.mark("build the run")
    for i in range(args.steps):
        x_lab, y_lab = run.lab.next()
        d_step(run.parts, x_lab, y_lab, run.unl.next() if run.unl else None)
        s.mark(f"D step {i + 1}")
        if run.G is not None:
            g_step(run.parts, run.unl_g.next())
            s.mark(f"G step {i + 1}")
    loop.score(run, data.test.x, data.test.y)
    s.mark("test-set evaluation")
    peak = max(r["peak_mb"] for r in s.rows)
    print(f"CPU {cpu_model()}, {torch.get_num_threads()} thread(s); peak RSS {peak:.0f} MB")
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"memory_stages_{args.net}.json")
    atomic_write_text(out, json.dumps({"cpu": cpu_model(), "threads": torch.get_num_threads(),
                                       "torch": torch.__version__, "args": vars(args), "peak_mb": peak,
                                       "stages": s.rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
