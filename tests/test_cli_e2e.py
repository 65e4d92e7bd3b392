"""The `ssgan` command end to end on synthetic data: train, resume, evaluate, sample, and the run folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from ssgan.training import checkpoint as ckpt
from ssgan import cli

from helpers_train import TINY, TINY_DCGAN, cli_args, read_metrics, run_ssgan, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with torch_threads(1):
        yield

N_TEST, K = 200, 4   # the synthetic source's test set and classes

RUN_FILES = ["config.yaml", "split.json", "metrics.jsonl", "metrics.csv", "samples/epoch_001.png",
             "loss.png", "accuracy.png", "checkpoints/last.pt", "summary.json"]


def main(*argv) -> int:
    return cli.main([str(a) for a in argv])


def assert_png(path: Path, size: tuple[int, int] | None = None) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    if size:
        with Image.open(path) as im:
            assert im.size == size


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory) -> Path:
    """fm on the MLP pair, 2 short epochs, with a validation holdout (so best.pt is written)."""
    torch.manual_seed(0)
    run_dir = tmp_path_factory.mktemp("e2e") / "fm"
    args = cli_args({**TINY, "train.epochs": 2, "train.max_steps": 3})
    assert main("train", "--run-dir", run_dir, "--val-size", 40, *args) == 0
    return run_dir


def test_train_writes_the_whole_run_folder(fm_run):
    for name in RUN_FILES + ["samples/epoch_002.png", "checkpoints/best.pt"]:
        assert (fm_run / name).is_file(), name
    for png in ("samples/epoch_001.png", "loss.png", "accuracy.png"):
        assert_png(fm_run / png)
    records = read_metrics(fm_run)
    assert [r["epoch"] for r in records] == [1, 2] and [r["step"] for r in records] == [3, 6]
    for r in records:
        assert {"d/sup", "d/unl", "d_loss", "g/fm", "g_loss"} <= r.keys()
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["val_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0
        assert r["test_errors"] == round((1 - r["test_acc"]) * N_TEST)
    csv_lines = (fm_run / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("epoch,step,")
    split = json.loads((fm_run / "split.json").read_text())
    assert len(split["labeled"]) == 100 and len(split["val"]) == 40
    assert not set(split["labeled"]) & set(split["val"])
    summary = json.loads((fm_run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_acc"] == records[-1]["test_acc"]
    best = max(records, key=lambda r: r["val_acc"])
    assert summary["best_val"]["epoch"] == best["epoch"]
    assert ckpt.load(fm_run, "best")["epoch"] == best["epoch"]


def test_resume_adds_epochs(fm_run, tmp_path):
    run_dir = Path(shutil.copytree(fm_run, tmp_path / "fm"))
    before = read_metrics(run_dir)
    assert main("train", "--resume", run_dir, "--train.epochs=3") == 0
    after = read_metrics(run_dir)
    assert [r["epoch"] for r in after] == [1, 2, 3]
    assert after[:2] == before                                   # earlier records kept as they were
    assert (run_dir / "samples" / "epoch_003.png").is_file()
    assert ckpt.load(run_dir)["epoch"] == 3
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 3


def test_evaluate_writes_json_and_png(fm_run, tmp_path, capsys):
    out = tmp_path / "report" / "eval.json"
    assert main("evaluate", fm_run, "-o", out, "--device", "cpu") == 0
    assert "test accuracy" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert_png(out.with_suffix(".png"))
    assert 0.0 <= result["accuracy"] <= 1.0 and result["n"] == N_TEST
    cm = torch.tensor(result["confusion"])
    assert cm.shape == (K, K) and int(cm.sum()) == N_TEST
    assert result["errors"] == N_TEST - int(cm.diag().sum())
    assert result["accuracy"] == pytest.approx(1 - result["errors"] / N_TEST)
    assert len(result["per_class_accuracy"]) == K and result["classes"] == ["c0", "c1", "c2", "c3"]
    assert result["accuracy"] == read_metrics(fm_run)[-1]["test_acc"]   # the same D the run reported
    # default output: beside the checkpoint's run folder
    assert main("evaluate", fm_run, "--which", "best", "--device", "cpu") == 0
    assert (fm_run / "evaluation-best.json").is_file() and (fm_run / "evaluation-best.png").is_file()


def test_sample_writes_a_png_grid(fm_run, tmp_path):
    out = tmp_path / "grid.png"
    assert main("sample", fm_run, "-n", 16, "-o", out) == 0
    assert_png(out, size=(4 * (16 + 2) + 2, 4 * (16 + 2) + 2))   # 4x4 tiles of 16 px, 2 px padding
    again = tmp_path / "again.png"
    assert main("sample", fm_run, "-n", 16, "-o", again) == 0
    assert out.read_bytes() == again.read_bytes()                  # the same seed, the same grid


def test_kplus1_on_a_batch_norm_dcgan_with_ema(tmp_path):
    torch.manual_seed(0)
    run_dir = tmp_path / "kplus1"
    args = cli_args({**TINY_DCGAN, "train.epochs": 1, "train.max_steps": 2, "train.ema": 0.9})
    assert main("train", "--run-dir", run_dir, *args) == 0
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    state = ckpt.load(run_dir)
    assert state["ema"] is not None
    assert any(k.endswith("running_mean") for k in state["D"])
    assert main("evaluate", run_dir, "-o", tmp_path / "e.json", "--device", "cpu") == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["ema"] is True and sum(map(sum, result["confusion"])) == N_TEST
    assert main("sample", run_dir, "-n", 4, "-o", tmp_path / "s.png") == 0
    assert_png(tmp_path / "s.png", size=(2 * 30 + 2, 2 * 30 + 2))


def test_supervised_baseline_trains_without_a_generator(tmp_path, capsys):
    torch.manual_seed(0)
    run_dir = tmp_path / "sup"
    assert main("train", "--run-dir", run_dir, *cli_args({**TINY, "method.name": "supervised",
                                                          "train.epochs": 1, "train.max_steps": 2})) == 0
    record = read_metrics(run_dir)[0]
    assert record["g_loss"] is None and "g/fm" not in record
    assert not (run_dir / "samples").exists()
    assert ckpt.load(run_dir)["G"] is None
    capsys.readouterr()
    assert main("sample", run_dir, "-o", tmp_path / "s.png") == 2
    assert "no generator" in capsys.readouterr().err


def test_training_into_an_existing_run_is_refused(fm_run, capsys):
    assert main("train", "--run-dir", fm_run, *cli_args(TINY)) == 2
    assert f"--resume {fm_run}" in capsys.readouterr().err


def test_the_console_script_trains(tmp_path):
    run_dir = tmp_path / "script"
    args = cli_args({**TINY, "train.epochs": 1, "train.max_steps": 1, "train.sample_every": 0})
    proc = run_ssgan(["train", "--run-dir", str(run_dir), *args], timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "final test accuracy" in proc.stdout
    assert (run_dir / "checkpoints" / "last.pt").is_file() and len(read_metrics(run_dir)) == 1
