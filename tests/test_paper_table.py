"""benchmarks/paper_table.py: one row per (label count, bench folder), budgets read from the folders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_train import load_benchmark


@pytest.fixture(scope="module")
def paper_table():
    return load_benchmark("paper_table")


def write_bench(folder: Path, epochs: int, batch: int, threads, runs: list[tuple]) -> Path:
    """A results.json as `ssgan bench` writes it, with (method, labels, seed, errors) runs."""
    folder.mkdir(parents=True)
    rows = [{"method": m, "labels": n, "seed": s, "epochs": epochs, "test_errors": e, "test_acc": 1 - e / 1e4,
             "n_test": 10000, "train_s": 540.0, "wall_s": 600.0, "cpu_s": 590.0, "run": f"{folder}/runs/{m}-L{n}-s{s}"}
            for m, n, s, e in runs]
    meta = {"budget": f"{epochs} epochs per run", "dataset": "mnist",
            "config": {"train": {"batch_size": batch, "threads": threads}}}
    (folder / "results.json").write_text(json.dumps({"meta": meta, "runs": rows}))
    return folder


def test_rows_keep_each_folder_budget_and_mark_short_ones(tmp_path, paper_table):
    long = write_bench(tmp_path / "long", 72, 100, 2, [("fm", 100, 0, 120), ("fm", 100, 1, 130),
                                                       ("supervised", 100, 0, 2000), ("supervised", 100, 1, 2100)])
    short = write_bench(tmp_path / "short", 4, 50, 1, [("fm", 20, 0, 4000), ("kplus1", 20, 0, 3500),
                                                       ("fm", 100, 0, 1600), ("kplus1", 100, 0, 1300)])
    rows = paper_table.build_rows([paper_table.load(long), paper_table.load(short)])
    assert [(r["labels"], r["source"]) for r in rows] == [(20, "short"), (100, "long"), (100, "short")]
    assert rows[1]["budget"] == "72 ep, batch 100, 2 threads" and rows[2]["budget"] == "4 ep, batch 50, 1 thread"
    assert rows[1]["cells"]["fm"]["errors_mean"] == 125 and rows[1]["cells"]["fm"]["n"] == 2
    assert "kplus1" not in rows[1]["cells"]          # a method a folder did not run stays empty
    text = paper_table.markdown(rows)
    line_100_long = next(line for line in text.splitlines() if "(long)" in line)
    assert "125.0 +- 7.1 (n=2, 9.0 min)" in line_100_long and "2050.0 +- 70.7" in line_100_long
    line_20 = next(line for line in text.splitlines() if line.startswith("| 20 "))
    assert "| 4000.0 (n=1, 9.0 min) |" in line_20            # one seed: no "+- 0.0"
    assert "*short*" in line_100_long and "| 93 +- 6.5 |" in line_100_long
    cost = paper_table.cpu_lines([paper_table.load(long), paper_table.load(short)])
    assert cost == ["- long: 4 runs, 0.66 CPU-hours", "- short: 4 runs, 0.66 CPU-hours", "- total: 1.31 CPU-hours"]


def test_budget_names_the_net_schedule_and_precision_when_recorded(tmp_path, paper_table):
    folder = write_bench(tmp_path / "conv", 33, 100, 1, [("kplus1", 100, 0, 150)])
    data = json.loads((folder / "results.json").read_text())
    data["meta"]["config"].update(model={"net": "dcgan28", "width": 0.25},
                                  optim={"decay": "linear", "decay_epochs": 11})
    data["meta"]["config"]["train"]["amp"] = "bf16"
    (folder / "results.json").write_text(json.dumps(data))
    row = paper_table.build_rows([paper_table.load(folder)])[0]
    assert row["budget"] == "33 ep, batch 100, 1 thread, dcgan28 w0.25, rate decayed over the last 11, bf16"
    data["meta"]["config"].update(model={"net": "mlp", "width": 1.0}, optim={"decay": "none", "decay_epochs": 0})
    data["meta"]["config"]["train"]["amp"] = "none"
    (folder / "results.json").write_text(json.dumps(data))
    budget = paper_table.build_rows([paper_table.load(folder)])[0]["budget"]
    assert budget == "33 ep, batch 100, 1 thread, mlp, constant rate"
    data["meta"]["config"]["model"] = {"net": "auto", "width": 1.0}             # MNIST's auto choice is named
    (folder / "results.json").write_text(json.dumps(data))
    assert paper_table.build_rows([paper_table.load(folder)])[0]["budget"] == budget
    data["meta"]["config"]["optim"] = {"decay": "linear", "decay_epochs": 40}    # longer than the run: all of it
    (folder / "results.json").write_text(json.dumps(data))
    assert paper_table.build_rows([paper_table.load(folder)])[0]["budget"].endswith("mlp, rate decayed over all 33")


def test_columns_are_the_methods_some_row_has_and_gs_own_beta1_is_named(tmp_path, paper_table):
    folder = write_bench(tmp_path / "g0", 72, 100, 1, [("badgan", 100, 0, 90), ("fm", 100, 0, 95)])
    data = json.loads((folder / "results.json").read_text())
    data["meta"]["config"]["optim"] = {"decay": "none", "g_beta1": 0.0}
    (folder / "results.json").write_text(json.dumps(data))
    rows = paper_table.build_rows([paper_table.load(folder)])
    assert rows[0]["budget"] == "72 ep, batch 100, 1 thread, G's Adam beta1 0, constant rate"
    header = paper_table.markdown(rows).splitlines()[2]
    assert header.startswith("| labels | budget per run (folder) | `fm` | `badgan` | Salimans")   # no empty columns
    assert "`ct`" not in header and "`supervised`" not in header


def test_missing_folder_is_named(tmp_path, paper_table):
    with pytest.raises(SystemExit, match="nowhere/results.json not found"):
        paper_table.load(tmp_path / "nowhere")


@pytest.mark.parametrize("text", ['{"meta": {"config": ', '{"runs": []}'])
def test_a_truncated_or_foreign_results_file_is_named(tmp_path, paper_table, text):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text(text)
    with pytest.raises(SystemExit, match="bad/results.json is not a results.json of `ssgan bench`"):
        paper_table.load(tmp_path / "bad")
    assert (tmp_path / "bad" / "results.json").read_text() == text      # left as it was


@pytest.mark.parametrize("ema, named", [(0.9999, ", EMA 0.9999"), (None, ", D itself (no EMA)"), (0.999, "")])
def test_an_ema_other_than_the_default_is_named(tmp_path, paper_table, ema, named):
    folder = write_bench(tmp_path / "e", 72, 100, 1, [("badgan", 100, 0, 90)])
    data = json.loads((folder / "results.json").read_text())
    data["meta"]["config"]["optim"] = {"decay": "none"}
    data["meta"]["config"]["train"]["ema"] = ema
    (folder / "results.json").write_text(json.dumps(data))
    budget = paper_table.build_rows([paper_table.load(folder)])[0]["budget"]
    assert budget == f"72 ep, batch 100, 1 thread, constant rate{named}"


@pytest.mark.parametrize("g_steps, named", [(2, ", 2 G steps per D step"), (1, ""), (None, "")])
def test_more_than_one_g_step_is_named(tmp_path, paper_table, g_steps, named):
    folder = write_bench(tmp_path / "g", 72, 100, 1, [("badgan", 100, 0, 90)])
    data = json.loads((folder / "results.json").read_text())
    data["meta"]["config"]["optim"] = {"decay": "none"} | ({} if g_steps is None else {"g_steps": g_steps})
    (folder / "results.json").write_text(json.dumps(data))
    budget = paper_table.build_rows([paper_table.load(folder)])[0]["budget"]
    assert budget == f"72 ep, batch 100, 1 thread{named}, constant rate"


@pytest.mark.parametrize("method, named", [({"entropy_weight": 0.3, "entropy_from_epoch": 49},
                                            ", entropy term 0.3 from epoch 49"),
                                           ({"entropy_weight": 0.1}, ", entropy term 0.1"),
                                           ({"entropy_weight": 0.0, "entropy_from_epoch": 49}, ""), ({}, "")])
def test_the_entropy_term_is_named_when_on(tmp_path, paper_table, method, named):
    folder = write_bench(tmp_path / "e", 72, 100, 1, [("badgan", 100, 0, 90)])
    data = json.loads((folder / "results.json").read_text())
    data["meta"]["config"]["optim"] = {"decay": "none", "g_steps": 2}
    data["meta"]["config"]["method"] = {"name": "badgan", **method}
    (folder / "results.json").write_text(json.dumps(data))
    budget = paper_table.build_rows([paper_table.load(folder)])[0]["budget"]
    assert budget == f"72 ep, batch 100, 1 thread, 2 G steps per D step{named}, constant rate"
