"""`ssgan bench` on the synthetic source: result files of the right shape, finished runs skipped."""
from __future__ import annotations

import csv
import json

import os

from helpers_train import read_metrics, torch_threads, without_timing

from ssgan import cli
from ssgan.bench import cpu_sets, parse_int_list

ARGS = ["bench", "--dataset", "synthetic", "--image-size", "16", "--net", "mlp", "--epochs", "1",
        "--max-steps", "2", "--batch-size", "20", "--methods", "fm,supervised", "--labels", "4,8",
        "--seeds", "0-1"]


def test_bench_writes_results_and_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "bench"
    with torch_threads(1):
        assert cli.main([*ARGS, "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 2 * 2
    assert {(r["method"], r["labels"], r["seed"]) for r in rows} == {
        (m, lab, s) for m in ("fm", "supervised") for lab in ("4", "8") for s in ("0", "1")}
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert len(summary) == 4 and all(a["n"] == 2 for a in summary)
    table = (out / "results.md").read_text()
    assert "| fm |" in table and "| supervised |" in table and "4 labels" in table and "8 labels" in table
    # min/run comes from the epochs' own times, which a resumed run carries over (its metrics.jsonl);
    # the bench process clock misses a session killed without warning
    for r in json.loads((out / "results.json").read_text())["runs"]:
        epochs = [json.loads(line) for line in (out / "runs" / f"{r['method']}-L{r['labels']}-s{r['seed']}"
                                                / "metrics.jsonl").open()]
        assert r["train_s"] == round(sum(e["epoch_time"] for e in epochs), 1) and r["wall_s"] >= r["train_s"]
    assert "min/run: the training epochs' time" in table
    # identical splits across methods: same labeled indices for the same (labels, seed)
    split = lambda m: json.loads((out / "runs" / f"{m}-L4-s1" / "split.json").read_text())["labeled"]  # noqa: E731
    assert split("fm") == split("supervised")
    capsys.readouterr()
    with torch_threads(1):
        assert cli.main([*ARGS, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("finished, skipped") == 8


def test_bench_jobs_runs_the_grid_in_parallel_processes_with_the_same_numbers(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS[:-4], "--labels", "4", "--seeds", "0-1", "--train.threads=1"]
    with torch_threads(1):
        assert cli.main([*args, "--out", str(one)]) == 0
    assert cli.main([*args, "--out", str(two), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("bench: running") == 8 and out.count(" done") == 4
    for name in ("fm-L4-s0", "fm-L4-s1", "supervised-L4-s0", "supervised-L4-s1"):
        assert "epoch   1 |" in (two / "runs" / f"{name}.log").read_text()   # each run's own log
        assert without_timing(read_metrics(one / "runs" / name)) == without_timing(read_metrics(two / "runs" / name))
    rows = lambda d: [(r["method"], r["seed"], r["test_errors"]) for r in csv.DictReader((d / "results.csv").open())]  # noqa: E731
    assert rows(one) == rows(two)


def test_cpu_sets_deal_out_this_process_s_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    sets = cpu_sets(len(cpus))
    assert sorted(c for s, _ in sets for c in s) == cpus and all(len(s) == 1 and t == 1 for s, t in sets)
    assert cpu_sets(1) == [(cpus, len(cpus))]
    # more jobs than CPUs: none pinned to a CPU of its own (the OS balances them), one thread each
    assert cpu_sets(len(cpus) + 1) == [(cpus, 1)] * (len(cpus) + 1)


def test_a_failing_run_under_jobs_stops_the_bench_with_its_error(tmp_path, capsys):
    code = cli.main([*ARGS[:-4], "--labels", "4", "--seeds", "0-1", "--train.threads=1", "--out", str(tmp_path),
                     "--jobs", "2", "--data.val_size=100000"])
    assert code != 0
    assert "val" in capsys.readouterr().err


def test_bench_bad_arguments_fail_clearly(tmp_path, capsys):
    assert cli.main([*ARGS[:-2], "--seeds", "a-b", "--out", str(tmp_path)]) == 2
    assert "--seeds 'a-b'" in capsys.readouterr().err
    args = [a if a != "fm,supervised" else "fm,nope" for a in ARGS]
    assert cli.main([*args, "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_parse_int_list():
    assert parse_int_list("0-4", "--seeds") == [0, 1, 2, 3, 4]
    assert parse_int_list("20,50,100", "--labels") == [20, 50, 100]
