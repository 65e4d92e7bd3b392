"""The training loop: which weights a step moves, BN statistics, exact resume, interruption, the NaN guard."""
from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ssgan.training.loop as T
from ssgan.training import checkpoint as ckpt
from ssgan import cli
from ssgan.config import from_dict
from ssgan.algorithms import ALGORITHMS, build_algorithm
from ssgan.algorithms.feature_matching import FeatureMatching
from ssgan.algorithms.kplus1 import KPlus1
from ssgan.data.sources import load_source
from ssgan.errors import NonFiniteLoss
from ssgan.nets import NETS, build_nets
from ssgan.training.run import build_run, lr_factor, restore_models
from ssgan.training.run_folder import load_or_draw_split
from ssgan.training.step import d_step, frozen_bn_stats, g_step, make_step_parts

from helpers_train import (TINY, TINY_DCGAN, cli_args, make_cfg, read_metrics, ssgan_command, subprocess_env,
                           torch_threads, without_timing)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with torch_threads(1):
        yield


def initial_nets(cfg):
    """D and G exactly as train() builds them before its first step (seed, then algorithm, then nets).

    Valid for nets without a data-dependent init (the DCGAN pair).
    """
    data = load_source(cfg.data)
    torch.manual_seed(cfg.train.seed)
    algo = build_algorithm(cfg.method)
    channels, k = data.train.x.shape[1], data.num_classes
    return build_nets(cfg.model, channels, cfg.data.image_size, algo.num_logits(k))


