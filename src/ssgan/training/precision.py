"""`--amp auto`: bf16 autocast only where this machine runs it faster than fp32.

Whether bf16 pays depends on the chip, not on ssgan: measured here, it was about 2x faster than fp32
on an AMD Zen 5, 1.2-1.6x per training step on an Intel Xeon with AMX, and on CPUs without bf16
instructions it is emulated and runs many times slower. So `auto` times a small matmul and a small
convolution (forward and backward) both ways at start-up, picks bf16 only when both are clearly
faster, logs the measurement and saves the choice in the run's config, so a resumed run keeps it.

The probe is bounded: an emulated bf16 op is stopped after one call once it is slower than fp32, so a
CPU without bf16 costs a fraction of a second, never minutes.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

MIN_SPEEDUP = 1.3  # bf16 must beat fp32 by this factor on both probes to be chosen
REPEATS = 5


def _matmul(dtype: torch.dtype, device: torch.device) -> Callable[[], None]:
    a = torch.randn(512, 512, device=device, requires_grad=True)
    b = torch.randn(512, 512, device=device)

    def op():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            (a @ b).sum().backward()

    return op


def _conv(dtype: torch.dtype, device: torch.device) -> Callable[[], None]:
    # One layer of the conv nets' size class: batch 32, 64 -> 64 channels, 16 x 16, 3 x 3.
    x = torch.randn(32, 64, 16, 16, device=device)
    w = torch.randn(64, 64, 3, 3, device=device, requires_grad=True)

    def op():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            F.conv2d(x, w, padding=1).float().square().mean().backward()

    return op


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_op(op: Callable[[], None], device: torch.device, give_up_after: float | None = None) -> float:
    """Median seconds per call after one warm-up call; a warm-up slower than `give_up_after`
    seconds returns at once (an emulated dtype is not worth timing further)."""
    t0 = time.perf_counter()
    op()
    _sync(device)
    first = time.perf_counter() - t0
    if give_up_after is not None and first > give_up_after:
        return first
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        op()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def probe_bf16(device: torch.device) -> dict[str, float]:
    """bf16-over-fp32 speed-up of each probe op on `device` (above 1: bf16 is faster)."""
    speedups = {}
    for name, make in (("matmul", _matmul), ("conv", _conv)):
        t32 = time_op(make(torch.float32, device), device)
        t16 = time_op(make(torch.bfloat16, device), device, give_up_after=max(5 * t32, 0.05))
        speedups[name] = t32 / t16
    return speedups


def choose_amp(
    device: torch.device, probe: Callable[[torch.device], dict[str, float]] = probe_bf16
) -> tuple[str, str]:
    """('bf16' or 'none', a line for the log saying why)."""
    if device.type == "mps":
        return "none", "amp auto: fp32 (bf16 autocast is not probed on MPS)"
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "none", f"amp auto: fp32 ({torch.cuda.get_device_name(device)} has no bf16)"
    try:
        speedups = probe(device)
    except RuntimeError as e:  # a device or build without bf16 kernels
        return "none", f"amp auto: fp32 (bf16 failed: {str(e).splitlines()[0][:80]})"
    shown = ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
    if min(speedups.values()) >= MIN_SPEEDUP:
        return "bf16", f"amp auto: bf16 (bf16 against fp32 on this {device.type}: {shown})"
    return (
        "none",
        f"amp auto: fp32 (bf16 against fp32 on this {device.type}: {shown}; bf16 needs {MIN_SPEEDUP}x)",
    )
