"""End-to-end faults: `ssgan train` as a user runs it, killed, starved of disk, raced, fed bad files.

Each case runs the real console command in a subprocess and prints one line: what was done, what
ssgan must do, what it did, PASS or FAIL. Results go to benchmarks/results/fault_matrix.json.

    python benchmarks/fault_matrix.py [--kills 3] [--out PATH]

The disk-full case mounts a small tmpfs (root only); where that is not permitted it says so and
counts as skipped, not passed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("epoch_time", "images_per_s", "elapsed")
TINY = ["--data", "synthetic", "--image-size", "16", "--batch-size", "20", "--max-steps", "30", "--device", "cpu",
        "--train.sample_every=0", "--train.threads=1"]


def ssgan(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ssgan", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ssgan", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines if line.strip()]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def kill_and_resume(tmp: Path, kills: int, seed: int) -> list[dict]:
    """SIGKILL at a random moment (some during a checkpoint write), resume until done, compare."""
    epochs = "6"
    reference = tmp / "reference"
    assert ssgan("train", *TINY, "--epochs", epochs, "--run-dir", str(reference)).returncode == 0
    rng, rows = random.Random(seed), []
    for k in range(kills):
        run = tmp / f"killed{k}"
        proc = start("train", *TINY, "--epochs", epochs, "--run-dir", str(run))
        delay = rng.uniform(2.0, 6.0)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumes = 0
        while not (run / "summary.json").is_file() and resumes < 5:
            args = ["train", "--resume", str(run)] if (run / "checkpoints" / "last.pt").is_file() else \
                ["train", *TINY, "--epochs", epochs, "--run-dir", str(run)]
            result = ssgan(*args)
            resumes += 1
            if result.returncode != 0:
                break
        same = (run / "metrics.jsonl").is_file() and metrics(run) == metrics(reference)
        leftovers = [p.name for p in run.rglob(".*.tmp")]
        rows.append({"case": f"SIGKILL after {delay:.1f} s, then resume", "expect": "same metrics as uninterrupted, "
                     "no temp files left", "got": f"{resumes} resume(s), metrics {'identical' if same else 'DIFFER'}"
                     f", {len(leftovers)} temp files left", "ok": same and not leftovers})
    return rows


def disk_full(tmp: Path) -> dict:
    mount = tmp / "small_disk"
    mount.mkdir()
    case = {"case": "disk fills during a checkpoint write (30 MB tmpfs)",
            "expect": "exit 2, 'no space left on device', the path, previous checkpoint intact"}
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        return {**case, "got": f"skipped: cannot mount a tmpfs here ({last_line(mounted.stderr)})", "ok": None}
    try:
        run = mount / "run"
        result = ssgan("train", *TINY, "--epochs", "4", "--run-dir", str(run))
        err = last_line(result.stderr)
        intact = False
        if (run / "checkpoints" / "last.pt").is_file():
            import torch
            state = torch.load(run / "checkpoints" / "last.pt", weights_only=True, map_location="cpu")
            intact = state["epoch"] >= 1
        ok = result.returncode == 2 and "no space left on device" in err and "last.pt" in err and intact \
            and "Traceback" not in result.stderr
        return {**case, "got": f"exit {result.returncode}: {err[:160]}; previous checkpoint "
                               f"{'loads' if intact else 'MISSING'}", "ok": ok}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def two_writers(tmp: Path) -> dict:
    run = tmp / "shared_run"
    a = start("train", *TINY, "--epochs", "3", "--run-dir", str(run))
    time.sleep(0.2)
    b = start("train", *TINY, "--epochs", "3", "--run-dir", str(run))
    (_, err_a), (_, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    codes = sorted([a.returncode, b.returncode])
    refusal = last_line(err_a if a.returncode else err_b)
    ok = codes == [0, 2] and "is in use by process" in refusal and len(metrics(run)) == 3
    return {"case": "two `ssgan train` on one --run-dir at once", "expect": "one trains, the other exits 2 naming "
            "the holder", "got": f"exit codes {codes}: {refusal[:150]}", "ok": ok}


def write_folder(root: Path, n_unlabeled: int = 60) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("labeled", 4), ("test", 2)):
        for k, name in enumerate(("a", "b", "c")):
            for i in range(count):
                img = rng.integers(0, 60, (28, 28)).astype(np.uint8)
                img[k * 9:(k + 1) * 9] += 180
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / split / name / f"{i}.png")
    (root / "unlabeled").mkdir(parents=True)
    for i in range(n_unlabeled):
        Image.fromarray(rng.integers(0, 255, (28, 28)).astype(np.uint8)).save(root / "unlabeled" / f"u{i}.png")
    return root


def bad_files(tmp: Path) -> list[dict]:
    rows = []
    folder_args = ["--net", "dcgan28", "--width", "0.125", "--lr", "2e-4", "--epochs", "2", "--max-steps", "3",
                   "--batch-size", "16", "--device", "cpu", "--train.sample_every=0"]
    root = write_folder(tmp / "truncated")
    victim = root / "unlabeled" / "u7.png"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    result = ssgan("train", "--data", f"folder:{root}", "--run-dir", str(tmp / "t1"), *folder_args)
    err = last_line(result.stderr)
    ok = result.returncode == 2 and str(victim) in err and not (tmp / "t1").exists()
    rows.append({"case": "a truncated PNG in unlabeled/", "expect": "exit 2 before training, naming the file; "
                 "nothing written", "got": f"exit {result.returncode}: {err[:150]}", "ok": ok})
    result = ssgan("train", "--data", f"folder:{root}", "--run-dir", str(tmp / "t2"), *folder_args,
                   "--data.skip_bad_files=true")
    listed = (tmp / "t2" / "bad_files.txt").read_text() if (tmp / "t2" / "bad_files.txt").is_file() else ""
    ok = result.returncode == 0 and str(victim) in listed
    rows.append({"case": "the same with --data.skip_bad_files=true", "expect": "trains, the file listed in "
                 "bad_files.txt", "got": f"exit {result.returncode}, listed: {str(victim) in listed}", "ok": ok})
    root = write_folder(tmp / "bomb")
    bomb = root / "unlabeled" / "bomb.png"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    result = ssgan("train", "--data", f"folder:{root}", "--run-dir", str(tmp / "t3"), *folder_args)
    err = last_line(result.stderr)
    ok = result.returncode == 2 and str(bomb) in err and "pixels" in err and "Traceback" not in result.stderr
    rows.append({"case": "a 20000 x 20000 PNG (decompression bomb)", "expect": "exit 2 naming the file and its size",
                 "got": f"exit {result.returncode}: {err[:150]}", "ok": ok})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_matrix.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ssgan-faults-"))
    try:
        rows = kill_and_resume(tmp, args.kills, args.seed) + [disk_full(tmp), two_writers(tmp)] + bad_files(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in rows:
        verdict = "SKIP" if r["ok"] is None else "PASS" if r["ok"] else "FAIL"
        print(f"{verdict}  {r['case']}: {r['got']}")
    sys.path.insert(0, str(ROOT / "src"))
    from ssgan.files import atomic_write_text
    atomic_write_text(args.out, json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    if any(r["ok"] is False for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
