"""Progress within an epoch: a line every few percent when output is not a terminal."""
from __future__ import annotations

from ssgan.tracking import Progress


def test_progress_prints_plain_lines_when_not_a_terminal(capsys):
    progress = Progress("epoch 1/3", first=0, total=200, every=0.05, min_interval_s=0.0)
    for step in range(25, 201, 25):                      # the loop reports at its check steps
        progress.update(step, {"d_loss": 0.5, "g_loss": 1.25})
    progress.close()
    lines = capsys.readouterr().out.splitlines()         # capsys is not a terminal: no tqdm bar
    assert len(lines) == 8
    assert lines[0].startswith("epoch 1/3: step 25/200 (12%)") and "d_loss 0.500, g_loss 1.250" in lines[0]
    assert lines[-1].startswith("epoch 1/3: step 200/200 (100%)")


def test_progress_lines_are_spaced_in_steps_and_time(capsys):
    steps = Progress("e", first=0, total=1000, every=0.1, min_interval_s=0.0)
    for step in range(25, 1001, 25):
        steps.update(step, {})
    assert len(capsys.readouterr().out.splitlines()) == 10   # every 10% of the epoch, not every check
    slow = Progress("e", first=0, total=1000, every=0.01, min_interval_s=3600.0)
    for step in range(25, 1001, 25):
        slow.update(step, {})
    assert capsys.readouterr().out == ""                     # at most one line per min_interval_s


def test_progress_is_silent_where_disabled(capsys):
    quiet = Progress("e", first=0, total=10, enabled=False, min_interval_s=0.0)  # ranks other than 0
    for step in range(1, 11):
        quiet.update(step, {"d_loss": 1.0})
    assert capsys.readouterr().out == ""


def test_cpu_model_names_family_model_and_the_extensions_that_set_speed():
    """Benchmarks print this: a VM's bare "AMD EPYC" hides whether bf16 and AVX-512 are there."""
    from ssgan.tracking import cpu_model
    block = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
             "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16\n")
    second = block.replace("AMD EPYC", "other").replace("avx512f", "")
    assert cpu_model(block + "\n" + second) == "AMD EPYC (family 25 model 17; avx2, avx512f, avx512_bf16)"
    old = "model name\t: Old chip\nflags\t\t: fpu sse2\n"
    assert cpu_model(old) == "Old chip (no AVX2)"
    assert cpu_model("") != ""  # no /proc/cpuinfo: platform's name
