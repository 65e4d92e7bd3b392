"""The one training loop. Read `train` top to bottom: set-up, then per step one D update and one
G update, then per epoch evaluation, logging, samples and a checkpoint.

Methods only supply losses (`algorithms/`), networks only modules (`nets/`). The loop owns the
rest: devices, optimisers, streams, EMA, cadence, checkpoints, the NaN guard. Several processes
(torchrun) wrap the same loop: DDP around D's pass and G, each rank a slice of every global batch,
rank 0 alone writes (see distributed.py).
"""
from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed
from .algorithms import build_algorithm
from .config import Config
from .data.sources import load_source
from .data.streams import LabeledStream, UnlabeledStream
from .evaluate import accuracy_and_errors
from .io import atomic_write_text
from .nets import build_nets
from .runs import load_or_draw_split, resolve_device, save_config
from .samples import generate, plot_curves, save_grid
from .step import DiscriminatorPass, StepParts, frozen_bn_stats, make_adam, train_step  # noqa: F401 (re-exported)
from .tracking import Metrics, epoch_line, log

CHECK_EVERY = 25  # steps between NaN checks and progress-bar updates (each costs one host sync)


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """Ctrl-C / SIGTERM: the run saved its state after the current step; the message says how to resume."""


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
    """Learning-rate multiplier at a fractional epoch: 1, or a linear decay to 0 over the last epochs."""
    o, epochs = cfg.optim, cfg.train.epochs
    if o.decay == "linear":
        span = min(o.decay_epochs or epochs, epochs)
        return min(1.0, max(0.0, (epochs - epoch_progress) / span))
    return 1.0


def train(cfg: Config, run_dir: Path, resume: bool = False) -> dict:
    """Train (or resume) the run in `run_dir`; returns the summary written to summary.json."""
    t = cfg.train
    run_dir = Path(run_dir)
    dd, device_name = distributed.setup(t.device)
    try:
        return _train(cfg, run_dir, resume, dd, resolve_device(device_name))
    finally:
        distributed.cleanup(dd)


