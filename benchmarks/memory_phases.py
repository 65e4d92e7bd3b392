"""Where a real training run's resident memory peaks: `ssgan train` in this process, with its
resident set sampled every 2 ms and each sample put under the phase the loop is in (data and
set-up, D steps, G steps, evaluation, checkpoints, plots, the report). memory_stages.py times
training's pieces called one by one; this runs the loop itself, so what happens between the steps
(the allocator's kept memory, the report's imports) is in it.

    python benchmarks/memory_phases.py --net dcgan32 --steps 20
    python benchmarks/memory_phases.py --net dcgan32 --steps 20 --no-release   # the kept memory not handed back

`--no-release` makes `host.release_freed_memory` (called before evaluation and the report) a no-op,
for an A/B of it. Peaks vary by tens of MB between runs (the allocator's state); compare several.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

NETS = {"dcgan32": ["--model.net", "dcgan32", "--data.image_size", "32", "--model.width", "0.5",
                    "--train.batch_size", "100"],
        "dcgan64": ["--model.net", "dcgan64", "--data.image_size", "64", "--train.batch_size", "128"],
        "mlp": ["--model.net", "mlp", "--method.name", "fm", "--optim.lr", "3e-3"]}
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=sorted(NETS), default="dcgan32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-release", action="store_true")
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    phase, peaks = ["set-up"], {}

    def sample() -> None:
        while True:
            peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss_mb())
            time.sleep(0.002)

    threading.Thread(target=sample, daemon=True).start()
    from ssgan import cli
    from ssgan.training import host, loop
    if args.no_release:
        host.release_freed_memory = lambda: False
    for name, label in (("d_step", "D steps"), ("g_step", "G steps"), ("score", "evaluation"),
                        ("save_checkpoint", "checkpoints"), ("plot_curves", "plots"), ("write_report", "report")):
        def wrapped(*a, _f=getattr(loop, name), _label=label, **k):
            phase[0] = _label
            try:
                return _f(*a, **k)
            finally:
                phase[0] = "between"
        setattr(loop, name, wrapped)
    kplus1 = [] if args.net == "mlp" else ["--method.name", "kplus1", "--optim.lr", "2e-4"]
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["train", *NETS[args.net], *kplus1, "--train.max_steps", str(args.steps), "--train.epochs", "1",
                  "--train.sample_every", "0", "--data.labels", "100", "--run-dir", tempfile.mkdtemp(prefix="ssgan-mp-")])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.net}, {args.steps} steps, release {'off' if args.no_release else 'on'}: peak RSS {peak:.0f} MB")
    for name, mb in peaks.items():
        print(f"  {name:12s} peak within {mb:6.0f} MB")
    if args.out:
        from ssgan.files import atomic_write_text
        atomic_write_text(Path(args.out), json.dumps({"args": vars(args), "peak_mb": peak, "phases": peaks}, indent=1))


if __name__ == "__main__":
    main()
