"""benchmarks/epoch_curves.py: per-epoch test errors of bench folders, and epochs to <= 200 / <= 100."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_train import load_benchmark


@pytest.fixture(scope="module")
def curves():
    return load_benchmark("epoch_curves")


def write_run(path: Path, errors: list[int], raw: list[int] | None = None) -> None:
    rows = [{"epoch": i + 1, "test_errors": e, "test_errors_raw": raw[i] if raw else None, "epoch_time": 30.0}
            for i, e in enumerate(errors)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_means_thresholds_and_files(curves, tmp_path):
    a = tmp_path / "a"
    write_run(a / "fm-L100-s0.metrics.jsonl", [900, 300, 200, 150, 99], raw=[950, 250, 190, 120, 101])
    write_run(a / "fm-L100-s1.metrics.jsonl", [700, 250, 180, 100])       # a seed one epoch behind
    b = tmp_path / "b"
    write_run(b / "runs" / "fm-L100-s0" / "metrics.jsonl", [500, 90])       # a run still going: read from runs/
    out = tmp_path / "out"
    curves.main([f"x={a}", f"y={b}", "--out", str(out)])
    data = json.loads((out / "curves.json").read_text())
    x, y = data
    assert x["epochs"] == 4 and x["mean"] == [800, 275, 190, 125]         # only epochs every seed reached
    assert x["std"][0] == pytest.approx(141.42, abs=0.01)
    s0, s1 = x["runs"]["fm-L100-s0"], x["runs"]["fm-L100-s1"]
    assert (s0["first_le_200"], s0["first_le_100"], s0["final"]) == (3, 5, 99)
    assert (s0["first_le_200_raw"], s0["first_le_100_raw"]) == (3, None)
    assert (s1["first_le_200"], s1["first_le_100"], s1["first_le_100_raw"]) == (3, 4, None)
    assert y["runs"]["fm-L100-s0"]["first_le_100"] == 2 and y["seeds"] == 1
    md = (out / "curves.md").read_text()
    assert "| 1 | 800.0 +- 141.4 | 500.0 +- 0.0 |" in md and "| x | fm-L100-s0 | 99 | 3 (3) | 5 | 2.5 |" in md
    assert (out / "curves.png").stat().st_size > 1000


def test_bad_arguments_are_named(curves, tmp_path):
    with pytest.raises(SystemExit, match="not NAME=PATH"):
        curves.main([str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="no metrics.jsonl in"):
        curves.main([f"x={tmp_path}", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="--thresholds '4000,x'"):
        curves.main([f"x={tmp_path}", "--out", str(tmp_path / "o"), "--thresholds", "4000,x"])


def test_other_thresholds(curves, tmp_path):
    """CIFAR-10's errors are in the thousands: the columns follow --thresholds."""
    write_run(tmp_path / "a" / "r.metrics.jsonl", [6000, 4200, 3900, 3400])
    out = tmp_path / "out"
    curves.main([f"x={tmp_path / 'a'}", "--out", str(out), "--thresholds", "4000,3500", "--ylabel", "CIFAR"])
    run = json.loads((out / "curves.json").read_text())[0]["runs"]["r"]
    assert (run["first_le_4000"], run["first_le_3500"]) == (3, 4) and "first_le_200" not in run
    assert "| folder | run | final | <= 4000 | <= 3500 | train min |" in (out / "curves.md").read_text()
