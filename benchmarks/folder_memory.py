"""Peak memory of `ssgan train --data folder:...` as the unlabeled folder grows 10x.

Folder data is read lazily (only the list of paths is resident), so peak memory should stay
nearly flat from 10,000 to 100,000 unlabeled images. For each size N this writes (once, reused
afterwards) a folder of N small 28x28 grayscale PNGs of seven-segment-like digits plus a few
labeled and test images per class, then runs a short training in a fresh subprocess per
measurement and records:

  peak_rss_mb   largest single process (the trainer or one of its DataLoader workers), from
                getrusage(RUSAGE_CHILDREN).ru_maxrss of a fresh measuring process
  tree_pss_mb   peak of the summed PSS of the trainer and its workers, sampled from /proc (shared
                pages split between the processes sharing them, other programs' included)
  tree_heap_mb  the same for anonymous memory only (Pss_Anon: heap, tensors, copy-on-write copies in
                workers), which other programs do not share: the figure that would grow with N
  tree_rss_mb   (JSON only) peak of the summed RSS: pages shared by forked workers counted per process
  wall_s        the whole command (start-up, opening and checking the folder, training, evaluation)
  images_per_s  the trainer's own figure: unlabeled images per second of the epoch

    python benchmarks/folder_memory.py                        # N = 10,000 and 100,000; workers 2 and 0
    python benchmarks/folder_memory.py --sizes 2000 --workers 0 --steps 20   # smoke run

Prints a table and writes benchmarks/results/folder_memory.json. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "folder_memory.json"
CACHE = Path("/tmp/ssgan-folder-bench")
SIDE, LABELED, TEST = 28, 5, 20  # image side; labeled and test images per class
PER_FOLDER = 1000                # unlabeled images per subfolder (unlabeled/000/, unlabeled/001/, ...)

# Seven-segment digits: segments a (top), b (top right), c (bottom right), d (bottom), e (bottom left),
# f (top left), g (middle) as line end points on a unit box.
SEGMENTS = {"a": ((0, 0), (1, 0)), "b": ((1, 0), (1, 0.5)), "c": ((1, 0.5), (1, 1)), "d": ((0, 1), (1, 1)),
            "e": ((0, 0.5), (0, 1)), "f": ((0, 0), (0, 0.5)), "g": ((0, 0.5), (1, 0.5))}
DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]


def digit_image(k: int, rng: np.random.Generator) -> Image.Image:
    """Digit k, drawn with jittered position, size and stroke, on a noisy background."""
    img = Image.fromarray(rng.integers(0, 40, (SIDE, SIDE), dtype=np.uint8), "L")
    draw = ImageDraw.Draw(img)
    w, h = rng.uniform(8, 12), rng.uniform(14, 20)
    x0, y0 = rng.uniform(4, SIDE - 4 - w), rng.uniform(3, SIDE - 3 - h)
    slant = rng.uniform(-0.2, 0.2)
    for s in DIGITS[k]:
        (ax, ay), (bx, by) = SEGMENTS[s]
        pts = [(x0 + ax * w + slant * (1 - ay) * h, y0 + ay * h),
               (x0 + bx * w + slant * (1 - by) * h, y0 + by * h)]
        draw.line(pts, fill=int(rng.integers(180, 256)), width=int(rng.integers(2, 4)))
    return img


def _write_chunk(job: tuple[str, int, int, int]) -> int:
    """Write unlabeled images start..stop-1 (a worker's share), seeded by the chunk."""
    folder, start, stop, seed = job
    rng = np.random.default_rng([seed, start])
    for i in range(start, stop):
        path = Path(folder) / f"{i // PER_FOLDER:03d}" / f"u_{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        digit_image(int(rng.integers(10)), rng).save(path, compress_level=1)
    return stop - start


def make_dataset(n: int, seed: int = 0, processes: int = 2) -> tuple[Path, float]:
    """CACHE/n with labeled/<digit>/, test/<digit>/ and n unlabeled images; reused once complete."""
    root = CACHE / str(n)
    done = root / ".complete"  # hidden: the folder source ignores it
    if done.is_file():
        return root, 0.0
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.time()
    rng = np.random.default_rng(seed)
    for part, count in (("labeled", LABELED), ("test", TEST)):
        for k in range(10):
            for i in range(count):
                path = root / part / str(k) / f"{part[0]}_{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                digit_image(k, rng).save(path, compress_level=1)
    step = 5000
    jobs = [(str(root / "unlabeled"), a, min(a + step, n), seed) for a in range(0, n, step)]
    with Pool(processes) as pool:
        written = sum(pool.imap_unordered(_write_chunk, jobs))
    assert written == n
    done.write_text(f"{n} unlabeled images, seed {seed}\n")
    return root, time.time() - t0


# ----------------------------------------------------------------------------------------- measuring
# Runs the command as its own child and reports that child's peak RSS: a fresh process per
# measurement, since RUSAGE_CHILDREN's maximum never goes down.
MEASURE = r"""
import json, resource, subprocess, sys, time
t0 = time.time()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
print(json.dumps({"rc": p.returncode, "wall_s": time.time() - t0, "output": p.stdout[-3000:],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    return kids


FIELDS = ("Rss", "Pss", "Pss_Anon")


def _tree_memory(pid: int) -> dict[str, int]:
    """Summed Rss, Pss and Pss_Anon in kB of pid's descendants (not pid: the measuring shim)."""
    kids, total = _children(), dict.fromkeys(FIELDS, 0)
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in total:
                    total[key] += int(value.split()[0])
        except OSError:
            pass
    return total


def measure(cmd: list[str], interval: float = 0.2) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, *cmd], stdout=subprocess.PIPE, text=True)
    peak = dict.fromkeys(FIELDS, 0)
    while proc.poll() is None:
        for key, value in _tree_memory(proc.pid).items():
            peak[key] = max(peak[key], value)
        time.sleep(interval)
    result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    result.update(tree_rss_kb=peak["Rss"], tree_pss_kb=peak["Pss"], tree_heap_kb=peak["Pss_Anon"])
    return result


