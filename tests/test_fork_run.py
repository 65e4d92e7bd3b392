"""benchmarks/fork_run.py: a run branched at a checkpoint with another schedule continues exactly as
a run started with that schedule; settings that change what the weights mean are refused."""
from __future__ import annotations

import pytest
import torch
from helpers_train import TINY, load_benchmark, make_cfg, read_metrics, without_timing

from ssgan import cli
from ssgan.training import checkpoint as ckpt
from ssgan.training import loop as T


@pytest.fixture(scope="module")
def fork_run():
    return load_benchmark("fork_run")


BASE = {**TINY, "train.max_steps": 6, "train.sample_every": 0}


def test_a_fork_with_a_decay_matches_the_run_started_with_it(fork_run, tmp_path):
    torch.manual_seed(0)
    decayed = {"optim.decay": "linear", "optim.decay_epochs": 1}
    T.train(make_cfg({**BASE, **decayed}, train__epochs=3), tmp_path / "straight")
    T.train(make_cfg(BASE, train__epochs=2), tmp_path / "base")
    fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), "optim.decay=linear", "optim.decay_epochs=1",
                   "train.epochs=3"])
    assert [r["epoch"] for r in read_metrics(tmp_path / "fork")] == [1, 2]
    assert cli.main(["train", "--resume", str(tmp_path / "fork")]) == 0
    straight, forked = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "fork")
    assert [r["epoch"] for r in forked] == [1, 2, 3]
    assert forked[-1]["lr"] < forked[-2]["lr"]               # the decay took effect after the fork
    assert without_timing(forked) == without_timing(straight)
    a, b = ckpt.load(tmp_path / "straight"), ckpt.load(tmp_path / "fork")
    for net in ("D", "G"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs"
    assert ckpt.load(tmp_path / "base")["config"]["optim"]["decay"] == "none"   # the base run is untouched


def test_a_fork_changes_the_ema_and_trims_metrics_logged_after_the_checkpoint(fork_run, tmp_path):
    torch.manual_seed(0)
    T.train(make_cfg(BASE, train__epochs=2), tmp_path / "base")
    with open(tmp_path / "base" / "metrics.jsonl", "a") as f:   # as if the base run logged epoch 3 since
        f.write('{"epoch": 3, "test_errors": 1}\n')
    with open(tmp_path / "base" / "metrics.csv", "a") as f:
        f.write("3" + ",0" * (open(tmp_path / "base" / "metrics.csv").readline().count(",")) + "\n")
    fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), "train.ema=0.9999", "train.epochs=3"])
    assert [r["epoch"] for r in read_metrics(tmp_path / "fork")] == [1, 2]
    assert len((tmp_path / "fork" / "metrics.csv").read_text().splitlines()) == 3
    assert ckpt.load(tmp_path / "fork")["config"]["train"]["ema"] == 0.9999
    assert cli.main(["train", "--resume", str(tmp_path / "fork")]) == 0
    assert [r["epoch"] for r in read_metrics(tmp_path / "fork")] == [1, 2, 3]


def test_a_fork_that_starts_the_entropy_term_matches_the_run_started_with_it(fork_run, tmp_path):
    """The loop tells the method the epoch: a run with the term from epoch 3 trains as the plain run
    for two epochs, and a fork of the plain run that switches it on at epoch 3 is that run."""
    torch.manual_seed(0)
    late = {"method.name": "badgan", "method.entropy_weight": 0.5, "method.entropy_from_epoch": 3}
    T.train(make_cfg({**BASE, **late}, train__epochs=3), tmp_path / "straight")
    T.train(make_cfg({**BASE, "method.name": "badgan"}, train__epochs=2), tmp_path / "base")
    fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), "method.entropy_weight=0.5",
                   "method.entropy_from_epoch=3", "train.epochs=3"])
    assert cli.main(["train", "--resume", str(tmp_path / "fork")]) == 0
    straight, forked = without_timing(read_metrics(tmp_path / "straight")), without_timing(read_metrics(tmp_path / "fork"))
    assert straight[:2] == without_timing(read_metrics(tmp_path / "base"))    # off for epochs 1-2
    assert forked == straight
    a, b = ckpt.load(tmp_path / "straight"), ckpt.load(tmp_path / "fork")
    assert all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"])
    with pytest.raises(SystemExit, match="not after the fork"):             # on from an epoch already run
        fork_run.main([str(tmp_path / "base"), str(tmp_path / "early"), "method.entropy_weight=0.5",
                       "method.entropy_from_epoch=2", "train.epochs=3"])
    with pytest.raises(SystemExit, match="was on"):                          # the base ran with it
        fork_run.main([str(tmp_path / "straight"), str(tmp_path / "again"), "method.entropy_weight=1",
                       "train.epochs=4"])
    assert not (tmp_path / "early").exists() and not (tmp_path / "again").exists()


@pytest.mark.parametrize("change", ["model.width=2", "optim.lr=1", "decay"])
def test_other_keys_and_malformed_changes_are_refused(fork_run, tmp_path, change):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), change])


def test_an_existing_target_or_too_few_epochs_is_refused(fork_run, tmp_path):
    torch.manual_seed(0)
    T.train(make_cfg(BASE, train__epochs=2), tmp_path / "base")
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit, match="exists"):
        fork_run.main([str(tmp_path / "base"), str(tmp_path / "taken"), "train.ema=0.99"])
    with pytest.raises(SystemExit, match="must exceed"):
        fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), "train.ema=0.99"])
    assert not (tmp_path / "fork").exists()


def test_a_mid_epoch_checkpoint_is_refused(fork_run, tmp_path):
    torch.manual_seed(0)
    T.train(make_cfg(BASE, train__epochs=1), tmp_path / "base")
    state = ckpt.load(tmp_path / "base")
    state["step"] = 3                                     # as a run stopped by a signal mid-epoch leaves it
    state.pop("format")
    ckpt.save(state, tmp_path / "base" / "checkpoints" / "last.pt")
    with pytest.raises(SystemExit, match="mid-epoch"):
        fork_run.main([str(tmp_path / "base"), str(tmp_path / "fork"), "train.epochs=2"])
    assert not (tmp_path / "fork").exists()