def _train(cfg: Config, run_dir: Path, resume: bool, dd: distributed.Dist, device: torch.device) -> dict:
    t = cfg.train
    say = log if dd.main else (lambda msg: None)
    if t.threads:
        torch.set_num_threads(t.threads)
    amp = t.amp == "bf16"

    saved = None
    if resume:  # check before anything is written, so a refused resume leaves the run folder intact
        saved = ckpt.load(run_dir, "last")
        ckpt.check_compatible(saved["config"], cfg.to_dict(), run_dir / "checkpoints" / "last.pt")

    # ---- data and split (drawn once, by rank 0; every rank reads the same split.json)
    data = load_source(cfg.data)
    if dd.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if data.note:
            say(data.note)
        if data.bad_files:
            atomic_write_text(run_dir / "bad_files.txt", "\n".join(data.bad_files) + "\n")
        split = load_or_draw_split(cfg, data, run_dir)
        save_config(cfg, run_dir)
    distributed.barrier(dd)
    if not dd.main:
        split = load_or_draw_split(cfg, data, run_dir)
    K, channels, size = data.num_classes, data.train.x.shape[1], data.train.x.shape[-1]
    unl_pool = torch.from_numpy(split.unlabeled_indices())
    lab_pool = torch.tensor(split.labeled, dtype=torch.long)
    val_pool = torch.tensor(split.val, dtype=torch.long)
    global_batch = t.batch_size * dd.world  # train.batch_size is per process
    steps_per_epoch = len(unl_pool) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"a global batch of {global_batch} exceeds the {len(unl_pool)} unlabeled images")
    if t.max_steps:
        steps_per_epoch = min(steps_per_epoch, t.max_steps)

    # ---- method, networks, optimisers, EMA
    torch.manual_seed(t.seed)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(K))
    if t.sync_bn and dd.enabled:
        if device.type != "cuda":
            raise ValueError("--train.sync_bn needs CUDA devices (SyncBatchNorm does not run on the CPU)")
        D, G = nn.SyncBatchNorm.convert_sync_batchnorm(D), nn.SyncBatchNorm.convert_sync_batchnorm(G)
    D = D.to(device)
    G = G.to(device) if algo.uses_generator else None
    d_params = [p for p in D.parameters() if p.requires_grad]
    opt_d = make_adam(d_params, cfg.optim.lr, cfg, device)
    opt_g = None if G is None else make_adam([p for p in G.parameters() if p.requires_grad],
                                             cfg.optim.g_lr or cfg.optim.lr, cfg, device)
    optimizers = [opt for opt in (opt_d, opt_g) if opt is not None]
    base_lrs = [[g["lr"] for g in opt.param_groups] for opt in optimizers]

    def stream_seed(k: int) -> int:  # the same on every rank: each rank takes its slice of one global batch
        return t.seed * 4 + k
    lab_stream = LabeledStream(data.train.x, data.train.y, lab_pool, t.batch_size, stream_seed(1), device,
                               dd.rank, dd.world)
    unl_stream = UnlabeledStream(data.train.x, unl_pool, t.batch_size, stream_seed(2), device, cfg.data.workers,
                                 dd.rank, dd.world)
    unl_stream_g = UnlabeledStream(data.train.x, unl_pool, t.batch_size, stream_seed(3), device,
                                   cfg.data.workers, dd.rank, dd.world)
    fixed_z = G.sample_z(64, "cpu", torch.Generator().manual_seed(t.seed)) if G is not None else None
    if hasattr(D, "data_init"):  # data-dependent init of weight-normalised layers (Salimans et al.)
        D.data_init(UnlabeledStream(data.train.x, unl_pool, 500, stream_seed(4), device).next())
    ema = AveragedModel(D, multi_avg_fn=get_ema_multi_avg_fn(t.ema), use_buffers=True) if t.ema else None
    if dd.rank:  # dropout, noise and z differ between ranks; rank 0 draws what a single process would
        torch.manual_seed(t.seed + 1_000_003 * dd.rank)

    d_pass = DiscriminatorPass(D)
    d_pass_ddp = DDP(d_pass, device_ids=[device.index] if device.type == "cuda" else None) if dd.enabled else d_pass
    G_ddp = DDP(G, device_ids=[device.index] if device.type == "cuda" else None) if dd.enabled and G else G

    term_names = [f"d/{n}" for n in algo.d_terms] + ["d_loss"]
    if G is not None:
        term_names += [f"g/{n}" for n in algo.g_terms] + ["g_loss"]
    state = {"epoch": 0, "step": 0, "global_step": 0, "best_val": -1.0,
             "acc": torch.zeros(steps_per_epoch, len(term_names))}
    metrics = Metrics(run_dir) if dd.main else None

    def save_checkpoint(name: str) -> None:
        if not dd.main:
            return
        ckpt.save({"config": cfg.to_dict(), "split": split.to_dict(), "classes": data.classes,
                   "input_shape": [channels, size],
                   "D": D.state_dict(), "G": G.state_dict() if G is not None else None,
                   "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict() if opt_g else None,
                   "ema": ema.state_dict() if ema else None, "fixed_z": fixed_z,
                   "epoch": state["epoch"], "step": state["step"], "global_step": state["global_step"],
                   "best_val": state["best_val"], "acc": state["acc"], "world_size": dd.world,
                   "rng": {"torch": torch.get_rng_state(),
                           "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                           "lab": lab_stream.state_dict(), "unl": unl_stream.state_dict(),
                           "unl_g": unl_stream_g.state_dict()}},
                  run_dir / "checkpoints" / f"{name}.pt")

    if saved:
        s = saved
        D.load_state_dict(s["D"])
        opt_d.load_state_dict(s["opt_d"])
        if G is not None:
            G.load_state_dict(s["G"])
            opt_g.load_state_dict(s["opt_g"])
        if ema:
            ema.load_state_dict(s["ema"])
        fixed_z = s["fixed_z"]
        state.update({k: s[k] for k in ("epoch", "step", "global_step", "best_val", "acc")})
        if len(state["acc"]) != steps_per_epoch:  # another world size or batch: restart the partial epoch's log
            state["acc"], state["step"] = torch.zeros(steps_per_epoch, len(term_names)), 0
        torch.set_rng_state(s["rng"]["torch"])
        if s["rng"]["cuda"] and device.type == "cuda":
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
        if dd.rank:
            torch.manual_seed(t.seed + 1_000_003 * dd.rank + state["global_step"])
        lab_stream.load_state_dict(s["rng"]["lab"])
        unl_stream.load_state_dict(s["rng"]["unl"])
        unl_stream_g.load_state_dict(s["rng"]["unl_g"])
        say(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step']}")
    if metrics:
        metrics.truncate(state["epoch"])
    say(f"run {run_dir}: {data.name}, {split.request} ({len(split.labeled)} labeled, {len(unl_pool)} unlabeled, "
        f"{len(split.val)} val), method {cfg.method.name}, net {cfg.model.net}, device {device}"
        f"{f' x {dd.world} processes' if dd.enabled else ''}{', bf16' if amp else ''}")

    parts = StepParts(algo, D, G, d_pass_ddp, G_ddp, opt_d, opt_g, d_params, ema, amp, device, t.batch_size,
                      cfg.optim.g_steps)

    def evaluate(model, images, labels) -> tuple[float, int]:
        """Each rank scores its shard (rank::world) and the error counts are summed: nothing twice, no tail dropped."""
        _, errors = accuracy_and_errors(model, algo, images[dd.rank::dd.world], labels[dd.rank::dd.world],
                                        t.eval_batch_size, device, amp)
        errors = distributed.sum_int(dd, errors, device)
        return 1.0 - errors / max(1, len(labels)), errors

    # Gathered once: for folder data each gather reads files (the labeled images the stream already holds).
    val_x, val_y = (data.train.x[val_pool], data.train.y[val_pool]) if len(val_pool) else (None, None)

    t_start = time.time()
    with stop_on_signals() as stop:
        for epoch in range(state["epoch"], t.epochs):
            D.train()
            if G is not None:
                G.train()
            t_epoch, acc, first_step, checked = time.time(), state["acc"], state["step"], state["step"]
            bar = tqdm(range(first_step, steps_per_epoch), desc=f"epoch {epoch + 1}/{t.epochs}", leave=False,
                       dynamic_ncols=True, mininterval=1.0, disable=None if dd.main else True)
            for i in bar:
                factor = lr_factor(cfg, epoch + i / steps_per_epoch)
                for opt, lrs in zip(optimizers, base_lrs):
                    for group, lr0 in zip(opt.param_groups, lrs):
                        group["lr"] = lr0 * factor
                x_lab, y_lab = lab_stream.next()
                x_unl, x_unl_g = (unl_stream.next(), unl_stream_g.next()) if G is not None else (None, None)
                row = train_step(parts, x_lab, y_lab, x_unl, x_unl_g)
                acc[i] = torch.stack([v.detach().float() for v in row]).cpu()
                state["step"], state["global_step"] = i + 1, state["global_step"] + 1
                at_check = (i + 1 - checked) >= CHECK_EVERY or i + 1 == steps_per_epoch
                if not dd.enabled and stop["signal"] is not None:
                    at_check = True  # one process stops at once; several agree at check steps, or deadlock
                want_stop = False
                if at_check:
                    want_stop = distributed.any_rank(dd, stop["signal"] is not None, device)
                    window = acc[checked:i + 1]
                    bad = ~torch.isfinite(window)
                    if distributed.any_rank(dd, bool(bad.any()), device):
                        raise NonFiniteLoss(nan_message(bad, window, term_names, state["global_step"] - len(window),
                                                        epoch, run_dir))
                    bar.set_postfix({n: f"{v:.3f}" for n, v in zip(term_names, window.mean(0).tolist())
                                     if "/" not in n})
                    checked = i + 1
                if want_stop:
                    save_checkpoint("last")
                    raise Interrupted(f"stopped by signal at epoch {epoch + 1}, step {i + 1}; state saved. "
                                      f"Resume with: ssgan train --resume {run_dir}")
            bar.close()

            # ---- end of epoch: evaluate, log, sample, checkpoint
            epoch_time = time.time() - t_epoch
            eval_d = ema.module if ema else D
            record = {"epoch": epoch + 1, "step": state["global_step"],
                      **{n: float(v) for n, v in zip(term_names, acc.mean(0).tolist())}}
            if G is None:
                record["g_loss"] = None
            record["train_acc"], _ = evaluate(eval_d, lab_stream.images, lab_stream.labels)
            record["val_acc"] = None
            if len(val_pool):
                record["val_acc"], _ = evaluate(eval_d, val_x, val_y)
            record["test_acc"] = record["test_errors"] = None
            if data.test is not None:
                record["test_acc"], record["test_errors"] = evaluate(eval_d, data.test.x, data.test.y)
            record["lr"] = opt_d.param_groups[0]["lr"]
            record["epoch_time"] = epoch_time
            record["images_per_s"] = (steps_per_epoch - first_step) * global_batch / max(epoch_time, 1e-9)
            record["elapsed"] = time.time() - t_start
            state.update(epoch=epoch + 1, step=0, acc=torch.zeros_like(acc))
            improved = record["val_acc"] is not None and record["val_acc"] > state["best_val"]
            if improved:
                state["best_val"] = record["val_acc"]
            if dd.main:
                metrics.add(record)
                say(epoch_line(record))
                if G is not None and t.sample_every and (epoch + 1) % t.sample_every == 0:
                    save_grid(generate(G, fixed_z.to(device)), run_dir / "samples" / f"epoch_{epoch + 1:03d}.png")
            save_checkpoint("last")
            if improved:
                save_checkpoint("best")
            distributed.barrier(dd)

    if not dd.main:
        return {}
    plot_curves(metrics.records, run_dir)
    n_test = len(data.test) if data.test is not None else 0
    return write_summary(run_dir, metrics.records, time.time() - t_start, data.name, n_test)


def nan_message(bad: torch.Tensor, window: torch.Tensor, names: list[str], first_step: int, epoch: int,
                run_dir: Path) -> str:
    if not bad.any():
        return f"a loss became non-finite in another process (epoch {epoch + 1})"
    r, c = [int(v) for v in bad.nonzero()[0]]
    return (f"loss term '{names[c]}' became {window[r, c].item()} at step {first_step + r + 1} (epoch {epoch + 1}); "
            f"the last good checkpoint is {run_dir / 'checkpoints' / 'last.pt'}. "
            "Try a lower --optim.lr or --train.amp=none.")


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
