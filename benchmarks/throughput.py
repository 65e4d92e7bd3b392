"""Training-step throughput of ssgan on this machine, against its measured matmul ceilings.

For each method/network/precision: FLOPs per training iteration (torch.utils.flop_counter, one
D step + one G step as `ssgan.training.step.d_step` and `g_step` run them), median time per iteration after
warm-up (compute only, fixed batches), achieved GFLOP/s and its fraction of the ceiling for the
precision (fp32: oneDNN's, the machine's real fp32 ceiling; bf16: torch.mm bf16), images/s, the
epoch time including data (a real `ssgan train` of a few hundred steps, extrapolated to the full
epoch) and peak RSS of that run. Also the MLP epoch of the "plain path" (per-sample DataLoader,
eager fp32, `.item()` per step) side by side with ssgan's, in the same process.

    python benchmarks/throughput.py                 # all rows; prints a table, writes JSON
    python benchmarks/throughput.py --quick         # fewer iterations (smoke test)

bf16 is timed only where this CPU runs it natively: a start-up probe (`--amp auto`'s, a fraction of
a second) compares a small bf16 matmul and conv with fp32, and on a CPU that emulates bf16 (many
times slower: an AMD Zen 3 ran the bf16 rows for hours) the bf16 ceilings, rows and epoch path are
skipped, and the output says so.

Every timing is relative within this one run; compare ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssgan import config as C
from ssgan.algorithms import build_algorithm
from ssgan.nets import build_nets, settle, to_layout
from ssgan.files import atomic_write_text
from ssgan.tracking import cpu_model
from ssgan.training import host
from ssgan.training.precision import probe_bf16
from ssgan.training.step import StepParts, d_step, g_step, make_step_parts

BF16_FLOOR = 0.25  # bf16 at under a quarter of fp32's speed is emulated: skip it (AMX-less Intel: ~0.5)
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput.json"

ROWS = [  # (label, method, net, image size, width, batch, amp, lr, channels, channels-last layout)
    ("fm / mlp fp32", "fm", "mlp", 28, 1.0, 100, "none", 3e-3, 1, True),
    ("fm / mlp bf16", "fm", "mlp", 28, 1.0, 100, "bf16", 3e-3, 1, True),
    ("kplus1 / dcgan28 w0.25 fp32", "kplus1", "dcgan28", 28, 0.25, 100, "none", 2e-4, 1, True),
    ("kplus1 / dcgan28 w0.25 bf16", "kplus1", "dcgan28", 28, 0.25, 100, "bf16", 2e-4, 1, True),
    ("kplus1 / dcgan32 w0.5 fp32", "kplus1", "dcgan32", 32, 0.5, 100, "none", 2e-4, 1, True),
    ("kplus1 / dcgan64 w1 fp32 (recipe)", "kplus1", "dcgan64", 64, 1.0, 128, "none", 2e-4, 1, True),
    ("kplus1 / dcgan64 w1 bf16 (recipe)", "kplus1", "dcgan64", 64, 1.0, 128, "bf16", 2e-4, 1, True),
    ("fm / cnn32 w0.25 fp32 (colour)", "fm", "cnn32", 32, 0.25, 100, "none", 3e-4, 3, True),
    ("fm / cnn32 w0.5 fp32 (colour)", "fm", "cnn32", 32, 0.5, 100, "none", 3e-4, 3, True),
    ("fm / cnn32 w1 fp32 (colour, paper)", "fm", "cnn32", 32, 1.0, 100, "none", 3e-4, 3, True),
    ("fm / cnn32 w0.5 bf16 (colour)", "fm", "cnn32", 32, 0.5, 100, "bf16", 3e-4, 3, True),
    ("fm / cnn32 w1 bf16 (colour, paper)", "fm", "cnn32", 32, 1.0, 100, "bf16", 3e-4, 3, True),
    ("kplus1 / dcgan28 w0.5 fp32", "kplus1", "dcgan28", 28, 0.5, 100, "none", 2e-4, 1, True),
    ("kplus1 / dcgan28 w0.5 bf16", "kplus1", "dcgan28", 28, 0.5, 100, "bf16", 2e-4, 1, True),
    ("fm / cnn32 w0.25 fp32, plain layout", "fm", "cnn32", 32, 0.25, 100, "none", 3e-4, 3, False),
    ("kplus1 / dcgan28 w0.25 fp32, plain layout", "kplus1", "dcgan28", 28, 0.25, 100, "none", 2e-4, 1, False),
    ("kplus1 / dcgan64 w1 fp32 (recipe), plain layout", "kplus1", "dcgan64", 64, 1.0, 128, "none", 2e-4, 1, False),
]


def median_time(fn, n: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bf16_check() -> tuple[bool, str]:
    """(time bf16?, a line saying why), from the same probe `--amp auto` runs."""
    speedups = probe_bf16(torch.device("cpu"))
    shown = ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
    if min(speedups.values()) >= BF16_FLOOR:
        return True, f"bf16 probe: {shown} of fp32's speed; bf16 rows timed"
    return False, (f"bf16 probe: {shown} of fp32's speed (emulated, below {BF16_FLOOR}x); "
                   "bf16 ceilings, rows and epoch path skipped")


def ceilings(n: int = 2048, reps: int = 11, bf16: bool = True) -> dict:
    """GFLOP/s of an n x n matmul: fp32 torch.mm (MKL), fp32 through oneDNN, bf16 torch.mm (None
    where bf16 is not timed)."""
    import torch.utils.mkldnn as mkldnn
    a, b = torch.randn(n, n), torch.randn(n, n)
    flops = 2 * n ** 3
    out = {"fp32_mm": flops / median_time(lambda: a @ b, reps, 2) / 1e9}
    lin = mkldnn.to_mkldnn(torch.nn.Linear(n, n, bias=False).eval())
    xm = a.to_mkldnn()
    with torch.no_grad():
        out["fp32_onednn"] = flops / median_time(lambda: lin(xm), reps, 2) / 1e9
    out["bf16_mm"] = None
    if bf16:
        ab, bb = a.bfloat16(), b.bfloat16()
        out["bf16_mm"] = flops / median_time(lambda: ab @ bb, reps, 2) / 1e9
    return out


def conv_ceilings(reps: int = 5, bf16: bool = True) -> dict:
    """GFLOP/s of one large conv layer of the recipe's D (batch 32, 128 -> 256 channels, 4x4 stride 2
    on 32x32), forward and backward, channels_last, through torch's CPU conv path (oneDNN): the rate
    the conv nets' steps can be held against. bf16 under autocast is timed only if one call is not
    far slower than fp32 (an emulated bf16 conv would run for minutes); else it is reported as None."""
    conv = torch.nn.Conv2d(128, 256, 4, 2, 1).to(memory_format=torch.channels_last)
    x = torch.randn(32, 128, 32, 32).to(memory_format=torch.channels_last).requires_grad_()

    def run(amp: bool):
        def fn():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                y = conv(x)
            y.float().sum().backward()
        return fn
    with FlopCounterMode(display=False) as counter:
        run(False)()
    flops = counter.get_total_flops()
    out = {"conv_fp32": flops / median_time(run(False), reps, 1) / 1e9}
    if not bf16:
        return {**out, "conv_bf16": None}
    t0 = time.perf_counter()
    run(True)()
    once = time.perf_counter() - t0
    out["conv_bf16"] = None if once > 10 * flops / out["conv_fp32"] / 1e9 else \
        flops / median_time(run(True), reps, 1) / 1e9
    return out


def make_parts(method: str, net: str, size: int, width: float, batch: int, amp: str, lr: float,
               compile_d: bool = False, channels: int = 1, channels_last: bool = True):
    cfg = settle(C.build(overrides={"method.name": method, "model.net": net, "model.width": width,
                                    "data.image_size": size, "train.batch_size": batch, "train.amp": amp,
                                    "optim.lr": lr, "train.channels_last": channels_last}), channels, size)
    torch.manual_seed(0)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(10))
    D, G = to_layout(D, cfg.train.channels_last), to_layout(G, cfg.train.channels_last)  # as training does
    if compile_d:
        D = torch.compile(D, dynamic=False)
    parts = make_step_parts(cfg, algo, D, G, torch.device("cpu"))  # training's optimisers (fused Adam)
    x = lambda: torch.rand(batch, channels, size, size) * 2 - 1  # noqa: E731
    batches = (x(), torch.randint(0, 10, (batch,)), x(), x())
    return parts, batches


def step_row(label, method, net, size, width, batch, amp, lr, channels, channels_last, iters: int, ceil: dict,
             warmup: int = 5) -> dict:
    parts, (x_lab, y_lab, x_unl, x_unl_g) = make_parts(method, net, size, width, batch, amp, lr, channels=channels,
                                                       channels_last=channels_last)
    step = lambda: d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)  # noqa: E731
    step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    sec = median_time(step, iters, warmup=warmup)
    gflops = flops / sec / 1e9
    # fp32: the better of torch.mm and oneDNN is what this machine can do in fp32
    name = "bf16_mm" if amp == "bf16" else max(("fp32_mm", "fp32_onednn"), key=lambda k: ceil[k])
    ceiling = ceil[name]
    conv = ceil.get("conv_bf16" if amp == "bf16" else "conv_fp32") if net != "mlp" else None
    return {"row": label, "method": method, "net": net, "width": width, "batch": batch, "amp": amp,
            "channels_last": channels_last,
            "gflop_per_iter": flops / 1e9, "ms_per_iter": sec * 1e3, "gflops": gflops,
            "fraction_of_ceiling": gflops / ceiling, "ceiling_used": name,
            "fraction_of_conv_ceiling": gflops / conv if conv else None,
            "images_per_s": batch / sec}


def epoch_run(method, net, size, width, batch, amp, lr, steps: int, data_root: str | None) -> dict:
    """A real `ssgan train` for `steps` steps in a subprocess (real_run.py, which imports no more
    than training does): epoch time with data, and peak RSS."""
    import tempfile
    run_dir = tempfile.mkdtemp(prefix="ssgan-tp-")
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "real_run.py"), json.dumps(
        {"method": method, "net": net, "size": size, "width": width, "batch": batch, "amp": amp, "lr": lr,
         "steps": steps, "run_dir": run_dir, "data_root": data_root})]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plain_step(parts: StepParts, x_lab, y_lab, x_unl, x_unl2) -> list[float]:
    """A straightforward port's step: D on each batch separately, a fresh generated batch for G,
    D's weight gradients computed (and discarded) in the G step, `.item()` logging every step."""
    algo, D, G = parts.algo, parts.D, parts.G
    x_fake = G(G.sample_z(len(x_lab)))
    l_lab, _ = D(x_lab)
    l_unl, _ = D(x_unl)
    l_fake, _ = D(x_fake.detach())
    d_loss, _ = algo.d_loss(l_lab, y_lab, l_unl, l_fake)
    parts.opt_d.zero_grad()
    d_loss.backward()
    parts.opt_d.step()
    x_fake = G(G.sample_z(len(x_lab)))
    _, f_real = D(x_unl2)
    l_fake, f_fake = D(x_fake)
    g_loss, _ = algo.g_loss(l_fake, f_real.detach(), f_fake)
    parts.opt_g.zero_grad()
    g_loss.backward()
    parts.opt_g.step()
    return [d_loss.item(), g_loss.item()]


