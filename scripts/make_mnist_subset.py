"""Write the embedded MNIST subset (package data) from the full IDX files.

6,000 training images (600 per class) and 1,000 test images (100 per class), drawn with a fixed
seed, stored as gzip IDX files under src/ssgan/data/embedded/ (their sha256 is listed in
ssgan/data/standard.py: update it when they change). The demo falls back to them when
the full files are neither found nor downloadable; benchmarks refuse them.

    python scripts/make_mnist_subset.py --data-root DIR   # a folder holding mnist/ with the four full files
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ssgan.data.idx import write_idx_gz
from ssgan.data.standard import load_idx

SUBSET_COUNTS = {"train": 6000, "t10k": 1000}

OUT = Path(__file__).resolve().parents[1] / "src" / "ssgan" / "data" / "embedded"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding mnist/ with the four full IDX files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_idx("mnist", Path(args.data_root), download=False)  # the verified full files
    sets = {"train": data.train, "t10k": data.test}
    rng = np.random.default_rng(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    for part, count in SUBSET_COUNTS.items():
        x, y = sets[part].x[:, 0].numpy(), sets[part].y.numpy()
        per_class = count // 10
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                      for c in range(10)]))
        write_idx_gz(x[idx], OUT / f"mnist-subset-{part}-images-idx3-ubyte.gz")
        write_idx_gz(y[idx].astype(np.uint8), OUT / f"mnist-subset-{part}-labels-idx1-ubyte.gz")
        print(f"{part}: {len(idx)} images, {per_class} per class")


if __name__ == "__main__":
    main()
