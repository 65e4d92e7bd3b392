"""A/B of small levers on the fm / mlp training step, in turns, each variant in its own process.

Each lever is a variant of the step that `throughput.py` times (`d_step` + `g_step` on fixed
batches). Each variant runs in a fresh child process (the allocator's state carries over within a
process), the variants in turns, round after round, so drift in a shared machine's speed falls on
all of them alike; the table gives each one's median ms per iteration, its ratio to the first
variant, its fraction of the fp32 matmul ceiling measured in the same run, and the page faults per
iteration (getrusage minor faults).

Levers:
- `glibc default` / `memory kept`: glibc's malloc returns freed blocks above its thresholds to the
  OS, so every step maps and zero-fills them again (about 1,500 page faults per step measured on
  the mlp); `ssgan.training.host.keep_freed_memory` raises the thresholds, as training does on the
  CPU.
- `noise: one pass`: the Gaussian-noise layer as `x.add(randn, alpha=sigma)` against training's
  `x + randn * sigma` (two passes).
- `wn: addcmul`: the weight-normalised layer's output as `torch.addcmul(b, y, scale)` against
  training's `y * scale + b`.

Session 17 (one thread, Intel Xeon, two runs): the default allocator was 6% and 4% slower (in 7 and
5 of 7 rounds); the one-pass forms were 0.6-1.8% faster, within the rounds' spread. They were not
adopted: they round differently (fused multiply-add), so no published result would repeat bit for
bit any more.

    python benchmarks/step_levers.py                # prints the table, writes JSON
    python benchmarks/step_levers.py --quick        # a smoke test

Every timing is relative within this one run; compare ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ceilings, make_parts  # noqa: E402

from ssgan.files import atomic_write_text  # noqa: E402
from ssgan.nets import mlp, weightnorm  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402
from ssgan.training import host  # noqa: E402
from ssgan.training.step import d_step, g_step  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "step_levers.json"


def noise_one_pass(self, x):
    if self.training and self.sigma > 0:
        return x.add(torch.randn_like(x), alpha=self.sigma)
    return x


def wn_addcmul(self, x):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return torch.addcmul(self.b.view(shape), self.apply_v(x), (self.g / self.v_norm()).view(shape))


@contextlib.contextmanager
def patched(obj, name, fn):
    saved = getattr(obj, name)
    setattr(obj, name, fn)
    try:
        yield
    finally:
        setattr(obj, name, saved)


VARIANTS = {  # name -> a context that turns one lever to its other form
    "as trained (memory kept)": contextlib.nullcontext,
    "glibc default": contextlib.nullcontext,  # the child skips keep_freed_memory
    "noise: one pass": lambda: patched(mlp.GaussianNoise, "forward", noise_one_pass),
    "wn: addcmul": lambda: patched(weightnorm.WeightNormed, "forward", wn_addcmul),
}


def build_step():
    parts, (x_lab, y_lab, x_unl, x_unl_g) = make_parts("fm", "mlp", 28, 1.0, 100, "none", 3e-3)
    return lambda: d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)


def child(name: str, iters: int) -> None:
    """One variant's timing, in its own process: prints {ms, faults} as JSON."""
    if name != "glibc default":
        host.keep_freed_memory()
    with VARIANTS[name]():
        step = build_step()
        for _ in range(5):
            step()
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        for _ in range(iters):
            step()
        ms = (time.perf_counter() - t0) / iters * 1e3
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / iters
    print(json.dumps({"ms": ms, "faults": faults}))


def run_child(name: str, iters: int, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--iters", str(iters),
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=30, help="timed steps per variant and round")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.iters)
        return
    rounds, iters = (2, 3) if args.quick else (args.rounds, args.iters)
    ceil = ceilings(reps=3 if args.quick else 11)
    fp32 = max(ceil["fp32_mm"], ceil["fp32_onednn"])
    threads = torch.get_num_threads()
    settable = host.keep_freed_memory()  # only reported here: each child sets (or skips) it itself
    print(f"CPU: {cpu_model()}; {threads} threads; glibc thresholds settable: {settable}")
    print(f"ceilings (n=2048 matmul): fp32 torch.mm {ceil['fp32_mm']:.0f}, "
          f"fp32 oneDNN {ceil['fp32_onednn']:.0f} GFLOP/s")
    with FlopCounterMode(display=False) as counter:
        build_step()()
    flops = counter.get_total_flops()
    ms = {k: [] for k in VARIANTS}
    faults = {k: [] for k in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            r = run_child(name, iters, threads)
            ms[name].append(r["ms"])
            faults[name].append(r["faults"])
    base = statistics.median(ms[next(iter(VARIANTS))])
    rows = []
    print(f"{'variant':28s} {'ms/it':>7s} {'vs first':>8s} {'of fp32':>8s} {'faults/it':>9s}")
    for name in VARIANTS:
        med = statistics.median(ms[name])
        row = {"variant": name, "ms_per_iter": med, "ratio_to_first": med / base,
               "fraction_of_fp32_ceiling": flops / (med / 1e3) / 1e9 / fp32,
               "minor_faults_per_iter": statistics.median(faults[name]), "rounds_ms": ms[name]}
        rows.append(row)
        print(f"{name:28s} {med:7.1f} {med / base:8.3f} {100 * row['fraction_of_fp32_ceiling']:7.1f}% "
              f"{row['minor_faults_per_iter']:9.0f}")
    report = {"machine": platform.machine(), "cpu_model": cpu_model(), "threads": threads,
              "torch": torch.__version__, "ceilings_gflops": ceil, "gflop_per_iter": flops / 1e9,
              "rounds": rounds, "iters_per_round": iters, "rows": rows}
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
