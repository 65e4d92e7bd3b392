"""Checkpoints: atomic round trip, safe loading, clear errors on bad files, no incompatible resumes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import ssgan.training.loop as T
from ssgan.errors import CheckpointError
from ssgan.training import checkpoint as ckpt
from ssgan.nets import settle
from ssgan.training.run import restore_models
from ssgan import cli
from ssgan.training.run_folder import load_config

from helpers_train import TINY, make_cfg, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One finished tiny run (1 epoch, 2 steps); tests that may change it work on a copy."""
    torch.manual_seed(0)
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    T.train(make_cfg(TINY, train__epochs=1, train__max_steps=2, train__sample_every=0), run_dir)
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def test_save_load_round_trip_is_atomic(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "deep" / "x.pt"
    state = {"w": torch.randn(3, 2), "rng": torch.get_rng_state(), "nested": {"a": [1, 2.5, "s", None]}}
    ckpt.save(state, path)
    assert sorted(os.listdir(path.parent)) == ["x.pt"]              # no temporary file left behind
    loaded = ckpt.load(path)
    assert loaded["format"] == ckpt.FORMAT
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["rng"], state["rng"])
    assert loaded["nested"] == state["nested"]


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "x.pt"
    ckpt.save({"v": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        ckpt.save({"v": Unpicklable()}, path)
    assert ckpt.load(path)["v"] == 1
    assert sorted(os.listdir(tmp_path)) == ["x.pt"]


def test_a_training_checkpoint_holds_everything_to_resume(trained_run):
    state = ckpt.load(trained_run)
    for key in ("config", "split", "classes", "input_shape", "D", "G", "opt_d", "opt_g", "fixed_z",
                "epoch", "step", "global_step", "rng"):
        assert key in state, key
    assert state["epoch"] == 1 and state["global_step"] == 2 and state["fixed_z"].shape == (64, 100)
    assert set(state["rng"]) >= {"torch", "lab", "unl", "unl_g"}
    cfg = make_cfg(TINY, train__epochs=1, train__max_steps=2, train__sample_every=0)
    assert state["config"] == settle(cfg, 1, 16).to_dict()  # the run's config: the net's settings filled in
    assert ckpt.load(trained_run / "checkpoints" / "last.pt").keys() == state.keys()


def test_restore_models_rebuilds_the_trained_networks(trained_run):
    state = ckpt.load(trained_run)
    cfg, algo, D, G = restore_models(state, use_ema=False)
    assert cfg.model.net == "mlp" and not D.training and not G.training
    for k, v in D.state_dict().items():
        assert torch.equal(v, state["D"][k])
    _, _, D_ema, _ = restore_models(state)  # the run kept an EMA (the default): evaluation uses it
    assert cfg.train.ema and D_ema.state_dict().keys() == D.state_dict().keys()
    for k, v in D_ema.state_dict().items():
        assert torch.equal(v, state["ema"][f"module.{k}"])
    assert any(not torch.equal(v, state["D"][k]) for k, v in D_ema.state_dict().items())
    with torch.no_grad():
        logits, _ = D(G(G.sample_z(3)))
    assert algo.class_logits(logits).shape == (3, 4)


def write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).numpy().tobytes())
    elif kind == "text":
        path.write_text("hello world\nthis is not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "plain_dict":
        torch.save({"D": {"w": torch.zeros(2)}, "epoch": 1}, path)
    elif kind == "wrong_format":
        torch.save({"format": "ssgan-checkpoint-v0", "D": {}}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "truncated":
        ckpt.save({"w": torch.randn(1000)}, tmp_path / "full.pt")
        data = (tmp_path / "full.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


BAD_KINDS = ["random", "text", "empty", "plain_dict", "wrong_format", "list", "truncated"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_loading_a_bad_file_raises_checkpoint_error_naming_it(tmp_path, kind):
    path = write_bad(tmp_path, kind)
    with pytest.raises(CheckpointError) as e:
        ckpt.load(path)
    assert str(path) in str(e.value)


def test_missing_paths_and_run_folders_without_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as e:
        ckpt.load(tmp_path / "nope.pt")
    assert str(tmp_path / "nope.pt") in str(e.value)
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(CheckpointError) as e:
        ckpt.load(empty_run)
    assert str(empty_run) in str(e.value) and "checkpoints/last.pt" in str(e.value)
    with pytest.raises(CheckpointError, match="checkpoints/best.pt"):
        ckpt.load(empty_run, "best")


class WritesMarker:
    """Unpickling this runs code: it writes a marker file (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_loading_never_runs_code_from_the_file(tmp_path):
    # the payload is real: an unrestricted load does run it
    probe_marker, probe = tmp_path / "probe_marker", tmp_path / "probe.pt"
    torch.save({"format": ckpt.FORMAT, "x": WritesMarker(probe_marker)}, probe)
    torch.load(probe, weights_only=False)
    assert probe_marker.exists()

    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "x": WritesMarker(marker)}, path)
    with pytest.raises(CheckpointError) as e:
        ckpt.load(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_the_loader_uses_weights_only(tmp_path, monkeypatch):
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ckpt.save({"a": 1}, tmp_path / "x.pt")
    ckpt.load(tmp_path / "x.pt")
    assert seen.get("weights_only") is True


def test_check_compatible_allows_resumable_changes_only():
    a = make_cfg(TINY).to_dict()
    longer = make_cfg(TINY, train__epochs=9, train__device="cpu", train__threads=1)
    ckpt.check_compatible(a, longer.to_dict(), "x")
    with pytest.raises(CheckpointError) as e:
        ckpt.check_compatible(a, make_cfg(TINY, optim__lr=0.01, model__z_dim=50).to_dict(), "some/last.pt")
    msg = str(e.value)
    assert "optim.lr" in msg and "model.z_dim" in msg and "some/last.pt" in msg
    assert "train.epochs" not in msg


def test_a_key_newer_than_the_checkpoint_counts_as_its_default():
    old = make_cfg(TINY).to_dict()
    del old["optim"]["g_steps"]                      # a checkpoint written before optim.g_steps existed
    ckpt.check_compatible(old, make_cfg(TINY).to_dict(), "x")
    with pytest.raises(CheckpointError, match="optim.g_steps: checkpoint 1 vs now 2"):
        ckpt.check_compatible(old, make_cfg(TINY, optim__g_steps=2).to_dict(), "x")


def test_resuming_with_a_changed_key_raises_checkpoint_error_naming_it(run_copy, capsys):
    cfg = load_config(run_copy)
    cfg.optim.lr = 0.05
    with pytest.raises(CheckpointError) as e:
        T.train(cfg, run_copy, resume=True)
    assert "optim.lr" in str(e.value) and "0.05" in str(e.value)
    # through the CLI: exit 2 and the key in the message
    assert cli.main(["train", "--resume", str(run_copy), "--optim.lr=0.01"]) == 2
    assert "optim.lr" in capsys.readouterr().err


# A refused resume must not touch the run folder: train() checks the checkpoint's config before it
# writes config.yaml, so the next plain `ssgan train --resume RUN_DIR` still works.
def test_a_refused_resume_leaves_the_run_folder_resumable(run_copy, capsys):
    config_before = (run_copy / "config.yaml").read_text()
    assert cli.main(["train", "--resume", str(run_copy), "--optim.lr=0.01"]) == 2
    assert (run_copy / "config.yaml").read_text() == config_before
    assert cli.main(["train", "--resume", str(run_copy), "--train.epochs=2"]) == 0


def test_resume_refuses_a_run_folder_without_a_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    T.train(make_cfg(TINY, train__epochs=1, train__max_steps=1, train__sample_every=0), run_dir)
    (run_dir / "checkpoints" / "last.pt").unlink()
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert "checkpoints/last.pt" in capsys.readouterr().err


def test_a_config_saved_before_a_key_existed_reads_as_what_that_run_did():
    """kplus1 runs saved before method.real_fake used the sigmoid form, whatever the default is now."""
    from ssgan import config as C
    old = C.Config().to_dict()
    del old["method"]["real_fake"]
    assert C.from_dict(old).method.real_fake == "sigmoid" and C.Config().method.real_fake == "softmax"
    new = C.from_dict(C.Config().to_dict())
    assert new.method.real_fake == "softmax"