def plain_epoch_ms(iters: int, images: torch.Tensor) -> float:
    """ms per iteration of the plain path: per-sample DataLoader over float images, eager fp32."""
    from torch.utils.data import DataLoader, TensorDataset
    parts, _ = make_parts("fm", "mlp", 28, 1.0, 100, "none", 3e-3)
    x = images.float() / 127.5 - 1
    y = torch.randint(0, 10, (len(x),))
    lab_set = TensorDataset(x[:100], y[:100])
    unl = DataLoader(TensorDataset(x), batch_size=100, shuffle=True)
    unl2 = DataLoader(TensorDataset(x), batch_size=100, shuffle=True)
    lab = iter(DataLoader(lab_set, batch_size=100, shuffle=True))
    t0, n = time.perf_counter(), 0
    for (xu,), (xu2,) in zip(unl, unl2):
        try:
            xl, yl = next(lab)
        except StopIteration:
            lab = iter(DataLoader(lab_set, batch_size=100, shuffle=True))
            xl, yl = next(lab)
        plain_step(parts, xl, yl, xu, xu2)
        n += 1
        if n == iters:
            break
    return (time.perf_counter() - t0) / n * 1e3


def fast_epoch_ms(iters: int, images: torch.Tensor, amp: str) -> float:
    """ms per iteration of ssgan's path: resident uint8 streams, d_step + g_step, no per-step host sync."""
    from ssgan.data.streams import LabeledStream, UnlabeledStream
    parts, _ = make_parts("fm", "mlp", 28, 1.0, 100, amp, 3e-3)
    y = torch.randint(0, 10, (len(images),))
    dev = torch.device("cpu")
    lab = LabeledStream(images, y, torch.arange(100), 100, 1, dev)
    unl = UnlabeledStream(images, torch.arange(len(images)), 100, 2, dev)
    unl2 = UnlabeledStream(images, torch.arange(len(images)), 100, 3, dev)
    acc = torch.zeros(iters, 5)  # sup, unl, d_loss, fm, g_loss
    t0 = time.perf_counter()
    for i in range(iters):
        xl, yl = lab.next()
        row = d_step(parts, xl, yl, unl.next()) + g_step(parts, unl2.next())
        acc[i] = torch.stack([v.detach().float() for v in row])
    return (time.perf_counter() - t0) / iters * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few iterations, for a smoke test")
    parser.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    parser.add_argument("--epoch-steps", type=int, default=200,
                        help="steps of the real training run per row; 0: time the step alone")
    parser.add_argument("--data-root", default=os.environ.get("SSGAN_DATA"))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    iters = 5 if args.quick else 30
    # as training on the CPU does; the plain path below runs in this process too, so it gets the same
    # allocator (which understates ssgan's lead over it, if anything)
    host.keep_freed_memory()
    bf16, bf16_line = bf16_check()
    print(f"CPU: {cpu_model()}")
    print(bf16_line, flush=True)
    ceil = {**ceilings(reps=3 if args.quick else 11, bf16=bf16),
            **conv_ceilings(reps=3 if args.quick else 5, bf16=bf16)}
    shown = {k: f"{v:.0f}" if v else "not timed" for k, v in ceil.items()}
    print(f"ceilings (n=2048 matmul, {torch.get_num_threads()} threads): fp32 torch.mm {shown['fp32_mm']}, "
          f"fp32 oneDNN {shown['fp32_onednn']}, bf16 torch.mm {shown['bf16_mm']} GFLOP/s; conv layer "
          f"(fwd+bwd, channels_last) fp32 {shown['conv_fp32']}, bf16 {shown['conv_bf16']} GFLOP/s")
    chosen = [ROWS[int(i)] for i in args.rows.split(",")] if args.rows else ROWS
    results, skipped = [], []
    for spec in chosen:
        label, method, net, size, width, batch, amp, lr, channels, channels_last = spec
        if amp == "bf16" and not bf16:
            skipped.append(label)
            print(f"{label:50s} skipped (bf16 emulated on this CPU)", flush=True)
            continue
        big = width >= 1 and net in ("dcgan64", "cnn32")
        r = step_row(*spec, iters=3 if big else iters, ceil=ceil, warmup=1 if big else 5)
        if not args.quick and args.epoch_steps and channels == 1 and not (big and amp == "bf16") and channels_last:
            # an MNIST run with data (colour rows have no MNIST epoch); the recipe's epoch is timed once, in fp32
            steps = 10 if big else args.epoch_steps
            r.update(epoch_run(method, net, size, width, batch, amp, lr, steps, args.data_root))
        results.append(r)
        print(f"{label:50s} {r['gflop_per_iter']:7.2f} GFLOP/it {r['ms_per_iter']:8.1f} ms/it "
              f"{r['gflops']:6.0f} GFLOP/s {100 * r['fraction_of_ceiling']:5.1f}% of {r['ceiling_used']}"
              + (f" {100 * r['fraction_of_conv_ceiling']:5.1f}% of conv" if r["fraction_of_conv_ceiling"] else "")
              + (f"  epoch {r['epoch_s_full']:7.1f} s  RSS {r['peak_rss_mb']:5.0f} MB" if 'epoch_s_full' in r else ""),
              flush=True)
    n = 20 if args.quick else 150
    images = torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8)  # MNIST-sized, data cost only
    paths = {"plain fp32": plain_epoch_ms(n, images), "ssgan fp32": fast_epoch_ms(n, images, "none")}
    if bf16:
        paths["ssgan bf16"] = fast_epoch_ms(n, images, "bf16")
    for name, ms in paths.items():
        print(f"fm/mlp epoch path {name:11s} {ms:6.1f} ms/it  -> 600-iteration epoch {0.6 * ms:5.1f} s  "
              f"({paths['plain fp32'] / ms:.2f}x the plain path)")
    report = {"machine": platform.processor() or platform.machine(), "cpu_model": cpu_model(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "bf16_probe": bf16_line, "ceilings_gflops": ceil, "rows": results,
              "skipped_rows": skipped,
              "epoch_path_ms_per_iter": paths,
              "epoch_path_speedup": {k: paths["plain fp32"] / v for k, v in paths.items()}}
    atomic_write_text(Path(args.out), json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
