"""Does torch.compile speed up the fm / mlp training step on this CPU? An A/B in one process.

Two identical step setups (batch 100, fp32); in one, D is wrapped in torch.compile (static shapes).
After compilation the two steps alternate, so machine noise hits both alike; prints the median ms
per iteration of each and their ratio, and writes JSON.

Inductor draws D's Gaussian noise with its own generator: the generated C++ calls `randn_cpu` (Philox)
once per element, even inside its vectorised loops, and that made the compiled step about 2x slower
than eager here. `--fallback-random` makes it call torch's own `randn` (the eager step's generator).

    python benchmarks/compile_ab.py [--threads 1] [--iters 60] [--fallback-random]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_parts  # noqa: E402  (the benchmark's own step setup)

from ssgan.files import atomic_write_text  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402
from ssgan.training.step import d_step, g_step  # noqa: E402


def train_step(parts, x_lab, y_lab, x_unl, x_unl_g):
    return d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--fallback-random", action="store_true",
                        help="compile with torch._inductor.config.fallback_random (torch's own RNG ops)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "compile_ab.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fallback_random:
        import torch._inductor.config as inductor_config
        inductor_config.fallback_random = True
    eager, batches = make_parts("fm", "mlp", 28, 1.0, 100, "none", 3e-3)
    compiled, _ = make_parts("fm", "mlp", 28, 1.0, 100, "none", 3e-3, compile_d=True)
    t0 = time.perf_counter()
    for _ in range(3):
        train_step(compiled, *batches)
    compile_s = time.perf_counter() - t0
    times = {"eager": [], "compiled": []}
    for _ in range(args.iters):
        for name, parts in (("eager", eager), ("compiled", compiled)):
            t = time.perf_counter()
            train_step(parts, *batches)
            times[name].append(time.perf_counter() - t)
    ms = {k: statistics.median(v[10:]) * 1e3 for k, v in times.items()}
    print(f"cpu {cpu_model()}; fallback_random {args.fallback_random}")
    print(f"threads {args.threads}: compile + 3 steps {compile_s:.1f} s; eager {ms['eager']:.1f} ms/it, "
          f"compiled {ms['compiled']:.1f} ms/it, eager/compiled {ms['eager'] / ms['compiled']:.2f}")
    atomic_write_text(Path(args.out), json.dumps({"threads": args.threads, "torch": torch.__version__,
                                                  "cpu": cpu_model(), "fallback_random": args.fallback_random,
                                                  "compile_s": compile_s, "ms_per_iter": ms}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
