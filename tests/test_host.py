"""Host-memory settings: with freed memory kept, the training step takes no page faults."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssgan.training import host

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# Salimans et al.'s MNIST step (fm, the mlp, batch 100) 20 times, then the minor page faults of 5
# more, the fewest of three such windows (a fault the kernel takes for its own reasons, such as
# moving pages, lands in one window). By default glibc hands the step's freed buffers back to the OS
# (or trims them off its heap), so every step maps and zero-fills them again.
CHILD = """
import json, resource, sys, torch
sys.path.insert(0, sys.argv[2])
from throughput import make_parts          # the step the benchmarks time, seeded, on fixed batches
from ssgan.training import host
from ssgan.training.step import d_step, g_step
torch.set_num_threads(1)
kept = host.keep_freed_memory() if sys.argv[1] == "keep" else None
parts, (x_lab, y_lab, x_unl, x_unl_g) = make_parts("fm", "mlp", 28, 1.0, 100, "none", 3e-3)
step = lambda: d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)
for _ in range(20):
    step()
windows = []
for _ in range(3):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    windows.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({"kept": kept, "faults": min(windows)}))
"""


def faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(BENCHMARKS)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or host._mallopt() is None, reason="needs glibc's mallopt")
def test_kept_memory_takes_no_page_faults_in_the_training_step():
    default, kept = faults("default"), faults("keep")
    assert kept["kept"] is True
    assert default["faults"] > 5 * 200        # glibc's default: the step's pages mapped again every step
    assert kept["faults"] < default["faults"] / 20


RELEASE = """
import json, os, sys, torch
from ssgan.training import host
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page / 2**20
host.keep_freed_memory()
before = rss()
blocks = [torch.ones(256, 1024) for _ in range(300)]   # 300 blocks of 1 MB, on malloc's heap
del blocks
kept = rss()
released = host.release_freed_memory()
print(json.dumps({"released": released, "grown": kept - before, "after": rss() - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or host._libc("malloc_trim") is None,
                    reason="needs glibc's malloc_trim")
def test_freed_memory_that_was_kept_is_handed_back_on_release():
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["grown"] > 250                  # kept: the freed 300 MB still resident
    assert r["released"] is True and r["after"] < 50


def test_peak_rss_is_the_childs_own_not_its_parents():
    """A child started by a large parent reports its own peak (ru_maxrss carries the parent's across exec)."""
    child = "from ssgan.training import host; print(host.peak_rss_mb())"
    parent = ("import subprocess, sys\n"
              "big = bytearray(1000 * 2**20)\n"
              "big[::4096] = b'x' * len(big[::4096])\n"
              f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True,"
              " check=True).stdout)")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout
    assert float(out.strip()) < 500  # the child imports ssgan (torch would be ~350 MB); the parent holds 1000
    assert 0 < host.peak_rss_mb()


def test_tf_recipe_step_names_the_interpreter_that_failed():
    """--tf-python pointing at a Python without TensorFlow stops with that path and the child's error."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import tf_recipe_step
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exc:
        tf_recipe_step.child(sys.executable, "import no_such_module_for_ssgan", [], {})
    assert sys.executable in str(exc.value) and "no_such_module_for_ssgan" in str(exc.value)
