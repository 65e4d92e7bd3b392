"""A user's small folder at the default settings: does semi-supervised training beat supervised?

The case of issue #14: a folder of 50 labeled images (5 per class), 8,000 unlabeled and a labeled
2,000-image test set, trained with no flags at all (`ssgan train --data folder:X`: net auto, method
fm, the default step budget) against `--method supervised` with everything else the same. The
folder is written from Fashion-MNIST (grayscale clothing, harder than digits) as PNG files, the way
a user's folder looks; the split of the labeled images is the folder's own (all of labeled/).

    python benchmarks/small_folder.py                      # both runs, one after the other
    python benchmarks/small_folder.py --threads 1 --seeds 0,1,2

Prints a table (test accuracy, errors, steps, wall time, CPU model) and writes JSON. Wall times are
only comparable within one run of this script.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "small_folder"
sys.path.insert(0, str(ROOT / "src"))

from ssgan.data.sources import default_root  # noqa: E402
from ssgan.data.standard import load_idx  # noqa: E402
from ssgan.tracking import cpu_model  # noqa: E402


def write_folder(folder: Path, per_class: int, unlabeled: int, test: int, seed: int = 0) -> list[str]:
    """labeled/<class>/*.png (per_class each), unlabeled/*.png, test/<class>/*.png from Fashion-MNIST."""
    data = load_idx("fashion-mnist", default_root(), download=True)
    rng = np.random.default_rng(seed)
    x, y = data.train.x[:, 0].numpy(), data.train.y.numpy()
    order = rng.permutation(len(y))
    labeled = np.concatenate([order[y[order] == k][:per_class] for k in range(len(data.classes))])
    rest = np.setdiff1d(order, labeled, assume_unique=True)
    unl = rng.permutation(rest)[:unlabeled]
    tx, ty = data.test.x[:, 0].numpy(), data.test.y.numpy()
    tsel = rng.permutation(len(ty))[:test]
    names = [c.replace("/", "-").replace(" ", "_") for c in data.classes]
    for i in labeled:
        _png(x[i], folder / "labeled" / names[y[i]] / f"{i:05d}.png")
    for i in unl:
        _png(x[i], folder / "unlabeled" / f"{i:05d}.png")
    for i in tsel:
        _png(tx[i], folder / "test" / names[ty[i]] / f"{i:05d}.png")
    return names


def _png(a: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, mode="L").save(path)


def run(folder: Path, run_dir: Path, extra: list[str], threads: int | None) -> dict:
    cmd = [sys.executable, "-m", "ssgan", "train", "--data", f"folder:{folder}", "--run-dir", str(run_dir),
           *extra]
    if threads:
        cmd.append(f"--train.threads={threads}")
    t0 = time.time()
    log = run_dir.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.time() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-1]
    return {"command": " ".join(["ssgan", *cmd[3:]]), "wall_s": round(wall, 1), "epochs": last["epoch"],
            "steps": last.get("step"), "test_acc": last["test_acc"], "test_errors": last["test_errors"],
            "test_acc_raw": last.get("test_acc_raw"), "by_epoch": [r["test_acc"] for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ssgan_small_folder",
                    help="where the folder and the run folders go (not committed: 40 MB)")
    ap.add_argument("--threads", type=int, default=None, help="--train.threads of each run")
    ap.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1,2 (the folder is the same)")
    ap.add_argument("--methods", default="fm,supervised", help="fm is the default; the others add --method")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    folder = args.work / "folder"
    if not (folder / "test").is_dir():
        write_folder(folder, per_class=5, unlabeled=8000, test=2000)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method in args.methods.split(","):
            extra = [] if method == "fm" else ["--method", method]
            extra += [] if seed == 0 else ["--seed", str(seed)]
            run_dir = args.work / "runs" / f"{method}-s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time, not a resume
            r = {"method": method, "seed": seed, **run(folder, run_dir, extra, args.threads)}
            results.append(r)
            print(f"{method:<11} seed {seed}  test acc {r['test_acc']:.4f} ({r['test_errors']} errors),"
                  f" {r['epochs']} epochs, {r['wall_s']:.0f} s", flush=True)
    report = {"cpu": cpu_model(), "threads": args.threads, "runs": results,
              "folder": "Fashion-MNIST as PNG: 50 labeled (5 per class), 8,000 unlabeled, 2,000 test"}
    args.out.mkdir(parents=True, exist_ok=True)
    for r in results:  # the runs' logs beside the table
        name = f"{r['method']}-s{r['seed']}.log"
        shutil.copy(args.work / "runs" / name, args.out / name)
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"CPU: {report['cpu']}")
    print("| method | seed | test accuracy | errors of 2,000 | epochs | wall s |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['seed']} | {r['test_acc']:.4f} | {r['test_errors']} | {r['epochs']} | "
              f"{r['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