def params(state: dict, module: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable entries of a state dict (buffers such as BN running statistics left out)."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v for k, v in state.items() if k in names}


def bn_stats(state: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


# ------------------------------------------------------------------------------ which weights move
def test_one_step_moves_every_weight_of_d_and_g_by_one_adam_step(tmp_path):
    """After one D and one G step, each weight has moved by at most lr (Adam's first step is lr * sign(g))."""
    torch.manual_seed(0)
    cfg = make_cfg(TINY_DCGAN, train__epochs=1, train__max_steps=1, train__sample_every=0)
    T.train(cfg, tmp_path / "run")
    state = ckpt.load(tmp_path / "run")
    D0, G0 = initial_nets(cfg)
    lr = cfg.optim.lr
    for net0, trained in ((D0, state["D"]), (G0, state["G"])):
        for name, p0 in net0.named_parameters():
            delta = (trained[name] - p0.detach()).abs()
            assert delta.max() <= lr * 1.001 + 1e-7, f"{name} moved more than one Adam step"
            assert delta.max() > 0.5 * lr, f"{name} did not move"
    assert state["global_step"] == 1 and state["epoch"] == 1


@pytest.mark.parametrize("g_steps", [1, 3])
def test_g_steps_sets_how_many_g_updates_follow_each_d_update(tmp_path, g_steps):
    """Adam counts its updates per parameter: D's count is the step count, G's is g_steps times it."""
    torch.manual_seed(0)
    cfg = make_cfg(TINY, train__epochs=1, train__max_steps=2, train__sample_every=0, optim__g_steps=g_steps)
    T.train(cfg, tmp_path / "run")
    state = ckpt.load(tmp_path / "run")
    d_counts = {float(s["step"]) for s in state["opt_d"]["state"].values()}
    g_counts = {float(s["step"]) for s in state["opt_g"]["state"].values()}
    assert d_counts == {2.0}
    assert g_counts == {2.0 * g_steps}


class DLossOff(KPlus1):
    """kplus1 with a zero D loss: D's gradients are exactly zero, so Adam leaves D where it is."""

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        total, terms = super().d_loss(logits_lab, y_lab, logits_unl, logits_fake)
        return total * 0.0, terms


class GLossOff(KPlus1):
    """kplus1 with a zero G loss."""

    def g_loss(self, logits_fake, feat_real, feat_fake):
        total, terms = super().g_loss(logits_fake, feat_real, feat_fake)
        return total * 0.0, terms


class HalfG(nn.Module):
    """A generator whose images are half as bright as its inner one's (same weights, same RNG use)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.z_dim = inner, inner.z_dim

    def sample_z(self, *args, **kwargs):
        return self.inner.sample_z(*args, **kwargs)

    def forward(self, z):
        return self.inner(z) * 0.5


def train_and_load(cfg, run_dir: Path) -> dict:
    T.train(cfg, run_dir)
    return ckpt.load(run_dir)


def test_the_g_step_leaves_d_alone_and_generated_images_stay_out_of_d_batch_norm(tmp_path, monkeypatch):
    """With the D loss zeroed, only the G step could move D: D's weights must be exactly the initial ones.

    Two generators that differ only in their images then give D the same BN running statistics,
    because generated batches pass through D under `frozen_bn_stats`.
    """
    torch.manual_seed(0)
    monkeypatch.setitem(ALGORITHMS, "d_off", DLossOff)
    dcgan28 = NETS["dcgan28"]

    def with_half_g(cfg, channels, size, num_logits, generator):
        D, G = dcgan28.build(cfg, channels, size, num_logits, generator)
        return D, HalfG(G)

    monkeypatch.setitem(NETS, "dcgan28_half_g", dataclasses.replace(dcgan28, build=with_half_g))
    short = {"train.epochs": 1, "train.max_steps": 2, "train.sample_every": 0, "method.name": "d_off"}
    cfg = make_cfg({**TINY_DCGAN, **short})
    a = train_and_load(cfg, tmp_path / "a")
    b = train_and_load(make_cfg({**TINY_DCGAN, **short}, model__net="dcgan28_half_g"), tmp_path / "b")
    D0, G0 = initial_nets(cfg)
    for name, p in params(a["D"], D0).items():
        assert torch.equal(p, D0.state_dict()[name]), f"D weight {name} moved during G steps"
    moved = [n for n, p in params(a["G"], G0).items() if not torch.equal(p, G0.state_dict()[n])]
    assert moved == [n for n, p in G0.named_parameters()], "every G weight should have moved"
    stats_a, stats_b = bn_stats(a["D"]), bn_stats(b["D"])
    assert stats_a and stats_a.keys() == stats_b.keys()
    assert any(not torch.equal(v, D0.state_dict()[k]) for k, v in stats_a.items())   # real batches count
    for k in stats_a:
        assert torch.equal(stats_a[k], stats_b[k]), f"generated images reached D's running statistics ({k})"


def test_the_d_step_leaves_g_alone(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setitem(ALGORITHMS, "g_off", GLossOff)
    cfg = make_cfg(TINY_DCGAN, method__name="g_off", train__epochs=1, train__max_steps=2,
                   train__sample_every=0)
    state = train_and_load(cfg, tmp_path / "run")
    D0, G0 = initial_nets(cfg)
    for name, p in params(state["G"], G0).items():
        assert torch.equal(p, G0.state_dict()[name]), f"G weight {name} moved during D steps"
    assert all(not torch.equal(p, D0.state_dict()[n]) for n, p in params(state["D"], D0).items())


def manual_nets():
    torch.manual_seed(0)
    algo = build_algorithm(make_cfg(TINY_DCGAN).method)
    D, G = build_nets(make_cfg(TINY_DCGAN).model, 1, 28, algo.num_logits(4))
    return algo, D, G


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def manual_parts():
    """The step's parts as training builds them (make_step_parts), for the tiny DCGAN pair."""
    algo, D, G = manual_nets()
    cfg = make_cfg(TINY_DCGAN, train__batch_size=8)
    return make_step_parts(cfg, algo, D, G, torch.device("cpu"))


def test_the_g_step_changes_g_only_and_computes_no_gradient_of_d():
    """g_step: D frozen (requires_grad off), real features without grad, fakes under frozen BN."""
    parts = manual_parts()
    D, G = parts.D, parts.G
    d_before, g_before = snapshot(D), snapshot(G)
    g_step(parts, torch.rand(8, 1, 28, 28) * 2 - 1)
    assert all(p.grad is None for p in D.parameters())           # no gradient of D was even computed
    assert all(p.requires_grad for p in parts.d_params)          # and D is trainable again afterwards
    for name, p in D.named_parameters():
        assert torch.equal(p, d_before[name])
    g_after = dict(G.named_parameters())
    assert all(not torch.equal(g_after[n], g_before[n]) for n in g_after)


def test_the_d_step_changes_d_only():
    parts = manual_parts()
    D, G = parts.D, parts.G
    d_before, g_before = snapshot(D), snapshot(G)
    x_lab, y_lab = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8) % 4
    d_step(parts, x_lab, y_lab, torch.rand(8, 1, 28, 28) * 2 - 1)
    assert all(p.grad is None for p in G.parameters())
    for name, p in G.named_parameters():
        assert torch.equal(p, g_before[name]), name
    d_after = dict(D.named_parameters())
    assert all(not torch.equal(d_after[n], d_before[n]) for n in d_after)


def test_frozen_bn_stats_keeps_running_statistics_and_restores_momentum():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 4),
                        nn.BatchNorm1d(4, momentum=None))
    net.train()
    net(torch.randn(8, 1, 8, 8))                                 # non-trivial statistics to start from
    before = bn_stats(snapshot(net))
    x = torch.randn(8, 1, 8, 8) * 3 + 2
    with frozen_bn_stats(net):
        y_frozen = net(x)
        assert all(m.momentum == 0.0 for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    for k, v in bn_stats(snapshot(net)).items():
        assert torch.equal(v, before[k]), k
    assert net[1].momentum == 0.1 and net[4].momentum is None    # restored, None included
    y_free = net(x)                                              # batch statistics either way
    torch.testing.assert_close(y_frozen, y_free)
    assert not torch.equal(bn_stats(snapshot(net))["1.running_mean"], before["1.running_mean"])
    with pytest.raises(RuntimeError), frozen_bn_stats(net):    # restored after an exception too
        raise RuntimeError("boom")
    assert net[1].momentum == 0.1


def test_linear_decay_reaches_zero_at_the_last_epoch():
    factor = lr_factor(make_cfg(optim__decay="linear", optim__decay_epochs=4, train__epochs=10), 4)  # 4 steps/epoch
    assert factor(0) == 1.0 and factor(6 * 4) == 1.0
    assert factor(8 * 4) == pytest.approx(0.5) and factor(8 * 4 + 2) == pytest.approx(0.375)  # epoch 8.5
    assert factor(10 * 4) == 0.0
    assert lr_factor(make_cfg(), 4)(6) == 1.0                    # no decay by default


def test_the_scheduler_sets_each_step_s_rate_and_resume_seeks_to_it(tmp_path):
    """The recorded rate is the one the epoch's last step used; a resumed run continues the schedule."""
    base = {**TINY, "optim.decay": "linear", "optim.decay_epochs": 2, "train.max_steps": 4, "train.sample_every": 0}
    T.train(make_cfg(base, train__epochs=3), tmp_path / "a")
    lrs = [r["lr"] for r in read_metrics(tmp_path / "a")]
    lr = TINY["optim.lr"]
    assert lrs == pytest.approx([lr, lr * (2 - 3 / 4) / 2, lr * (1 - 3 / 4) / 2])  # epoch 1 flat, then decaying
    cfg = make_cfg(base, train__epochs=3)
    data = load_source(cfg.data)
    split, _ = load_or_draw_split(cfg, data, tmp_path / "a")
    state = build_run(cfg, data, split, torch.device("cpu")).state_dict()
    state["epoch"], state["step"], state["acc"] = 2, 1, torch.zeros(4, 5)  # a checkpoint at epoch 2.25
    run = build_run(cfg, data, split, torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the seek is deliberate: no scheduler warning reaches the user
        run.load_state_dict(state)
    for opt in (run.parts.opt_d, run.parts.opt_g):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr * (3 - 2.25) / 2)


# ------------------------------------------------------------------------------------------ resume
def test_resuming_at_an_epoch_boundary_reproduces_the_uninterrupted_run(tmp_path, capsys):
    torch.manual_seed(0)
    base = {**TINY, "train.max_steps": 8}
    T.train(make_cfg(base, train__epochs=2), tmp_path / "a")
    assert cli.main(["train", "--run-dir", str(tmp_path / "b"), *cli_args({**base, "train.epochs": 1})]) == 0
    assert len(read_metrics(tmp_path / "b")) == 1
    assert cli.main(["train", "--resume", str(tmp_path / "b"), "--train.epochs=2"]) == 0
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["epoch"] for r in b] == [1, 2] and [r["step"] for r in b] == [8, 16]
    assert without_timing(a) == without_timing(b)
    sa, sb = ckpt.load(tmp_path / "a"), ckpt.load(tmp_path / "b")
    for net in ("D", "G"):
        for k in sa[net]:
            assert torch.equal(sa[net][k], sb[net][k]), f"{net}.{k} differs after resume"
    assert "resuming" in capsys.readouterr().out


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ssgan exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigterm_mid_epoch_saves_state_and_resume_matches_the_uninterrupted_run(tmp_path):
    """SIGTERM once the first checkpoint exists: exit 130 with the resume command, then an exact resume."""
    torch.manual_seed(0)
    run = {**TINY, "train.epochs": 3, "train.max_steps": 15, "train.threads": 1, "train.sample_every": 0}
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(ssgan_command() + ["train", "--run-dir", str(run_dir), *cli_args(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "last.pt").is_file(), proc, what="the first checkpoint")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{out}\n{err}"
    assert f"--resume {run_dir}" in err
    saved = ckpt.load(run_dir)
    assert not (run_dir / "report.html").exists()                  # TINY turns the report off ...
    assert 1 <= saved["step"] <= 15 and saved["epoch"] in (1, 2)   # stopped inside epoch 2 or 3

    with torch_threads():
        assert cli.main(["train", "--resume", str(run_dir)]) == 0
        T.train(make_cfg(run), tmp_path / "straight")
    resumed, straight = read_metrics(run_dir), read_metrics(tmp_path / "straight")
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert without_timing(resumed) == without_timing(straight)


# --------------------------------------------------------------------------------------- NaN guard
class NaNFromCall6(FeatureMatching):
    """fm whose unlabeled term turns NaN from its 6th D loss on (epoch 2, step 2 at 4 steps an epoch)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.calls = 0

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        self.calls += 1
        total, terms = super().d_loss(logits_lab, y_lab, logits_unl, logits_fake)
        if self.calls >= 6:
            terms["unl"] = terms["unl"] * float("nan")
            total = terms["sup"] + terms["unl"]
        return total, terms


def test_a_nan_loss_stops_naming_term_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setitem(ALGORITHMS, "nan_test", NaNFromCall6)
    cfg = make_cfg(TINY, method__name="nan_test", train__epochs=3, train__max_steps=4, train__sample_every=0)
    with pytest.raises(NonFiniteLoss) as e:
        T.train(cfg, tmp_path / "run")
    msg = str(e.value)
    assert "'d/unl'" in msg and "at step 6" in msg and "epoch 2" in msg
    assert str(tmp_path / "run" / "checkpoints" / "last.pt") in msg
    state = ckpt.load(tmp_path / "run")
    assert state["epoch"] == 1 and state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point())
    _, _, D, G = restore_models(state)
    assert torch.isfinite(D(torch.zeros(2, 1, 16, 16))[0]).all()
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1]


class NaNAlways(FeatureMatching):
    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        total, terms = super().d_loss(logits_lab, y_lab, logits_unl, logits_fake)
        return total * float("nan"), terms


def test_the_cli_exits_3_on_a_nan_loss(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    monkeypatch.setitem(ALGORITHMS, "nan_always", NaNAlways)
    args = cli_args({**TINY, "method.name": "nan_always", "train.epochs": 1, "train.max_steps": 2})
    assert cli.main(["train", "--run-dir", str(tmp_path / "run"), *args]) == 3
    err = capsys.readouterr().err
    assert "'d_loss'" in err and "step 1" in err and "--optim.lr" in err
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


# ------------------------------------------------------------------------------ methods without G
@pytest.mark.parametrize("method", sorted(ALGORITHMS))
def test_build_run_makes_a_generator_only_for_methods_that_train_one(method, tmp_path):
    cfg = make_cfg(TINY, method__name=method)
    data = load_source(cfg.data)
    run = build_run(cfg, data, load_or_draw_split(cfg, data, tmp_path)[0], torch.device("cpu"))
    uses_g = ALGORITHMS[method].uses_generator
    parts = [run.G, run.unl, run.unl_g, run.fixed_z, run.parts.G, run.parts.opt_g]
    assert all((p is not None) == uses_g for p in parts), parts
    assert len(run.schedule.optimizers) == (2 if uses_g else 1)
    assert run.term_names[-1] == ("g_loss" if uses_g else "d_loss")


def test_a_supervised_run_saves_no_generator_and_resumes(tmp_path):
    cfg = make_cfg(TINY, method__name="supervised", train__epochs=1, train__max_steps=3, train__sample_every=1)
    T.train(cfg, tmp_path / "run")
    state = ckpt.load(tmp_path / "run")
    assert state["G"] is None and state["opt_g"] is None and state["rng"]["unl"] is None
    assert not (tmp_path / "run" / "samples").exists()
    T.train(make_cfg(TINY, method__name="supervised", train__epochs=2, train__max_steps=3), tmp_path / "run",
            resume=True)
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2]


def test_cnn32_trains_a_few_steps_on_colour_images_and_resumes(tmp_path):
    cfg = make_cfg(TINY, model__net="cnn32", model__width=0.125, data__image_size=32, data__channels=3,
                   optim__lr=3e-4, train__epochs=1, train__max_steps=3, train__sample_every=1)
    T.train(cfg, tmp_path / "run")
    state = ckpt.load(tmp_path / "run")
    assert state["input_shape"] == [3, 32] and state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["D"].values() if v.is_floating_point())
    assert (tmp_path / "run" / "samples" / "epoch_001.png").is_file()
    T.train(make_cfg(TINY, model__net="cnn32", model__width=0.125, data__image_size=32, data__channels=3,
                     optim__lr=3e-4, train__epochs=2, train__max_steps=3), tmp_path / "run", resume=True)
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2]


def test_an_unset_epoch_count_is_a_budget_of_6000_steps_and_a_short_run_says_so(tmp_path, capsys):
    cfg = make_cfg(TINY, train__epochs=None, train__max_steps=None)  # 600 synthetic images, batch 20: 30 steps
    data = load_source(cfg.data)
    run = build_run(cfg, data, load_or_draw_split(cfg, data, tmp_path)[0], torch.device("cpu"))
    assert run.steps_per_epoch == 30 and run.cfg.train.epochs == 200 and cfg.train.epochs is None
    T.train(make_cfg(TINY, train__epochs=1, train__max_steps=2, train__sample_every=0), tmp_path / "run")
    assert "note: this run is 2 steps (1 epochs of 2)" in capsys.readouterr().out


def test_with_an_ema_the_record_also_scores_d_itself(tmp_path):
    T.train(make_cfg(TINY, train__epochs=1, train__sample_every=0, data__val_size=40), tmp_path / "ema")
    T.train(make_cfg(TINY, train__epochs=1, train__sample_every=0, data__val_size=40, train__ema=None), tmp_path / "raw")
    (ema,), (raw,) = read_metrics(tmp_path / "ema"), read_metrics(tmp_path / "raw")
    assert {"test_acc_raw", "test_errors_raw", "val_acc_raw"} <= ema.keys() and "test_acc_raw" not in raw
    assert raw["test_errors"] == ema["test_errors_raw"]  # the same D, scored directly


@pytest.mark.parametrize("warmup", [True, False])
def test_the_ema_follows_its_formula_with_and_without_warmup(warmup):
    from ssgan.training.run import make_ema
    net = nn.Linear(1, 1, bias=False)
    ema = make_ema(net, 0.999, warmup)
    want = None
    for n, w in enumerate([1.0, 2.0, 4.0, 8.0, 16.0]):
        net.weight.data.fill_(w)
        ema.update_parameters(net)
        if n == 0:
            want = w                                             # the first update copies
        else:
            d = min(0.999, (1 + n) / (10 + n)) if warmup else 0.999
            want = d * want + (1 - d) * w
        assert float(ema.module.weight) == pytest.approx(want, rel=1e-6), n
    assert (float(ema.module.weight) > 4.0) == warmup            # warm-up: close to D's recent weights


def test_channels_last_is_a_layout_only_same_training_within_float_tolerance(tmp_path):
    """The conv nets train channels-last by default (oneDNN's fast layout); without dropout (whose
    masks are drawn in memory order, so they differ between layouts) the numbers are those of the
    plain layout up to float rounding, and a saved config without the key (older runs) keeps the
    plain layout on resume."""
    short = dict(train__epochs=1, train__max_steps=3, train__sample_every=0, train__ema=None, model__dropout=0.0)
    states = {}
    for cl in (True, False):
        torch.manual_seed(0)
        T.train(make_cfg(TINY_DCGAN, train__channels_last=cl, **short), tmp_path / str(cl))
        states[cl] = ckpt.load(tmp_path / str(cl))
    conv = next(k for k, w in states[False]["D"].items() if w.dim() == 4 and w.shape[1] > 1)  # a conv over channels
    assert states[True]["D"][conv].is_contiguous(memory_format=torch.channels_last)
    assert not states[True]["D"][conv].is_contiguous()
    assert states[False]["D"][conv].is_contiguous()
    for name, w in states[False]["D"].items():  # Adam's early steps are ~lr * sign(g): a gradient at ~0
        diff = (states[True]["D"][name].float() - w.float()).abs()  # may flip sign on rounding; rare
        assert diff.float().mean() < 1e-5 and diff.max() <= 2 * 3 * 2e-4, name
    assert from_dict({"train": {"epochs": 1}}).train.channels_last is False
