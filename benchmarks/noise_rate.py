"""How fast the CPU draws the mlp's Gaussian noise, against a matmul of the same layer, at one and
two threads (issue #16: noise was about a tenth of the mlp step). Also what resizing one batch of
MNIST images costs, for the images that stay at their stored size (data.transforms.ResizedImages).

torch draws `normal_` and `uniform_` from one mt19937 stream per generator, so the noise does not
use a second thread where the matmul does. Every figure is a median from this one run, printed
beside the fp32 matmul ceiling measured in the same run and the CPU model.

    python benchmarks/noise_rate.py --out benchmarks/results/noise_rate.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ceilings, median_time  # noqa: E402

from ssgan.data.transforms import resize_uint8  # noqa: E402
from ssgan.files import atomic_write_text  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402

ROWS, COLS = 300, 1000   # the mlp's first hidden layer over a D step's 300 images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=101)
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    x, w = torch.empty(ROWS, COLS), torch.randn(COLS, COLS)
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8)
    result = {"cpu": cpu_model(), "torch": torch.__version__, "threads": {}}
    print(f"CPU: {cpu_model()}; torch {torch.__version__}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        row = {"ceiling_fp32_mm_gflops": ceilings(reps=5)["fp32_mm"],
               "normal_us": median_time(x.normal_, args.reps, 5) * 1e6,
               "uniform_us": median_time(x.uniform_, args.reps, 5) * 1e6,
               "matmul_us": median_time(lambda: x @ w, args.reps, 5) * 1e6,
               "resize_128_to_64_ms": median_time(lambda: resize_uint8(images, 64), 21, 2) * 1e3,
               "resize_128_to_32_ms": median_time(lambda: resize_uint8(images, 32), 21, 2) * 1e3}
        result["threads"][threads] = row
        print(f"{threads} thread(s): fp32 mm ceiling {row['ceiling_fp32_mm_gflops']:.0f} GFLOP/s | "
              f"{ROWS}x{COLS}: normal_ {row['normal_us']:.0f} us, uniform_ {row['uniform_us']:.0f} us, "
              f"matmul by {COLS}x{COLS} {row['matmul_us']:.0f} us | resize 128 images 28->64 "
              f"{row['resize_128_to_64_ms']:.1f} ms, 28->32 {row['resize_128_to_32_ms']:.1f} ms")
    one, two = result["threads"][1], result["threads"][2]
    for key in ("normal_us", "matmul_us"):
        print(f"{key[:-3]}: two threads {one[key] / two[key]:.2f}x as fast as one")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
