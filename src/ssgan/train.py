"""The one training loop. Read it top to bottom: setup, then per step one D update and one G update,
then per epoch evaluation, logging, samples and a checkpoint.

Methods only supply losses (`algorithms/`); networks only supply modules (`nets/`). The loop owns
everything else: devices, optimisers, streams, EMA, cadence, checkpoints and the NaN guard.
"""
from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import checkpoint as ckpt
from .algorithms import build_algorithm
from .config import Config
from .data.sources import load_source
from .data.streams import LabeledStream, UnlabeledStream
from .evaluate import accuracy_and_errors
from .io import atomic_write_text
from .nets import build_nets
from .runs import load_or_draw_split, resolve_device, save_config
from .samples import generate, plot_curves, save_grid
from .tracking import Metrics, epoch_line, log

CHECK_EVERY = 25  # steps between NaN checks and progress-bar updates (each costs one host sync)


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Ctrl-C / SIGTERM: the run saved its state after the current step; the message says how to resume."""


@contextlib.contextmanager
def frozen_bn_stats(module: torch.nn.Module):
    """Normalise with batch statistics but leave running statistics alone (momentum 0).

    Generated batches pass through D in train mode; letting them into BN's running statistics
    would make evaluation (which uses those statistics) depend on the generator's samples.
    """
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag = {"signal": None}

    def handler(signum, frame):
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def lr_factor(cfg: Config, epoch_progress: float) -> float:
    """Learning-rate multiplier at a fractional epoch."""
    o = cfg.optim
    if o.decay == "linear":
        span = o.decay_epochs or cfg.train.epochs
        start = cfg.train.epochs - span
        return max(0.0, min(1.0, (cfg.train.epochs - epoch_progress) / span)) if epoch_progress > start else 1.0
    return 1.0


def train(cfg: Config, run_dir: Path, resume: bool = False) -> dict:
    """Train (or resume) the run in `run_dir`; returns the summary written to summary.json."""
    t = cfg.train
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(t.device)
    if t.threads:
        torch.set_num_threads(t.threads)
    amp = t.amp == "bf16"

    # ---- data and split
    data = load_source(cfg.data)
    if data.note:
        log(data.note)
    if data.bad_files:
        atomic_write_text(run_dir / "bad_files.txt", "\n".join(data.bad_files) + "\n")
    split = load_or_draw_split(cfg, data, run_dir)
    save_config(cfg, run_dir)
    K, channels, size = data.num_classes, data.train.x.shape[1], data.train.x.shape[-1]
    unl_pool = torch.from_numpy(split.unlabeled_indices())
    lab_pool = torch.tensor(split.labeled, dtype=torch.long)
    val_pool = torch.tensor(split.val, dtype=torch.long)
    steps_per_epoch = len(unl_pool) // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train.batch_size={t.batch_size} exceeds the {len(unl_pool)} unlabeled images")
    if t.max_steps:
        steps_per_epoch = min(steps_per_epoch, t.max_steps)

    # ---- method, networks, optimisers
    torch.manual_seed(t.seed)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(K))
    D = D.to(device)
    G = G.to(device) if algo.uses_generator else None
    d_params = [p for p in D.parameters() if p.requires_grad]
    opt_d = torch.optim.Adam(d_params, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), foreach=True)
    opt_g = None
    if G is not None:
        g_lr = cfg.optim.g_lr or cfg.optim.lr
        opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=g_lr,
                                 betas=(cfg.optim.beta1, cfg.optim.beta2), foreach=True)
    base_lrs = [g["lr"] for g in opt_d.param_groups] + ([g["lr"] for g in opt_g.param_groups] if opt_g else [])
    has_bn = any(isinstance(m, _BatchNorm) for m in D.modules())

    lab_stream = LabeledStream(data.train.x, data.train.y, lab_pool, t.batch_size, t.seed * 4 + 1, device)
    workers = cfg.data.workers
    unl_stream = UnlabeledStream(data.train.x, unl_pool, t.batch_size, t.seed * 4 + 2, device, workers)
    unl_stream_g = UnlabeledStream(data.train.x, unl_pool, t.batch_size, t.seed * 4 + 3, device, workers)
    fixed_z = G.sample_z(64, "cpu", torch.Generator().manual_seed(t.seed)) if G is not None else None

    if hasattr(D, "data_init"):  # data-dependent init of weight-normalised layers (Salimans et al.)
        init_stream = UnlabeledStream(data.train.x, unl_pool, 500, t.seed * 4 + 4, device)
        D.data_init(init_stream.next())
    ema = AveragedModel(D, multi_avg_fn=get_ema_multi_avg_fn(t.ema), use_buffers=True) if t.ema else None

    term_names = [f"d/{n}" for n in algo.d_terms] + ["d_loss"]
    if G is not None:
        term_names += [f"g/{n}" for n in algo.g_terms] + ["g_loss"]
    state = {"epoch": 0, "step": 0, "global_step": 0, "best_val": -1.0,
             "acc": torch.zeros(steps_per_epoch, len(term_names))}
    metrics = Metrics(run_dir)

    def save_checkpoint(name: str) -> None:
        ckpt.save({"config": cfg.to_dict(), "split": asdict(split), "classes": data.classes,
                   "input_shape": [channels, size],
                   "D": D.state_dict(), "G": G.state_dict() if G is not None else None,
                   "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict() if opt_g else None,
                   "ema": ema.state_dict() if ema else None, "fixed_z": fixed_z,
                   "epoch": state["epoch"], "step": state["step"], "global_step": state["global_step"],
                   "best_val": state["best_val"], "acc": state["acc"],
                   "rng": {"torch": torch.get_rng_state(),
                           "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                           "lab": lab_stream.state_dict(), "unl": unl_stream.state_dict(),
                           "unl_g": unl_stream_g.state_dict()}},
                  run_dir / "checkpoints" / f"{name}.pt")

    if resume:
        s = ckpt.load(run_dir, "last")
        ckpt.check_compatible(s["config"], cfg.to_dict(), run_dir / "checkpoints" / "last.pt")
        D.load_state_dict(s["D"])
        opt_d.load_state_dict(s["opt_d"])
        if G is not None:
            G.load_state_dict(s["G"])
            opt_g.load_state_dict(s["opt_g"])
        if ema:
            ema.load_state_dict(s["ema"])
        fixed_z = s["fixed_z"]
        state.update({k: s[k] for k in ("epoch", "step", "global_step", "best_val", "acc")})
        torch.set_rng_state(s["rng"]["torch"])
        if s["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
        lab_stream.load_state_dict(s["rng"]["lab"])
        unl_stream.load_state_dict(s["rng"]["unl"])
        unl_stream_g.load_state_dict(s["rng"]["unl_g"])
        metrics.truncate(state["epoch"])
        log(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step']}")
    else:
        metrics.truncate(0)
    log(f"run {run_dir}: {data.name}, {split.request} ({len(split.labeled)} labeled, {len(unl_pool)} unlabeled, "
        f"{len(split.val)} val), method {cfg.method.name}, net {cfg.model.net}, device {device}"
        f"{', bf16' if amp else ''}")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def set_requires_grad(params, flag: bool) -> None:
        for p in params:
            p.requires_grad_(flag)

    t_start = time.time()
    with stop_on_signals() as stop:
        for epoch in range(state["epoch"], t.epochs):
            D.train()
            if G is not None:
                G.train()
            t_epoch = time.time()
            acc = state["acc"]
            first_step = state["step"]
            bar = tqdm(range(first_step, steps_per_epoch), desc=f"epoch {epoch + 1}/{t.epochs}", leave=False,
                       dynamic_ncols=True, mininterval=1.0, disable=None)
            checked = first_step
            for i in bar:
                factor = lr_factor(cfg, epoch + i / steps_per_epoch)
                for group, lr0 in zip(opt_d.param_groups + (opt_g.param_groups if opt_g else []), base_lrs):
                    group["lr"] = lr0 * factor
                x_lab, y_lab = lab_stream.next()

                # ---- D step: labeled -> their class, unlabeled -> real, generated -> fake
                if G is not None:
                    x_unl = unl_stream.next()
                    with autocast():
                        x_fake = G(G.sample_z(t.batch_size, device))
                        if has_bn:
                            logits_real, _ = D(torch.cat([x_lab, x_unl]))
                            with frozen_bn_stats(D):
                                logits_fake, _ = D(x_fake.detach())
                            logits_lab, logits_unl = logits_real.float().split([len(x_lab), len(x_unl)])
                        else:  # no cross-sample layers: one batch is faster and computes the same
                            logits, _ = D(torch.cat([x_lab, x_unl, x_fake.detach()]))
                            logits_lab, logits_unl, logits_fake = logits.float().split(
                                [len(x_lab), len(x_unl), len(x_fake)])
                    d_loss, d_terms = algo.d_loss(logits_lab, y_lab, logits_unl, logits_fake.float())
                else:
                    with autocast():
                        logits_lab, _ = D(x_lab)
                    d_loss, d_terms = algo.d_loss(logits_lab.float(), y_lab, None, None)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                if ema:
                    ema.update_parameters(D)
                row = [d_terms[n] for n in algo.d_terms] + [d_loss]

                # ---- G step: make D call the same generated batch real / match D's features
                if G is not None:
                    x_unl_g = unl_stream_g.next()
                    set_requires_grad(d_params, False)  # G's loss needs no gradients of D's weights
                    with autocast():
                        with torch.no_grad():
                            _, feat_real = D(x_unl_g)
                        with frozen_bn_stats(D):
                            logits_fake, feat_fake = D(x_fake)
                    g_loss, g_terms = algo.g_loss(logits_fake.float(), feat_real.float(), feat_fake.float())
                    opt_g.zero_grad(set_to_none=True)
                    g_loss.backward()
                    opt_g.step()
                    set_requires_grad(d_params, True)
                    row += [g_terms[n] for n in algo.g_terms] + [g_loss]

                acc[i] = torch.stack([v.detach().float() for v in row]).cpu()
                state["step"], state["global_step"] = i + 1, state["global_step"] + 1
                if (i + 1 - checked) >= CHECK_EVERY or i + 1 == steps_per_epoch or stop["signal"]:
                    window = acc[checked:i + 1]
                    bad = ~torch.isfinite(window)
                    if bad.any():
                        r, c = [int(v) for v in bad.nonzero()[0]]
                        step = state["global_step"] - (i + 1 - checked) + r + 1
                        raise NonFiniteLoss(
                            f"loss term '{term_names[c]}' became {window[r, c].item()} at step {step} "
                            f"(epoch {epoch + 1}); the last good checkpoint is {run_dir / 'checkpoints/last.pt'}. "
                            "Try a lower --optim.lr or --train.amp=none.")
                    means = window.mean(0)
                    bar.set_postfix({n: f"{means[k]:.3f}" for k, n in enumerate(term_names) if "/" not in n})
                    checked = i + 1
                if stop["signal"]:
                    save_checkpoint("last")
                    raise Interrupted(f"stopped by signal {stop['signal']} at epoch {epoch + 1}, step {i + 1}; "
                                      f"state saved. Resume with: ssgan train --resume {run_dir}")
            bar.close()

            # ---- end of epoch: evaluate, log, sample, checkpoint
            epoch_time = time.time() - t_epoch
            eval_d = ema.module if ema else D
            means = acc.mean(0)
            record = {"epoch": epoch + 1, "step": state["global_step"],
                      **{n: float(means[k]) for k, n in enumerate(term_names)}}
            if G is None:
                record["g_loss"] = None
            record["train_acc"], _ = accuracy_and_errors(eval_d, algo, data.train.x[lab_pool],
                                                         data.train.y[lab_pool], t.eval_batch_size, device, amp)
            record["val_acc"] = None
            if len(val_pool):
                record["val_acc"], _ = accuracy_and_errors(eval_d, algo, data.train.x[val_pool],
                                                           data.train.y[val_pool], t.eval_batch_size, device, amp)
            record["test_acc"] = record["test_errors"] = None
            if data.test is not None:
                record["test_acc"], record["test_errors"] = accuracy_and_errors(
                    eval_d, algo, data.test.x, data.test.y, t.eval_batch_size, device, amp)
            record["lr"] = opt_d.param_groups[0]["lr"]
            record["epoch_time"] = epoch_time
            record["images_per_s"] = (steps_per_epoch - first_step) * t.batch_size / max(epoch_time, 1e-9)
            record["elapsed"] = time.time() - t_start
            metrics.add(record)
            log(epoch_line(record))
            if G is not None and t.sample_every and (epoch + 1) % t.sample_every == 0:
                save_grid(generate(G, fixed_z.to(device)), run_dir / "samples" / f"epoch_{epoch + 1:03d}.png")
            state.update(epoch=epoch + 1, step=0, acc=torch.zeros_like(acc))
            improved = record["val_acc"] is not None and record["val_acc"] > state["best_val"]
            if improved:
                state["best_val"] = record["val_acc"]
            save_checkpoint("last")
            if improved:
                save_checkpoint("best")

    plot_curves(metrics.records, run_dir)
    n_test = len(data.test) if data.test is not None else 0
    return write_summary(run_dir, metrics.records, time.time() - t_start, data.name, n_test)


def write_summary(run_dir: Path, records: list[dict], wall_time: float, dataset: str, n_test: int) -> dict:
    """summary.json: the last epoch's figures, and those of the best-validation epoch if any."""
    last = records[-1]
    summary = {"dataset": dataset, "epochs": last["epoch"], "n_test": n_test,
               "test_acc": last["test_acc"], "test_errors": last["test_errors"],
               "val_acc": last["val_acc"], "train_time_s": sum(r["epoch_time"] for r in records),
               "wall_time_s_this_session": wall_time,
               "images_per_s": sum(r["images_per_s"] for r in records) / len(records)}
    with_val = [r for r in records if r["val_acc"] is not None]
    if with_val:
        best = max(with_val, key=lambda r: r["val_acc"])  # first epoch with the highest val accuracy
        summary["best_val"] = {"epoch": best["epoch"], "val_acc": best["val_acc"], "test_acc": best["test_acc"],
                               "test_errors": best["test_errors"]}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary
