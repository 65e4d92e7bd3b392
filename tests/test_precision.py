"""`--amp auto`: the choice rule, the bounded probe, and a run that saves the concrete choice."""

from __future__ import annotations

import time

import pytest
import torch
import yaml

import ssgan.training.loop as T
from ssgan.training import precision

from helpers_train import TINY, make_cfg, torch_threads


@pytest.mark.parametrize(
    "speedups,expected",
    [
        ({"matmul": 2.0, "conv": 1.5}, "bf16"),
        ({"matmul": 9.0, "conv": 1.1}, "none"),  # conv not enough faster
        ({"matmul": 0.01, "conv": 0.02}, "none"),
    ],
)  # emulated bf16
def test_bf16_is_chosen_only_when_both_probes_are_clearly_faster(speedups, expected):
    choice, note = precision.choose_amp(torch.device("cpu"), probe=lambda device: speedups)
    assert choice == expected
    assert note.startswith("amp auto: ") and f"matmul {speedups['matmul']:.2f}x" in note


def test_a_device_without_bf16_kernels_falls_back_to_fp32_and_says_why():
    def failing(device):
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'BFloat16'")

    choice, note = precision.choose_amp(torch.device("cpu"), probe=failing)
    assert choice == "none" and "bf16 failed" in note and "BFloat16" in note


def test_the_probe_stops_after_one_call_of_an_op_slower_than_its_limit():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)

    assert precision.time_op(slow, torch.device("cpu"), give_up_after=0.01) >= 0.05
    assert len(calls) == 1
    precision.time_op(lambda: calls.append(1), torch.device("cpu"))
    assert len(calls) == 2 + precision.REPEATS  # warm-up + repeats when not given up


def test_the_real_probe_measures_both_ops_on_this_cpu():
    with torch_threads(1):
        speedups = precision.probe_bf16(torch.device("cpu"))
    assert set(speedups) == {"matmul", "conv"} and all(v > 0 for v in speedups.values())


@pytest.mark.parametrize("measured", ["bf16", "none"])
def test_a_run_with_amp_auto_logs_and_saves_its_choice_and_resume_keeps_it(
    tmp_path, monkeypatch, capsys, measured
):
    monkeypatch.setattr(T, "choose_amp", lambda device: (measured, f"amp auto: {measured} (test)"))
    cfg = make_cfg(TINY, train__amp="auto", train__epochs=1, train__max_steps=2, train__sample_every=0)
    with torch_threads(1):
        T.train(cfg, tmp_path / "run")
    assert cfg.train.amp == "auto"  # the caller's config is left as given
    assert f"amp auto: {measured} (test)" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["amp"] == measured
    other = "none" if measured == "bf16" else "bf16"
    monkeypatch.setattr(T, "choose_amp", lambda device: (other, "amp auto: would differ now"))
    with torch_threads(1):
        T.train(
            make_cfg(TINY, train__amp="auto", train__epochs=2, train__max_steps=2, train__sample_every=0),
            tmp_path / "run",
            resume=True,
        )  # no probe: the checkpoint's choice stands
    assert "would differ" not in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["amp"] == measured


def test_throughput_skips_bf16_where_the_probe_finds_it_emulated(monkeypatch):
    """benchmarks/throughput.py times bf16 only where it is not emulated (an AVX2-only CPU ran its
    bf16 rows for hours); the decision follows the probe's speed-ups against the floor."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import throughput
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(throughput, "probe_bf16", lambda device: {"matmul": 0.1, "conv": 2.0})
    timed, line = throughput.bf16_check()
    assert not timed and "skipped" in line and "matmul 0.10x" in line
    monkeypatch.setattr(throughput, "probe_bf16", lambda device: {"matmul": 0.6, "conv": 1.9})
    timed, line = throughput.bf16_check()
    assert timed and "timed" in line
    ceil = throughput.conv_ceilings(reps=1, bf16=False)
    assert ceil["conv_bf16"] is None and ceil["conv_fp32"] > 0