def train_command(data: Path, run_dir: Path, workers: int, steps: int, batch: int) -> list[str]:
    return [sys.executable, "-m", "ssgan", "train", "--data", f"folder:{data}", "--run-dir", str(run_dir),
            "--net", "mlp", "--method", "fm", "--lr", "3e-3", "--labeled-rate", "1", "--epochs", "1",
            "--max-steps", str(steps), "--batch-size", str(batch), "--device", "cpu",
            f"--data.workers={workers}", "--train.sample_every=0"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="unlabeled folder sizes N")
    ap.add_argument("--workers", default="2,0", help="data.workers values to measure")
    ap.add_argument("--steps", type=int, default=200, help="training steps (--max-steps)")
    ap.add_argument("--batch-size", type=int, default=50,
                    help="small enough that the smallest N still gives --steps steps")
    ap.add_argument("--processes", type=int, default=2, help="processes writing the images")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]

    rows = []
    for n in sizes:
        data, gen_s = make_dataset(n, processes=args.processes)
        print(f"N={n}: folder {data} ({f'written in {gen_s:.1f} s' if gen_s else 'reused'})", flush=True)
        for w in workers:
            run_dir = CACHE / "runs" / f"{n}-w{w}"
            shutil.rmtree(run_dir, ignore_errors=True)
            r = measure(train_command(data, run_dir, w, args.steps, args.batch_size))
            if r["rc"] != 0:
                sys.exit(f"training failed (exit {r['rc']}) for N={n}, workers={w}:\n{r['output']}")
            record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
            rows.append({"n_unlabeled": n, "workers": w, "steps": record["step"],
                         "batch_size": args.batch_size,
                         "peak_rss_mb": r["maxrss_kb"] / 1024, "tree_rss_mb": r["tree_rss_kb"] / 1024,
                         "tree_pss_mb": r["tree_pss_kb"] / 1024, "tree_heap_mb": r["tree_heap_kb"] / 1024,
                         "wall_s": r["wall_s"],
                         "epoch_s": record["epoch_time"], "images_per_s": record["images_per_s"],
                         "test_acc": record["test_acc"], "generate_s": gen_s})
            print(f"  workers={w}: peak RSS {rows[-1]['peak_rss_mb']:.0f} MB, wall {r['wall_s']:.1f} s",
                  flush=True)

    header = ["N unlabeled", "workers", "steps", "peak RSS MB", "tree PSS MB", "tree heap MB", "wall s",
              "epoch s", "images/s", "test acc"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(f"| {r['n_unlabeled']:,} | {r['workers']} | {r['steps']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['tree_pss_mb']:.0f} | {r['tree_heap_mb']:.0f} | {r['wall_s']:.1f} | "
                     f"{r['epoch_s']:.1f} | {r['images_per_s']:.0f} | {r['test_acc']:.3f} |")
    lines.append("")
    for w in workers:  # the claim: 10x the images, about the same peak memory
        mine = [r for r in rows if r["workers"] == w]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            lines.append(f"workers={w}: N x{b['n_unlabeled'] / a['n_unlabeled']:g} -> peak RSS "
                         f"x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
                         f"({b['peak_rss_mb'] - a['peak_rss_mb']:+.0f} MB), "
                         f"tree heap x{b['tree_heap_mb'] / a['tree_heap_mb']:.2f} "
                         f"({b['tree_heap_mb'] - a['tree_heap_mb']:+.0f} MB)")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = train_command(Path("DATA"), Path("RUN"), 0, args.steps, args.batch_size)
    out.write_text(json.dumps({"rows": rows, "table": table, "command": command,
                               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                           "python": platform.python_version(), "torch": version("torch")}},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
