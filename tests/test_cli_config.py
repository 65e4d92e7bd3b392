"""The command line up to the training call: help, options, and usage errors (exit 2, no traceback)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ssgan import config as C
from ssgan.cli import main, parse_overrides


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """A run the CLI starts by mistake lands in tmp_path, not in the repository."""
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own exits (--help, its usage errors)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------------------- help
def test_top_level_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("train", "evaluate", "sample"):
        assert command in out


def test_train_help_lists_every_config_key(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    for key in C.all_keys():
        assert f"--{key} " in out, key
    assert "--optim.lr (default None)" in out and "--model.net (default 'auto')" in out and "--data.labels (default None)" in out
    assert "--labels N" in out  # the short aliases too


def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "ssgan", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ssgan") and "train" in result.stdout


# ------------------------------------------------------------------------------------------- overrides
def test_dotted_options_both_spellings():
    assert parse_overrides(["--optim.lr=3e-4"]) == {"optim.lr": "3e-4"}
    assert parse_overrides(["--optim.lr", "3e-4", "--train.epochs=2"]) == {"optim.lr": "3e-4",
                                                                          "train.epochs": "2"}
    assert parse_overrides(["--data.root=a=b"]) == {"data.root": "a=b"}


def test_option_without_a_value():
    from ssgan.errors import ConfigError
    with pytest.raises(ConfigError, match="--optim.lr needs a value"):
        parse_overrides(["--optim.lr"])


# ---------------------------------------------------------------------------------------- usage errors
def test_unknown_dotted_option_names_nearest(capsys):
    err = usage_error(capsys, "train", "--optim.lrr=3e-4")
    assert "optim.lrr" in err and "optim.lr" in err and err.startswith("ssgan: error:")


def test_unknown_plain_option_names_nearest(capsys):
    err = usage_error(capsys, "train", "--lables", "15")
    assert "'--lables'" in err and "--labels" in err


def test_wrong_type_names_the_key(capsys):
    err = usage_error(capsys, "train", "--epochs", "ten")
    assert "train.epochs='ten'" in err and "expected int" in err


def test_bad_choice(capsys):
    err = usage_error(capsys, "train", "--optim.decay", "cosine")
    assert "none, linear" in err


def test_two_label_keys_on_the_command_line(capsys):
    err = usage_error(capsys, "train", "--labels", "100", "--labeled-rate", "0.1")
    assert "give the labels one way" in err


def test_missing_config_file(capsys, tmp_path):
    err = usage_error(capsys, "train", "-c", str(tmp_path / "nope.yaml"))
    assert "nope.yaml does not exist" in err


def test_unknown_option_of_another_command(capsys):
    err = usage_error(capsys, "evaluate", "some/run", "--labels", "5")
    assert "'evaluate'" in err and "--labels" in err


def test_no_command(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err


def test_impossible_label_count_names_nearest_totals(capsys, tmp_path):
    err = usage_error(capsys, "train", "--dataset", "synthetic", "--image-size", "16", "--labels", "15",
                      "--net", "mlp", "--device", "cpu", "--run-dir", str(tmp_path / "run"))
    assert "--labels 15" in err and "4 classes" in err and "12 or 16" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_impossible_label_count_on_mnist(capsys, tmp_path, mnist_root):
    err = usage_error(capsys, "train", "--data-root", str(mnist_root), "--data.download=false",
                      "--labels", "15",
                      "--run-dir", str(tmp_path / "run"))
    assert "--labels 15" in err and "10 classes" in err and "10 or 20" in err


def test_too_many_labels_per_class(capsys, tmp_path):
    err = usage_error(capsys, "train", "--dataset", "synthetic", "--image-size", "16",
                      "--labels-per-class", "500",
                      "--run-dir", str(tmp_path / "run"))
    assert "500 requested" in err and "at most 150 per class" in err


def test_unknown_dataset(capsys, tmp_path):
    err = usage_error(capsys, "train", "--dataset", "cifar99", "--run-dir", str(tmp_path / "run"))
    assert "unknown dataset 'cifar99'" in err and "mnist" in err and "synthetic" in err


def test_mnist_missing_without_download(capsys, tmp_path):
    err = usage_error(capsys, "train", "--data-root", str(tmp_path / "empty"), "--data.download=false",
                      "--run-dir", str(tmp_path / "run"))
    assert "train-images-idx3-ubyte.gz" in err and "allow_subset" in err


# ---------------------------------------------------------------------------------------------- errors
def test_a_user_error_is_one_line_and_debug_shows_its_traceback(capsys, tmp_path):
    from ssgan.errors import CheckpointError
    err = usage_error(capsys, "evaluate", str(tmp_path / "nowhere.pt"))
    assert err.strip() == f"ssgan: error: {tmp_path / 'nowhere.pt'} does not exist"
    for argv in (["--debug", "evaluate", str(tmp_path / "nowhere.pt")],
                 ["evaluate", str(tmp_path / "nowhere.pt"), "--debug"]):
        with pytest.raises(CheckpointError, match="does not exist"):
            main(argv)


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    """Only SsganError is a user's error: a bug (here a ValueError inside a command) is not swallowed."""
    from ssgan import cli

    def broken(args, rest):
        raise ValueError("a bug, not a user's mistake")
    monkeypatch.setattr(cli, "cmd_sample", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["sample", "whatever.pt"])
