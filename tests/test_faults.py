"""The bad-input and fault matrix: every way a careful user or a hostile file once lost data, hung a
run or got a bare traceback, reproduced. Each test names the finding it guards against.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ssgan import cli
from ssgan.training import checkpoint as ckpt

from folder_fixtures import make_folder_dataset, snapshot, train_args
from helpers_train import TINY, cli_args, read_metrics, subprocess_env, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with torch_threads(1):
        yield


def tiny_args(run_dir: Path, **changes) -> list[str]:
    overrides = {**TINY, "train.sample_every": 0, **{k.replace("__", "."): v for k, v in changes.items()}}
    return ["train", "--run-dir", str(run_dir), *cli_args(overrides)]


def error_of(capsys, argv: list[str], code: int = 2) -> str:
    try:
        got = cli.main(argv)
    except SystemExit as e:  # argparse's own usage errors
        got = e.code
    assert got == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height (1-bit gray), with almost no pixel data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------- data loss and stuck runs
def test_a_truncated_image_is_found_before_training_and_nothing_is_written(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=12, test=0, jpeg=0.0)
    victim = root / "unlabeled" / "batch1" / "u0001.png"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    conv = ["--net", "dcgan28", "--width", "0.125", "--lr", "2e-4"]  # no data-dependent init reading images early
    err = error_of(capsys, train_args(root, tmp_path / "run", *conv, size=28))
    assert str(victim) in err and "truncated" in err and "--data.skip_bad_files=true" in err
    assert not (tmp_path / "run").exists()


def test_a_truncated_jpeg_is_skipped_with_the_flag(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=12, test=0, jpeg=1.0)
    victim = root / "unlabeled" / "u0000.jpg"
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) - len(whole) // 8])  # headers intact, the last scan lines cut
    run = tmp_path / "run"
    conv = ["--net", "dcgan28", "--width", "0.125", "--lr", "2e-4"]
    assert cli.main(train_args(root, run, "--data.skip_bad_files=true", *conv, size=28)) == 0, \
        capsys.readouterr().err
    assert [line.split("\t")[0] for line in (run / "bad_files.txt").read_text().splitlines()] == [str(victim)]
    assert len(read_metrics(run)) == 2


def test_a_run_resumes_after_files_disappear_from_its_folder(tmp_path, capsys):
    """The split is keyed by file names: a lost unlabeled or labeled file does not make resume impossible."""
    root = make_folder_dataset(tmp_path / "d", labeled=4, unlabeled=40, test=2)
    run = tmp_path / "run"
    assert cli.main(train_args(root, run, "--epochs", "1")) == 0
    split = json.loads((run / "split.json").read_text())
    assert "labeled/cat/cat_00.png" in split["files"]["labeled"] or "labeled/cat/cat_00.jpg" in split["files"]["labeled"]
    lost_labeled = sorted((root / "labeled" / "dog").iterdir())[0]
    lost_labeled.unlink()
    (root / "unlabeled" / "u0000.png" if (root / "unlabeled" / "u0000.png").exists()
     else root / "unlabeled" / "u0000.jpg").unlink()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "changed since" in out and str(lost_labeled.relative_to(root)) in out
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]


def test_a_file_that_breaks_between_runs_is_named_on_resume_and_skippable(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=4, unlabeled=40, test=0, jpeg=0.0)
    run = tmp_path / "run"
    assert cli.main(train_args(root, run, "--epochs", "1")) == 0
    victim = sorted((root / "unlabeled").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    err = error_of(capsys, ["train", "--resume", str(run), "--epochs", "2"])
    assert str(victim) in err and "--data.skip_bad_files=true" in err
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--data.skip_bad_files=true"]) == 0
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2] and str(victim) in (run / "bad_files.txt").read_text()


def test_suggest_never_overwrites_a_file_in_copy_to(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=10, test=0)
    assert cli.main(train_args(root, tmp_path / "run")) == 0
    dest = tmp_path / "to_label"
    assert cli.main(["suggest", str(tmp_path / "run"), str(root / "unlabeled"), "-n", "3", "-o",
                     str(tmp_path / "s.csv"), "--copy-to", str(dest)]) == 0
    taken = sorted(dest.iterdir())[0]
    taken.write_text("the user's own notes")
    before = snapshot(dest)
    err = error_of(capsys, ["suggest", str(tmp_path / "run"), str(root / "unlabeled"), "-n", "3",
                            "--copy-to", str(dest)])
    assert str(taken) in err and "exists" in err
    assert snapshot(dest) == before and taken.read_text() == "the user's own notes"


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from ssgan.training.run_folder import lock_run_dir
lock = lock_run_dir(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_trainer_of_the_same_run_folder_is_refused_and_a_dead_one_s_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                              env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = error_of(capsys, tiny_args(run, train__epochs=1))
        assert f"process {holder.pid}" in err and str(run) in err
        assert not (run / "config.yaml").exists() and not (run / "split.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert cli.main(tiny_args(run, train__epochs=1)) == 0  # the dead holder's lock is taken over
    assert len(read_metrics(run)) == 1


def test_a_refused_run_writes_nothing(tmp_path, capsys):
    err = error_of(capsys, tiny_args(tmp_path / "run", method__name="foo"))
    assert "unknown method 'foo'" in err
    assert not (tmp_path / "run").exists()


def test_a_split_json_that_does_not_match_the_request_is_an_error(tmp_path, capsys):
    """A run killed before its first checkpoint leaves split.json; the next run must not reuse it silently."""
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    (run / "checkpoints" / "last.pt").unlink()                   # as if killed before the first checkpoint
    err = error_of(capsys, tiny_args(run, train__epochs=1, data__labels=20))
    assert "labels=100" in err and "labels=20" in err and str(run / "split.json") in err


def test_stale_temporary_files_are_removed_on_start_and_resume(tmp_path):
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    stale = [run / "checkpoints" / ".last.pt.k1ll3d00.tmp", run / ".metrics.jsonl.k1ll3d00.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    keep = run / "checkpoints" / "notes.tmp"                    # not one of ours: left alone
    keep.write_text("mine")
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert not any(p.exists() for p in stale) and keep.exists()


# ------------------------------------------------------------------------ tracebacks and unclear errors
def test_disk_full_names_the_path_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(run / "checkpoints")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", full)
    err = error_of(capsys, ["train", "--resume", str(run), "--epochs", "2"])
    monkeypatch.undo()
    assert "no space left on device" in err and str(run / "checkpoints" / "last.pt") in err and "intact" in err
    assert ckpt.load(run)["epoch"] == 1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]


@pytest.mark.parametrize("side", [20000, 12000])
def test_a_decompression_bomb_is_named_and_skippable(tmp_path, capsys, side):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=10, test=0)
    bomb = root / "unlabeled" / "bomb.png"
    bomb.write_bytes(png_header(side, side))
    err = error_of(capsys, train_args(root, tmp_path / "run"))
    assert str(bomb) in err and "pixels" in err
    assert cli.main(train_args(root, tmp_path / "run2", "--data.skip_bad_files=true")) == 0
    assert str(bomb) in (tmp_path / "run2" / "bad_files.txt").read_text()


@pytest.mark.parametrize("option, key", [
    ("--train.max_steps=-1", "train.max_steps"), ("--train.threads=-1", "train.threads"),
    ("--train.eval_batch_size=0", "train.eval_batch_size"), ("--optim.lr=nan", "optim.lr"), ("--optim.lr=0", "optim.lr"),
    ("--optim.beta1=1.5", "optim.beta1"), ("--optim.eps=-1", "optim.eps"), ("--data.workers=-2", "data.workers"),
    ("--train.sample_every=-1", "train.sample_every"), ("--method.unsup_weight=inf", "method.unsup_weight"),
    ("--model.z_dim=0", "model.z_dim"), ("--data.channels=2", "data.channels"), ("--labels=-10", "data.labels"),
])
def test_numeric_options_are_checked_before_anything_runs(tmp_path, capsys, option, key):
    err = error_of(capsys, tiny_args(tmp_path / "run") + [option])
    assert key in err
    assert not (tmp_path / "run").exists()


def test_suggest_refuses_a_negative_count(tmp_path, capsys):
    err = error_of(capsys, ["suggest", str(tmp_path), str(tmp_path), "-n", "-298"])
    assert "-n" in err and "-298" in err


@pytest.mark.parametrize("content", ["{{{ not: yaml", "!!python/object/apply:os.system ['echo pwned > PWNED']",
                                     "- a\n- list\n", "data:\n  labels: many\n"])
def test_a_broken_config_yaml_in_a_run_folder_is_named(tmp_path, capsys, monkeypatch, content):
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    (run / "config.yaml").write_text(content)
    monkeypatch.chdir(tmp_path)
    err = error_of(capsys, ["train", "--resume", str(run), "--epochs", "2"])
    assert str(run / "config.yaml") in err
    assert not (tmp_path / "PWNED").exists()


def test_a_split_json_with_an_out_of_range_index_is_named(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    split = json.loads((run / "split.json").read_text())
    split["labeled"][0] = 10 ** 6
    (run / "split.json").write_text(json.dumps(split))
    err = error_of(capsys, ["train", "--resume", str(run), "--epochs", "2"])
    assert str(run / "split.json") in err and "1000000" in err


def test_onnx_export_without_onnx_says_which_extra_to_install(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(tiny_args(run, train__epochs=1)) == 0
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    err = error_of(capsys, ["export", str(run), "--format", "onnx", "-o", str(tmp_path / "c.onnx")])
    assert "pip install 'ssgan[export]'" in err and not (tmp_path / "c.onnx").exists()


def test_an_output_path_that_is_a_folder_is_refused(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=20, test=0)
    assert cli.main(train_args(root, tmp_path / "run")) == 0
    (tmp_path / "out").mkdir()
    err = error_of(capsys, ["predict", str(tmp_path / "run"), str(root / "unlabeled"), "-o", str(tmp_path / "out")])
    assert str(tmp_path / "out") in err and "folder" in err


def test_zero_labels_is_explained_as_too_few(tmp_path, capsys):
    err = error_of(capsys, tiny_args(tmp_path / "run", data__labels=0))
    assert "data.labels=0 must be >= 1" in err and "evenly" not in err
    err = error_of(capsys, tiny_args(tmp_path / "run", data__labels=2))  # 4 classes
    assert "--labels 2" in err and "at least 4" in err and "evenly" not in err


def test_a_validation_holdout_that_leaves_too_few_labels_names_val_size(tmp_path, capsys):
    err = error_of(capsys, tiny_args(tmp_path / "run", data__val_size=560))  # 600 synthetic images, 100 labels
    assert "--val-size 560" in err and "at most" in err


def test_a_truncated_image_in_predict_does_not_recommend_a_training_flag(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=20, test=0, jpeg=0.0)
    assert cli.main(train_args(root, tmp_path / "run")) == 0
    victim = tmp_path / "new.png"
    whole = sorted((root / "unlabeled").glob("*.png"))[0].read_bytes()
    victim.write_bytes(whole[: len(whole) // 2])
    for command in ("predict", "suggest"):
        err = error_of(capsys, [command, str(tmp_path / "run"), str(victim)])
        assert str(victim) in err and "skip_bad_files" not in err


def test_abbreviated_options_are_refused(tmp_path, capsys):
    err = error_of(capsys, tiny_args(tmp_path / "run") + ["--epoch", "2"])
    assert "--epoch" in err and "--epochs" in err
    assert not (tmp_path / "run").exists()


def test_a_folder_with_one_class_is_refused(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", classes=("cat",), labeled=3, unlabeled=6, test=2)
    err = error_of(capsys, train_args(root, tmp_path / "run"))
    assert "at least two classes" in err and str(root / "labeled") in err


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        assert cli.main(tiny_args(run, train__epochs=1)) == 0
    finally:
        os.umask(old)
    for p in [run / "config.yaml", run / "split.json", run / "metrics.jsonl", run / "checkpoints" / "last.pt"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
